"""History work handed to the process that holds the data dir (k2 import, k2 backfill and k2 load
while `k2 run` runs): chDB lets one process open a directory, so the other commands send their
job here (POST /api/history, k2.history.handoff is the client) instead of opening it.

  import  archive files: ClickHouse reads them here, chunk by chunk (the live writer gets the
          warehouse between chunks; archive rows go to their own bronze tables)
  rows    REST pages a `k2 backfill` fetched: written through the live transport's own writers,
          between two live batches, so a trade seen live and over REST is stored once
  load    a frame file: parsed here, batches written through the same writers
  reconcile  k2 reconcile: the venue's candles against this warehouse; --repair writes through the
          same writers (k2.history.reconcile.reconcile_job)
"""

from __future__ import annotations

from pathlib import Path

from k2.errors import K2Error
from k2.exchanges import get_adapter
from k2.history.archives import import_archives
from k2.history.load import load_file


class HistoryJobs:
    def __init__(self, wh, transport):
        self.wh = wh
        self.transport = transport

    def handle(self, req: dict) -> dict:
        job = req.get("job")
        if job == "import":
            # the files as `k2 import` checked them: not hashed again when unchanged since
            report = import_archives(self.wh, req.get("files") or req["paths"], req["exchange"], req.get("symbol"),
                                     int(req.get("chunk_lines") or 250_000))
            return report.to_json()
        if job == "rows":
            adapter = get_adapter(req["exchange"], req.get("api"))
            rows = [tuple(r) for r in req["rows"]]
            return {"written": self.transport.write_now(adapter, rows, req.get("source", "rest"))}
        if job == "load":
            adapter = get_adapter(req["exchange"], req.get("api"))
            report = load_file(self.wh, adapter, Path(req["path"]), batch_size=int(req.get("batch_size") or 100_000),
                               write=lambda rows: self.transport.write_now(adapter, rows, "file"))
            return {"summary": report.summary()}
        if job == "reconcile":
            from k2.history.reconcile import reconcile_job

            return reconcile_job(self.wh, self.transport, req)
        raise K2Error(f"unknown history job {job!r}")
