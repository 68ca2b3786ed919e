"""`k2 run` reconciles by itself (K2_RECONCILE=on): every K2_RECONCILE_INTERVAL_S, the closed 1m
windows of the last K2_RECONCILE_HOURS of every configured symbol are compared with the venue's
own candles (k2.history.reconcile), one request at a time at the venue's documented pace. Windows
with missing trades are backfilled through the live transport's writer (`write_now`, as history
jobs are) and checked again; what stays missing, extra or unexplained is logged as a warning and
counted in `k2_reconcile_windows_total{exchange,verdict}` (the K2ReconcileUnexplained alert).

The newest two minutes are left out: trades of a window still arrive (and a gap is still being
filled by the live feed) for a moment after it closes. A stop is honoured between requests.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

from k2.errors import K2Error
from k2.exchanges import get_adapter
from k2.history.backfill import http_get
from k2.history.reconcile import Reconciler
from k2.rejects import now_us
from k2.services.pipeline import log

#: the newest windows are left alone: their last trades may still be on their way
SETTLE_US = 120 * 1_000_000
FIRST_DELAY_S = 60.0


class RunReconciler:
    def __init__(self, pipeline: Any, wh: Any):
        self.pipeline, self.wh = pipeline, wh
        self.settings = pipeline.settings
        self.stopping = threading.Event()
        #: (exchange, verdict) -> windows this process checked (the final verdict after a repair)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        pipeline.reconcile_counts = self.counts

    def _fetch(self, url: str) -> bytes:
        if self.stopping.is_set():
            raise K2Error("k2 run is stopping")
        return http_get(url)

    async def run(self, stop: asyncio.Event) -> None:
        delay = min(FIRST_DELAY_S, self.settings.reconcile_interval_s)
        while not await _wait(stop, delay):
            for exchange in self.pipeline.exchanges:
                if stop.is_set():
                    break
                try:
                    await asyncio.to_thread(self.exchange, exchange, stop)
                except Exception as exc:  # one venue's trouble never stops the run
                    log.warning("reconcile %s: %s", exchange, str(exc).splitlines()[0][:300] if str(exc) else exc)
            delay = self.settings.reconcile_interval_s
        self.stopping.set()

    def exchange(self, name: str, stop: asyncio.Event) -> None:
        ex = self.settings.exchange(name)
        adapter = get_adapter(name)
        if adapter.candles is None:
            return
        rec = Reconciler(adapter, ex.rest_url, self.wh, fetch=self._fetch,
                         state_dir=Path(self.settings.data_dir) / "history")
        until = now_us() - SETTLE_US
        since = until - int(self.settings.reconcile_hours * 3600 * 1_000_000)
        transport = self.pipeline.transport
        for symbol in ex.symbols:
            if stop.is_set():
                self.stopping.set()
                return
            native = adapter.native_symbol(symbol)
            rep = rec.check(native, "1m", since, until)
            if rep.counts()["missing"] and adapter.rest_history is not None and hasattr(transport, "write_now") \
                    and ex.adapter.bronze_table == adapter.bronze_table:
                try:
                    rep = rec.repair(rep, lambda rows: transport.write_now(adapter, rows, "rest"))
                except K2Error as exc:
                    log.warning("reconcile %s %s: repair failed: %s", name, native, exc)
            for verdict, n in rep.counts().items():
                self.counts[(name, verdict)] += n
            if rep.error:
                log.warning("reconcile %s", rep.error)
            (log.warning if rep.unexplained else log.info)("reconcile %s", rep.summary())


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until stopped; True when stopped."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False
