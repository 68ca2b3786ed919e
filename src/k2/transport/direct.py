"""The direct transport: feed -> bounded in-process buffer -> writer thread -> bronze.

The event loop only appends rows under a short lock. One writer thread takes everything
buffered and inserts it (chDB releases the GIL, so parsing and inserting overlap on two cores).
A batch is written when it reaches `max_rows` or its oldest row is `max_delay_s` old, so load
makes batches big and a quiet feed still lands within tens of milliseconds. When the buffer
passes `high_water` rows the feed is told to stop reading its sockets (TCP back-pressure) until
the writer has drained it below half. A failed insert keeps its rows and is retried; nothing
received is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from k2.exchanges.base import ExchangeAdapter
from k2.warehouse.sink import BronzeWriter, Reject, write_rejects

log = logging.getLogger("k2.transport")


@dataclass
class WriterStats:
    written: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, int] = field(default_factory=dict)
    rejects_written: int = 0
    batches: int = 0
    last_batch_rows: int = 0
    last_insert_s: float = 0.0
    insert_errors: int = 0
    last_error: str = ""


class DirectTransport:
    name = "direct"

    def __init__(self, wh, adapters: list[ExchangeAdapter], max_rows: int = 50_000,
                 max_delay_s: float = 0.05, high_water: int = 500_000):
        self.wh = wh
        self.writers = {a.name: BronzeWriter(wh, a) for a in adapters}
        self.max_rows, self.max_delay_s, self.high_water = max_rows, max_delay_s, high_water
        self.stats = WriterStats(written={a.name: 0 for a in adapters},
                                 duplicates={a.name: 0 for a in adapters})
        self._buf: dict[str, list[tuple]] = {a.name: [] for a in adapters}
        self._rejects: list[Reject] = []
        self._count = 0
        self._oldest = 0.0
        self._cv = threading.Condition(threading.Lock())
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="k2-writer", daemon=True)
        self.paused = False
        self._on_pause: Callable[[bool], None] | None = None

    # -- feed side (event loop thread) ------------------------------------------------------------
    def set_pause_callback(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)` pauses socket reads, `callback(False)` resumes; called on the loop."""
        self._on_pause = callback

    def submit(self, adapter: ExchangeAdapter, rows: list[tuple]) -> None:
        with self._cv:
            first = not self._count
            if first:
                self._oldest = time.monotonic()
            self._buf[adapter.name].extend(rows)
            self._count += len(rows)
            if first or self._count >= self.max_rows:  # start the delay clock, or flush now
                self._cv.notify()
        if self._count > self.high_water and not self.paused and self._on_pause:
            self.paused = True
            self._on_pause(True)

    def submit_reject(self, reject: Reject) -> None:
        with self._cv:
            first = not self._count
            if first:
                self._oldest = time.monotonic()
                self._cv.notify()
            self._rejects.append(reject)
            self._count += 1

    @property
    def buffered(self) -> int:
        return self._count

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self, loop=None) -> "DirectTransport":
        self._loop = loop
        self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Write everything still buffered, then stop the writer."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        self._thread.join(timeout)

    # -- writer thread --------------------------------------------------------------------------
    def _take(self) -> tuple[dict[str, list[tuple]], list[Reject]] | None:
        with self._cv:
            while True:
                if self._count and (self._stopping or self._count >= self.max_rows
                                    or time.monotonic() - self._oldest >= self.max_delay_s):
                    break
                if self._stopping:
                    return None
                wait = None
                if self._count:
                    wait = max(0.0, self.max_delay_s - (time.monotonic() - self._oldest))
                self._cv.wait(wait)
            taken = {k: v for k, v in self._buf.items() if v}
            rejects = self._rejects
            self._buf = {k: [] for k in self._buf}
            self._rejects = []
            self._count = 0
        return taken, rejects

    def _run(self) -> None:
        while True:
            item = self._take()
            if item is None:
                return
            taken, rejects = item
            self._write_until_done(taken, rejects)
            if self.paused and self._count < self.high_water // 2:
                self.paused = False
                loop = getattr(self, "_loop", None)
                if self._on_pause and loop is not None:
                    loop.call_soon_threadsafe(self._on_pause, False)

    def _write_until_done(self, taken: dict[str, list[tuple]], rejects: list[Reject]) -> None:
        delay = 0.1
        while taken or rejects:
            try:
                started = time.perf_counter()
                for name in list(taken):
                    rows = taken[name]
                    n = self.writers[name].write(rows, source="ws")
                    self.stats.written[name] += n
                    self.stats.duplicates[name] += len(rows) - n
                    self.stats.last_batch_rows = len(rows)
                    del taken[name]
                if rejects:
                    write_rejects(self.wh, rejects, token="")
                    self.stats.rejects_written += len(rejects)
                    rejects = []
                self.stats.batches += 1
                self.stats.last_insert_s = time.perf_counter() - started
            except Exception as exc:  # keep the rows, retry: nothing received is dropped
                self.stats.insert_errors += 1
                self.stats.last_error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                log.error("insert failed, retrying in %.1f s: %s", delay, self.stats.last_error)
                log.debug("insert failure", exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
