"""`k2 serve`: the read endpoint over a data dir when nothing is ingesting.

The same endpoint `k2 run` serves (ClickHouse's HTTP interface over the read door, `/metrics`,
`/healthz`, `/api/status`), without feeds: Grafana, DBeaver, clickhouse-connect and the Python API
read a data dir this way between runs, or a ClickHouse server through K2's read-only door. It holds
the data dir like `k2 run` (its run file sends the read commands to it); stop it before `k2 run`.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from k2.config import Settings
from k2.monitoring.metrics import Exposition, process_families
from k2.services.api import ApiHandlers
from k2.services.lifecycle import ServiceEndpoint, stop_on_signals
from k2.warehouse import open_warehouse

log = logging.getLogger("k2.serve")


def run_serve(settings: Settings, addr: str | None = None, duration: float | None = None,
              on_ready=None) -> None:
    """Serve reads until SIGINT/SIGTERM (or `duration`). `on_ready(address)` is told where."""
    wh = open_warehouse(settings.data_dir, url=settings.warehouse_url, apply_schema=not settings.warehouse_url)
    stop = threading.Event()
    started = time.time()
    try:
        reads = wh.reads(settings.read)
        embedded = wh.backend == "embedded"

        def status() -> dict:
            return {"pid": os.getpid(), "role": "serve", "started_at": started, "now": time.time(),
                    "connections": [], "transport": "none", "warehouse": wh.backend}

        def metrics() -> bytes:
            e = Exposition()
            process_families(e)
            return e.render()

        handlers = ApiHandlers(status, metrics, lambda: True, reads=reads, write=reads.write)
        with stop_on_signals(stop):
            with ServiceEndpoint(addr or settings.metrics_addr, handlers, data_dir=settings.data_dir,
                                 run_info={"started_at": started, "role": "serve"} if embedded else None,
                                 limits=settings.read,
                                 addr_source="--addr" if addr else settings.metrics_addr_source) as endpoint:
                if on_ready is not None:
                    on_ready(endpoint.address)
                stop.wait(duration)
    finally:
        wh.close()
