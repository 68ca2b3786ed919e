"""The warehouse as the feed pipeline's store (k2.services.pipeline.Store), for the services that
write: `k2 run` with either transport."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from k2.config import Settings
from k2.errors import first_line
from k2.exchanges.base import ExchangeAdapter, Instrument
from k2.feed.gaps import Gap
from k2.services.api import Request, Response, Route, json_response
from k2.services.history_jobs import HistoryJobs
from k2.services.pipeline import log
from k2.transport import spool
from k2.warehouse import open_warehouse, stored_query
from k2.warehouse.instruments import instrument_map, upsert_instruments


def open_for_writing(settings: Settings):
    """The warehouse of a long-running writer (library pages only opening needed given back)."""
    return open_warehouse(settings.data_dir, url=settings.warehouse_url,
                          release_startup_pages=settings.release_startup_pages, for_writing=True)


class WarehouseStore:
    """What the pipeline keeps in, and asks of, the warehouse: instrument lists, gap-ledger
    versions, the last stored trade per symbol (to find gaps since the previous run), reads for
    the API, and the measured ingest latency at the end."""

    def __init__(self, wh, read_limits=None):
        self.wh = wh
        self.reads = wh.reads(read_limits)
        self._pending_writes: set = set()
        # one thread: ledger versions are written in the order they were made
        self._ledger_writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="k2-ledger")
        self._closing = threading.Event()
        self._unwritten: list[dict] = []  # versions the warehouse would not take before the stop

    def store_instruments(self, exchange: str, instruments: list[Instrument]) -> None:
        n = upsert_instruments(self.wh, exchange, instruments, "exchange")
        log.info("%s: %d instruments from the exchange (%d new or changed)", exchange, len(instruments), n)

    def known_instruments(self, exchange: str) -> set[str]:
        return set(instrument_map(self.wh, exchange))

    def background(self, pipeline, stop: asyncio.Event) -> list:
        """Tasks that live as long as the run: the reconciliation with the venues' candles when
        K2_RECONCILE is on (k2.services.reconcile)."""
        if not pipeline.settings.reconcile:
            return []
        from k2.services.reconcile import RunReconciler

        return [RunReconciler(pipeline, self.wh).run(stop)]

    def routes(self, transport) -> list[Route]:
        """K2's own history jobs handed to this process while it holds the data dir (`k2 import`,
        `k2 backfill`, `k2 load` while `k2 run` runs: POST /api/history, k2.history.handoff is the
        client). Only a transport that can write between its own batches takes them (direct)."""
        if not hasattr(transport, "write_now"):
            return []
        jobs = HistoryJobs(self.wh, transport)

        def history(req: Request) -> Response:
            try:
                return json_response(200, jobs.handle(json.loads(req.body)))
            except Exception as exc:  # the job's one-line error goes back to the command that sent it
                return json_response(400, {"error": first_line(exc)})

        return [Route("POST", "/api/history", history, "token")]

    def stored_history(self, adapter: ExchangeAdapter) -> tuple[dict[str, int], dict[str, int]]:
        """Last stored id (sequential exchanges) and trade time per symbol: gaps since the last run."""
        rows = self.wh.rows(stored_query("last_trades"), {"bronze": adapter.bronze_table})
        times = {r[0]: int(r[1]) for r in rows}
        ids = {r[0]: int(r[2]) for r in rows} if adapter.sequential_id_index is not None else {}
        return ids, ({} if ids else times)

    def gaps_to_retry(self, adapter: ExchangeAdapter) -> list[Gap]:
        """Gaps an earlier run left open (or gave up on because REST failed), to be retried."""
        rows = self.wh.rows(stored_query("gaps_to_retry"), {"exchange": adapter.name})
        names = ("gap_id", "exchange", "symbol", "kind", "start", "end", "since", "recovered", "detail", "detected",
                 "updated")
        return [Gap.from_ledger(dict(zip(names, r))) for r in rows]

    def store_gap(self, gap: Gap) -> None:
        """Write a ledger version off the event loop (the warehouse may be busy inserting), in
        order; the version's own time decides which one wins anyway."""
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(self._ledger_writer, self._write_gap, gap.ledger_params())
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    def _write_gap(self, params: dict) -> None:
        """Write one version, retrying while the warehouse refuses (a full disk) until the stop;
        a version still unwritten then is not lost for good: the gap stays open in the ledger and
        the next start retries it."""
        delay = 0.5
        while True:
            try:
                self.wh.execute(stored_query("gap_upsert"), params)
                return
            except Exception as exc:
                reason = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                if self._closing.is_set():
                    log.error("gaps ledger: could not write %s (%s) before the stop: %s; kept in the spool",
                              params["gap_id"], params["state"], reason)
                    self._unwritten.append(params)
                    return
                log.warning("gaps ledger: could not write %s (%s), retrying in %.0f s: %s", params["gap_id"],
                            params["state"], delay, reason)
                self._closing.wait(delay)
                delay = min(delay * 2, 10.0)

    async def drain(self) -> None:
        """Write the ledger versions still queued (each gets one more try once stopping)."""
        if self._pending_writes:
            await asyncio.wait(set(self._pending_writes), timeout=10)
            self._closing.set()  # writes still retrying make their last attempt
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        self._closing.set()
        self._ledger_writer.shutdown(wait=True)
        if self._unwritten:  # the next start writes them (k2.transport.direct.resend_spool)
            try:
                path = spool.write_spool(Path(str(getattr(self.wh, "data_dir", "."))), {}, [], self._unwritten)
                log.error("gaps ledger: %d versions saved to %s", len(self._unwritten), path)
            except OSError as exc:
                log.critical("gaps ledger: %d versions lost (the spool cannot be written: %s)",
                             len(self._unwritten), exc)

    def write(self, sql: str, fmt: str) -> str:
        """`k2 query --write`: in a session of its own, never the writer's (k2.warehouse.reads)."""
        return self.reads.write(sql, fmt)

    def latency_percentiles(self, since_us: int) -> dict[str, float]:
        rows = self.wh.rows(stored_query("ingest_latency"), {"s": since_us})
        if not rows or int(rows[0][0]) == 0:
            return {}
        return {"p50": float(rows[0][1]), "p99": float(rows[0][2]), "p99.9": float(rows[0][3])}
