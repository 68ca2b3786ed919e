"""The warehouse as the feed pipeline's store (k2.services.pipeline.Store), for the services that
write: `k2 run` with either transport."""

from __future__ import annotations

import asyncio
import json

from k2.config import Settings
from k2.errors import first_line
from k2.exchanges.base import ExchangeAdapter, Instrument
from k2.feed.gaps import Gap
from k2.services.api import Request, Response, Route, json_response
from k2.services.history_jobs import HistoryJobs
from k2.services.pipeline import log
from k2.warehouse import open_warehouse, stored_query
from k2.warehouse.instruments import instrument_map, upsert_instruments


def open_for_writing(settings: Settings):
    """The warehouse of a long-running writer (library pages only opening needed given back)."""
    return open_warehouse(settings.data_dir, url=settings.warehouse_url,
                          release_startup_pages=settings.release_startup_pages)


class WarehouseStore:
    """What the pipeline keeps in, and asks of, the warehouse: instrument lists, gap-ledger
    versions, the last stored trade per symbol (to find gaps since the previous run), reads for
    the API, and the measured ingest latency at the end."""

    def __init__(self, wh, read_limits=None):
        self.wh = wh
        self.reads = wh.reads(read_limits)
        self._pending_writes: set = set()

    def store_instruments(self, exchange: str, instruments: list[Instrument]) -> None:
        n = upsert_instruments(self.wh, exchange, instruments, "exchange")
        log.info("%s: %d instruments from the exchange (%d new or changed)", exchange, len(instruments), n)

    def known_instruments(self, exchange: str) -> set[str]:
        return set(instrument_map(self.wh, exchange))

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

    def store_gap(self, gap: Gap) -> None:
        """Write a ledger version off the event loop (the warehouse may be busy inserting)."""
        loop = asyncio.get_running_loop()
        task = loop.run_in_executor(None, self.wh.execute, stored_query("gap_upsert"), gap.ledger_params())
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)

    async def drain(self) -> None:
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)

    def write(self, sql: str, fmt: str) -> str:
        """`k2 query --write`: in a session of its own, never the writer's (k2.warehouse.reads)."""
        return self.reads.write(sql, fmt)

    def latency_percentiles(self, since_us: int) -> dict[str, float]:
        rows = self.wh.rows(stored_query("ingest_latency"), {"s": since_us})
        if not rows or int(rows[0][0]) == 0:
            return {}
        return {"p50": float(rows[0][1]), "p99": float(rows[0][2]), "p99.9": float(rows[0][3])}
