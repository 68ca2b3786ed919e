"""`k2 run`: the feed runtime, the direct transport and the warehouse in one process.

It also serves reads, status and metrics on loopback while it holds the data dir (chDB allows
one process per directory), shows live progress on a terminal, stops cleanly on SIGINT/SIGTERM
or after --duration (everything received is written before exit), and reports the measured
ingest latency (ingested_at - exchange time) at the end.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from k2.config import Settings
from k2.feed.runtime import FeedRuntime
from k2.httpapi import ApiHandlers, ApiServer, remove_run_info, write_run_info

log = logging.getLogger("k2.run")


@dataclass
class RunSummary:
    seconds: float = 0.0
    received: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    rejects: int = 0
    reconnects: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)

    def text(self) -> str:
        lines = [f"ran {self.seconds:.1f} s"]
        for ex in sorted(self.received):
            rate = self.written.get(ex, 0) / self.seconds if self.seconds else 0.0
            lines.append(f"  {ex}: {self.received[ex]:,} trades received, {self.written.get(ex, 0):,} written "
                         f"({rate:,.0f}/s), {self.duplicates.get(ex, 0):,} duplicates dropped")
        lines.append(f"  rejects: {self.rejects}, reconnects: {self.reconnects}")
        if self.latency_ms:
            lines.append("  ingest latency (ingested_at - exchange time): "
                         + ", ".join(f"{k} {v:.1f} ms" for k, v in self.latency_ms.items()))
        return "\n".join(lines)


def latency_percentiles(wh, since_us: int) -> dict[str, float]:
    rows = wh.rows(
        "SELECT count(), quantileExact(0.5)(lat), quantileExact(0.99)(lat), quantileExact(0.999)(lat) FROM "
        "(SELECT (toUnixTimestamp64Micro(ingestion_timestamp) - toUnixTimestamp64Micro(timestamp)) / 1000 AS lat "
        " FROM k2.silver_trades_v2 WHERE source IN ('ws', 'kafka')"  # live trades, direct or through Kafka
        " AND received_at >= fromUnixTimestamp64Micro({s:Int64}, 'UTC'))",
        {"s": since_us})
    if not rows or int(rows[0][0]) == 0:
        return {}
    return {"p50": float(rows[0][1]), "p99": float(rows[0][2]), "p99.9": float(rows[0][3])}


class Pipeline:
    def __init__(self, settings: Settings, exchanges: list[str], wh, transport, progress: bool | None = None):
        self.settings = settings
        self.exchanges = exchanges
        self.wh = wh
        self.transport = transport
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.runtime = FeedRuntime(settings, transport, exchanges,
                                   on_instruments=self._store_instruments,
                                   known_instruments=self._known_instruments,
                                   on_gap=self._store_gap if wh is not None else getattr(transport, "submit_gap", None),
                                   stored_history=self._stored_history if wh is not None else None)
        self.api: ApiServer | None = None
        self.stop_event: asyncio.Event | None = None
        self._pending_writes: set = set()

    def _store_instruments(self, exchange: str, instruments) -> None:
        if self.wh is None:  # k2 feed: no warehouse (and no pyarrow to import for one)
            return
        from k2.warehouse.instruments import upsert_instruments

        n = upsert_instruments(self.wh, exchange, instruments, "exchange")
        log.info("%s: %d instruments from the exchange (%d new or changed)", exchange, len(instruments), n)

    def _stored_history(self, adapter) -> tuple[dict[str, int], dict[str, int]]:
        """Last stored id (sequential exchanges) and trade time per symbol: gaps since the last run."""
        from k2.reads import sql

        rows = self.wh.rows(sql("last_trades"), {"bronze": adapter.bronze_table})
        times = {r[0]: int(r[1]) for r in rows}
        ids = {r[0]: int(r[2]) for r in rows} if adapter.sequential_id_index is not None else {}
        return ids, ({} if ids else times)

    def _store_gap(self, gap) -> None:
        """Write a ledger version off the event loop (the warehouse may be busy inserting)."""
        from k2.reads import sql

        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(None, self.wh.execute, sql("gap_upsert"), gap.ledger_params())
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    def _known_instruments(self, exchange: str) -> set[str]:
        if self.wh is None:
            return set()
        from k2.warehouse.instruments import instrument_map

        return set(instrument_map(self.wh, exchange))

    # -- status for `k2 status` and the API -----------------------------------------------------
    def status(self) -> dict[str, Any]:
        st = self.runtime.status()
        st["pid"] = os.getpid()
        st["exchanges"] = self.exchanges
        st["transport"] = self.transport.name
        ts = getattr(self.transport, "stats", None)
        if ts is not None:
            st["writer"] = {k: v for k, v in vars(ts).items()}
            st["buffered"] = self.transport.buffered
        return st

    def _query(self, sql: str, fmt: str, params: dict | None) -> str:
        if self.wh is None:
            raise RuntimeError("this process has no warehouse (k2 feed)")
        return self.wh.query(sql, fmt, params)

    def _metrics(self) -> bytes:
        from k2.metrics import render

        return render(self)

    # -- run ------------------------------------------------------------------------------------
    async def run(self, duration: float | None = None) -> RunSummary:
        loop = asyncio.get_running_loop()
        self.stop_event = stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):
                pass
        started = time.time()
        started_us = time.time_ns() // 1000
        await self.runtime.plan()
        self.transport.set_pause_callback(self.runtime.pause)
        self.transport.start(loop)
        if self.wh is not None:
            self.api = ApiServer(self.settings.metrics_addr,
                                 ApiHandlers(self._query, self.status, self._metrics, self.runtime.healthy)).start()
            write_run_info(self.settings.data_dir, {
                "pid": os.getpid(), "addr": self.api.address, "token": self.api.token,
                "started_at": started, "exchanges": self.exchanges})
            log.info("serving reads, status and metrics on http://%s", self.api.address)
        else:  # k2 feed: no warehouse, but /metrics and /healthz all the same
            try:
                self.api = ApiServer(self.settings.metrics_addr,
                                     ApiHandlers(self._query, self.status, self._metrics, self.runtime.healthy)).start()
                log.info("serving status and metrics on http://%s", self.api.address)
            except OSError as exc:
                log.warning("no /metrics: cannot listen on %s (%s); set K2_METRICS_ADDR", self.settings.metrics_addr, exc)
        feed = asyncio.create_task(self.runtime.run(stop))
        shower = asyncio.create_task(self._show_progress(stop))
        try:
            if duration:
                try:
                    await asyncio.wait_for(stop.wait(), duration)
                except asyncio.TimeoutError:
                    pass
            else:
                await stop.wait()
        finally:
            stop.set()
            await asyncio.gather(feed, shower, return_exceptions=True)
            if self._pending_writes:
                await asyncio.gather(*self._pending_writes, return_exceptions=True)
            await asyncio.to_thread(self.transport.close)
            if self.progress:
                sys.stderr.write("\n")
        summary = self._summary(time.time() - started, started_us)
        if self.api:
            self.api.stop()
            if self.wh is not None:
                remove_run_info(self.settings.data_dir)
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
        return summary

    def _summary(self, seconds: float, started_us: int) -> RunSummary:
        s = RunSummary(seconds=seconds)
        for st in self.runtime.connection_stats():
            s.received[st.exchange] = s.received.get(st.exchange, 0) + st.trades
            s.rejects += st.rejects
            s.reconnects += st.reconnects
        ts = getattr(self.transport, "stats", None)
        if ts is not None:
            s.written = dict(ts.written)
            s.duplicates = dict(ts.duplicates)
        if self.wh is not None:
            s.latency_ms = latency_percentiles(self.wh, started_us)
        return s

    async def _show_progress(self, stop: asyncio.Event) -> None:
        last: dict[str, int] = {}
        last_t = time.monotonic()
        last_log = last_t
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
            now = time.monotonic()
            per_ex: dict[str, list] = {}
            for st in self.runtime.connection_stats():
                agg = per_ex.setdefault(st.exchange, [0, 0, 0, None, 0])
                agg[0] += st.trades
                agg[1] += st.reconnects
                agg[2] += int(st.connected)
                if st.last_message_at is not None:
                    agg[3] = max(agg[3] or 0, st.last_message_at)
                agg[4] += 1
            parts = []
            for ex, (trades, reconnects, up, last_msg, n) in per_ex.items():
                rate = (trades - last.get(ex, trades)) / max(1e-6, now - last_t)
                last[ex] = trades
                age = f"{time.time() - last_msg:.1f}s" if last_msg else "-"
                parts.append(f"{ex} {up}/{n} up {trades:,} trades {rate:,.0f}/s reconnects {reconnects} last msg {age}")
            last_t = now
            line = " | ".join(parts)
            if self.progress:
                sys.stderr.write("\r\x1b[2K" + line[:200])
                sys.stderr.flush()
            elif now - last_log >= 30:
                last_log = now
                log.info("%s", line)


def adapters_for(settings: Settings, exchanges: list[str]):
    """The adapter each exchange runs with (its API variant included)."""
    return [settings.exchange(e).adapter for e in exchanges]


def tune_gc_for_streaming() -> None:
    """A feed allocates a few objects per trade, nearly all short-lived and acyclic. The objects
    made at startup are frozen out of the cyclic collector's scans and young collections run
    every 50,000 allocations instead of 700; cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def run_embedded(settings: Settings, exchanges: list[str], duration: float | None = None,
                 progress: bool | None = None) -> RunSummary:
    """`k2 run` with the direct transport into the embedded (or server) warehouse."""
    from k2.transport.direct import DirectTransport
    from k2.warehouse import open_warehouse

    wh = open_warehouse(settings.data_dir, url=settings.warehouse_url,
                        release_startup_pages=settings.release_startup_pages)
    try:
        transport = DirectTransport(wh, adapters_for(settings, exchanges), settings.batch_max_rows,
                                    settings.batch_max_delay_s, settings.queue_max_rows)
        pipeline = Pipeline(settings, exchanges, wh, transport, progress)
        tune_gc_for_streaming()
        return asyncio.run(pipeline.run(duration))
    finally:
        wh.close()
