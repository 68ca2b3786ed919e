"""`k2 run`: live trades into the warehouse in one process, through the direct transport (an
in-process queue and a writer thread). `k2 run --kafka` is k2.services.run_kafka.

The feed pipeline (k2.services.pipeline) with the warehouse as its store. It serves reads, status
and metrics on loopback while it holds the data dir (chDB allows one process per directory) and
stops cleanly on SIGINT/SIGTERM or after --duration, with everything received written before exit.
"""

from __future__ import annotations

import asyncio

from k2.config import Settings
from k2.services.lifecycle import tune_gc_for_streaming
from k2.services.pipeline import Pipeline, RunSummary, adapters_for
from k2.services.store import WarehouseStore, open_for_writing
from k2.transport.direct import DirectTransport, resend_spool


def run_direct(settings: Settings, exchanges: list[str], duration: float | None = None,
               progress: bool | None = None) -> RunSummary:
    """`k2 run`: the direct transport into the embedded (or server) warehouse."""
    wh = open_for_writing(settings)
    try:
        resend_spool(wh, settings.data_dir)  # rows an earlier run could not write before it stopped
        transport = DirectTransport(wh, adapters_for(settings, exchanges), settings.batch_max_rows,
                                    settings.batch_max_delay_s, settings.queue_max_rows)
        pipeline = Pipeline(settings, exchanges, transport, WarehouseStore(wh, settings.read), progress)
        tune_gc_for_streaming()
        return asyncio.run(pipeline.run(duration))
    finally:
        wh.close()
