"""The feed side of a service: the feed runtime handing trades to a transport, with live progress
on a terminal, an orderly stop (everything received is handed on before exit) and an end-of-run
summary.

It knows nothing of the warehouse. `k2 feed` runs it with the Kafka producer and no store; `k2 run`
(k2.services.run) plugs in a `store` that keeps instruments and gap-ledger versions, says what
bronze already holds, answers reads and measures the ingest latency at the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from k2.config import Settings
from k2.exchanges.base import ExchangeAdapter, Instrument
from k2.feed.gaps import Gap
from k2.feed.runtime import FeedRuntime
from k2.monitoring.health import (
    Health,
    broker_condition,
    disk_condition,
    feed_conditions,
    history_condition,
    storage_condition,
    write_conditions,
)
from k2.monitoring.markets import MarketReport, MarketWatch
from k2.monitoring.metrics import INGEST_LATENCY, render
from k2.services.api import ApiHandlers
from k2.services.lifecycle import ServiceEndpoint, stop_loop_on_signals
from k2.terminal import LiveStatus, duration, status_table

log = logging.getLogger("k2.run")


@dataclass
class RunSummary:
    seconds: float = 0.0
    received: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    #: replays the feed dropped (k2_feed_duplicates_dropped_total)
    duplicates: dict[str, int] = field(default_factory=dict)
    #: trades the writer found already stored (k2_writer_duplicates_skipped_total)
    already_stored: dict[str, int] = field(default_factory=dict)
    rejects: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    latency_ms: dict[str, float] = field(default_factory=dict)
    never_connected: list[str] = field(default_factory=list)  # configured exchanges that never came up
    spooled: int = 0  # rows the writer could not write before the stop, saved for the next start
    spool_path: str = ""
    lost: int = 0  # rows neither written nor spooled

    def problems(self) -> list[str]:
        """What makes this run a failure (exit status 1), one line each."""
        out = []
        if self.never_connected:
            out.append(f"never connected to {', '.join(self.never_connected)} (check the URL, the network, "
                       "and the log above)")
        if self.spooled:
            out.append(f"{self.spooled:,} rows could not be written before the stop; saved in {self.spool_path or 'the spool'} "
                       "and written at the next start")
        if self.lost:
            out.append(f"{self.lost:,} rows could be neither written nor saved (see the log)")
        return out

    def text(self) -> str:
        lines = [f"ran {self.seconds:.1f} s"]
        for ex in sorted(self.received):
            rate = self.written.get(ex, 0) / self.seconds if self.seconds else 0.0
            stored = self.already_stored.get(ex, 0)
            lines.append(f"  {ex}: {self.received[ex]:,} trades received, {self.written.get(ex, 0):,} written "
                         f"({rate:,.0f}/s), {self.duplicates.get(ex, 0):,} duplicates dropped"
                         + (f", {stored:,} already stored" if stored else ""))
        lines.append(f"  rejects: {self.rejects}, failed connection attempts: {self.connect_failures}, "
                     f"reconnects: {self.reconnects}")  # (scripts read the number after "reconnects:")
        if self.latency_ms:
            lines.append("  ingest latency (ingested_at - exchange time): "
                         + ", ".join(f"{k} {v:.1f} ms" for k, v in self.latency_ms.items()))
        return "\n".join(lines)


class Store(Protocol):
    """What a pipeline with a warehouse gets from it (k2.services.run.WarehouseStore)."""

    def store_instruments(self, exchange: str, instruments: list[Instrument]) -> None: ...

    def known_instruments(self, exchange: str) -> set[str]: ...

    def store_gap(self, gap: Gap) -> None: ...

    def stored_history(self, adapter: ExchangeAdapter) -> tuple[dict[str, int], dict[str, int]]: ...

    #: the read door on the warehouse (k2.warehouse.reads): what the endpoint serves reads from
    reads: Any

    def write(self, sql: str, fmt: str) -> str: ...

    def routes(self, transport) -> list: ...

    def background(self, pipeline: Any, stop: asyncio.Event) -> list: ...

    def gaps_to_retry(self, adapter: ExchangeAdapter) -> list[Gap]: ...

    async def drain(self) -> None: ...

    def latency_percentiles(self, since_us: int) -> dict[str, float]: ...


class Pipeline:
    def __init__(self, settings: Settings, exchanges: list[str], transport, store: Store | None = None,
                 progress: bool | None = None, history: Any = None):
        """`history`: without a store (k2 feed), what the broker already holds
        (k2.transport.kafka_history.BrokerHistory: stored_history, gaps_to_retry)."""
        known = store if store is not None else history
        self.history = history
        self.settings = settings
        self.exchanges = exchanges
        self.transport = transport
        self.store = store
        self.progress = sys.stderr.isatty() if progress is None else progress
        self.runtime = FeedRuntime(
            settings, transport, exchanges,
            on_instruments=store.store_instruments if store else None,
            known_instruments=store.known_instruments if store else None,
            # without a warehouse (k2 feed) gap-ledger versions travel to the sink through Kafka
            on_gap=store.store_gap if store else getattr(transport, "submit_gap", None),
            stored_history=known.stored_history if known is not None else None,
            gaps_to_retry=known.gaps_to_retry if known is not None else None)
        self.endpoint: ServiceEndpoint | None = None
        self.stop_event: asyncio.Event | None = None
        #: per-venue and per-symbol health and live spreads (k2.monitoring.markets); None when
        #: switched off ([health] markets = false): then the fixed connection-silence rule applies
        self.markets: MarketWatch | None = None
        self._market_report: MarketReport | None = None
        if settings.health.markets:
            adapters = {e: settings.exchange(e).adapter for e in exchanges}
            self.markets = MarketWatch(settings.health, lambda ex, sym: adapters[ex].canonical_symbol(sym),
                                       self.runtime.started_at)

    def market_report(self) -> MarketReport | None:
        """Venue and symbol health, spreads: computed now from the feed's stats (never per trade)."""
        if self.markets is None:
            return None
        now = time.time()
        last = self._market_report
        if last is not None and 0 <= now - last.at < 0.25:  # a scrape asks twice (metrics and health)
            return last
        self._market_report = self.markets.evaluate(
            self.runtime.connection_stats(), self.exchanges, now,
            venue_status={ex: p.reading for ex, p in self.runtime.status_pollers.items()},
            gaps=self.runtime.gaps, latency=INGEST_LATENCY.snapshot(), buckets=INGEST_LATENCY.buckets)
        return self._market_report

    # -- status for `k2 status` and the API -----------------------------------------------------
    def health(self) -> Health:
        """The named conditions /healthz, `k2 status` and k2_health report (k2.monitoring.health)."""
        conditions = feed_conditions(self.runtime.connection_stats(), self.exchanges)
        report = self.market_report()
        if report is not None:  # feed:<exchange> from the venue's state, staleness per symbol's own rate
            conditions = report.conditions() + [c for c in conditions if not c.name.startswith("feed:")]
        sink = getattr(self.transport, "sink", None)  # k2 run --kafka: the writer is the sink thread
        writer = sink.stats if sink is not None else getattr(self.transport, "stats", None)
        if self.store is not None and writer is not None:
            conditions += write_conditions(writer, self.transport.buffered,
                                           getattr(self.transport, "started_at", self.runtime.started_at))
            data_dir = getattr(self.transport, "data_dir", None)
            if data_dir is not None:
                conditions.append(disk_condition(data_dir))
            conditions.append(storage_condition(getattr(self.store, "wh", None)))
        for watch in {id(w): w for w in (getattr(self.transport, "watch", None),
                                         getattr(getattr(self.transport, "producer", None), "watch", None),
                                         getattr(sink, "watch", None)) if w is not None}.values():
            conditions.append(broker_condition(watch))
        if self.history is not None:
            conditions.append(history_condition(getattr(self.history, "incomplete", None)))
        return Health(conditions)

    def healthy(self) -> bool:
        return self.health().ok

    def status(self) -> dict[str, Any]:
        st = self.runtime.status()
        st["pid"] = os.getpid()
        st["exchanges"] = self.exchanges
        st["transport"] = self.transport.name
        ts = getattr(self.transport, "stats", None)
        if ts is not None:
            st["writer"] = {k: v for k, v in vars(ts).items()}
            st["buffered"] = self.transport.buffered
        st["health"] = self.health().as_dict()
        report = self.market_report()
        if report is not None:
            st["markets"] = report.as_dict()
        return st

    def _metrics(self) -> bytes:
        return render(self)

    # -- run ------------------------------------------------------------------------------------
    async def run(self, duration: float | None = None) -> RunSummary:
        loop = asyncio.get_running_loop()
        self.stop_event = stop = asyncio.Event()
        with stop_loop_on_signals(loop, stop.set):
            started = time.time()
            started_us = time.time_ns() // 1000
            await self.runtime.plan()
            self.transport.set_pause_callback(self.runtime.pause)
            self.transport.start(loop)
            handlers = ApiHandlers(self.status, self._metrics, self.healthy,
                                   reads=self.store.reads if self.store else None,
                                   write=self.store.write if self.store else None,
                                   routes=self.store.routes(self.transport) if self.store else [],
                                   health=lambda: self.health().as_dict())
            # with a warehouse the endpoint is where reads go while this process holds the data dir
            self.endpoint = ServiceEndpoint(
                self.settings.metrics_addr, handlers, data_dir=self.settings.data_dir,
                run_info={"started_at": started, "exchanges": self.exchanges} if self.store else None,
                required=self.store is not None, limits=self.settings.read,
                addr_source=self.settings.metrics_addr_source)
            with self.endpoint:
                feed = asyncio.create_task(self.runtime.run(stop))
                shower = asyncio.create_task(self._show_progress(stop))
                # the store's own tasks (k2 run's reconciliation with the venues' candles)
                extra = [asyncio.create_task(c) for c in
                         (self.store.background(self, stop) if self.store is not None else [])]
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
                    await asyncio.gather(feed, shower, *extra, return_exceptions=True)
                    if self.store is not None:
                        await self.store.drain()
                    await asyncio.to_thread(self.transport.close)
                return self._summary(time.time() - started, started_us)

    def _summary(self, seconds: float, started_us: int) -> RunSummary:
        s = RunSummary(seconds=seconds)
        for st in self.runtime.connection_stats():
            s.received[st.exchange] = s.received.get(st.exchange, 0) + st.trades
            s.duplicates[st.exchange] = s.duplicates.get(st.exchange, 0) + st.duplicates
            s.rejects += st.rejects
            s.reconnects += st.reconnects
            s.connect_failures += st.connect_failures
        ts = getattr(self.transport, "stats", None)
        if ts is not None:
            s.written = dict(ts.written)
            s.already_stored = {k: v for k, v in getattr(ts, "duplicates", {}).items() if v}
            s.spooled, s.lost = getattr(ts, "spooled", 0), getattr(ts, "lost", 0)
            s.spool_path = getattr(ts, "spool_path", "")
        ever: dict[str, bool] = {ex: False for ex in self.exchanges}
        for st in self.runtime.connection_stats():
            ever[st.exchange] = ever.get(st.exchange, False) or st.ever_connected
        s.never_connected = [ex for ex, up in ever.items() if not up]
        if self.store is not None:
            try:
                s.latency_ms = self.store.latency_percentiles(started_us)
            except Exception as exc:  # a damaged part (the next start repairs it): the summary goes on
                log.warning("ingest latency not measured: %s", str(exc).splitlines()[0][:300] if str(exc) else exc)
        return s

    async def _show_progress(self, stop: asyncio.Event) -> None:
        """The live status: a table redrawn in place once a second on a terminal (log lines print
        above it), a plain log line every 30 s otherwise."""
        view = StatusView(self)
        live = LiveStatus(view.render) if self.progress else None
        if live is not None:
            live.start()
        last_log = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                view.sample()
                if live is not None and live.drawn:
                    live.refresh()
                elif time.monotonic() - last_log >= 30:
                    last_log = time.monotonic()
                    log.info("%s", view.line())
        finally:
            if live is not None:
                live.stop()


class StatusView:
    """What `k2 run` shows while it runs: one row per venue and connection with its trades, rate,
    last message age, gaps and ingest latency, and the health conditions that fail."""

    COLUMNS = ("venue", "connection", "state", "trades", "/s", "last msg", "gaps", "latency")

    def __init__(self, pipeline: Pipeline):
        self.pipeline = pipeline
        self.last_trades: dict[str, int] = {}
        self.rates: dict[str, float] = {}
        self.last_t = time.monotonic()
        self.latency_seen: dict[str, tuple[float, int]] = {}
        self.latency: dict[str, float] = {}

    def sample(self) -> None:
        """Rates since the last sample, and the mean ingest latency of the trades written since."""
        now = time.monotonic()
        dt = max(1e-6, now - self.last_t)
        for st in self.pipeline.runtime.connection_stats():
            key = f"{st.exchange}/{st.connection}"
            self.rates[key] = (st.trades - self.last_trades.get(key, st.trades)) / dt
            self.last_trades[key] = st.trades
        self.last_t = now
        for exchange, (_counts, total, n) in INGEST_LATENCY.snapshot().items():
            seen_total, seen_n = self.latency_seen.get(exchange, (0.0, 0))
            if n > seen_n:
                self.latency[exchange] = (total - seen_total) / (n - seen_n)
            self.latency_seen[exchange] = (total, n)

    def rows(self) -> list[tuple[str, ...]]:
        gaps: dict[str, list[int]] = {}
        for g in self.pipeline.runtime.gaps:
            counts = gaps.setdefault(g.exchange, [0, 0])
            counts[0] += 1
            counts[1] += g.state == "open"
        out = []
        now = time.time()
        for st in self.pipeline.runtime.connection_stats():
            key = f"{st.exchange}/{st.connection}"
            found, still_open = gaps.get(st.exchange, (0, 0))
            state = "up" if st.connected else ("gave up" if st.gave_up else "down")
            age = now - st.last_message_at if st.last_message_at else None
            lat = self.latency.get(st.exchange)
            out.append((
                st.exchange, st.connection, state, f"{st.trades:,}", f"{self.rates.get(key, 0.0):,.0f}",
                "-" if age is None else f"{age:.1f}s" if age < 100 else duration(age),
                f"{found} ({still_open} open)" if still_open else str(found),
                "-" if lat is None else f"{lat * 1000:,.0f} ms" if lat < 1 else f"{lat:,.2f} s"))
        return out

    def health_line(self) -> tuple[bool, str]:
        try:
            health = self.pipeline.health()
        except Exception as exc:  # a status display never stops the run
            return False, f"health unknown: {exc}"
        return health.ok, health.summary() or "healthy"

    def render(self):
        ok, summary = self.health_line()
        rows = self.rows()
        return status_table("k2 run", self.COLUMNS, rows, summary, ok,
                            frozenset(i for i, r in enumerate(rows) if r[2] != "up"))

    def line(self) -> str:
        """The plain form (off a terminal): one line, every venue."""
        per_ex: dict[str, list[int]] = {}
        for st in self.pipeline.runtime.connection_stats():
            agg = per_ex.setdefault(st.exchange, [0, 0, 0])
            agg[0] += st.trades
            agg[1] += int(st.connected)
            agg[2] += 1
        ok, summary = self.health_line()
        return " | ".join(f"{ex} {up}/{n} up {trades:,} trades" for ex, (trades, up, n) in per_ex.items()) \
            + f" | {summary}"


def adapters_for(settings: Settings, exchanges: list[str]) -> list[ExchangeAdapter]:
    """The adapter each exchange runs with (its API variant included)."""
    return [settings.exchange(e).adapter for e in exchanges]
