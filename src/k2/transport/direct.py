"""The direct transport: feed -> bounded in-process buffer -> writer thread -> bronze.

The event loop only appends rows under a short lock. One writer thread takes what is buffered
and inserts it (chDB releases the GIL, so parsing and inserting overlap on two cores).
A batch is written when it reaches `max_rows` or its oldest row is `max_delay_s` old, so load
makes batches big and a quiet feed still lands within about a tenth of a second. A batch never
holds more than `max_rows`: when the feed outruns the writer, the backlog is written in batches of
that size, so the memory one INSERT takes stays bounded whatever the backlog (one INSERT of the
whole backlog took `k2 run` to 0.8-1 GB at 150k trades/s offered). (Every INSERT
has a fixed cost whatever its size -- four parts written, three views run, 30-60 ms of CPU on the
benchmark machine -- so 0.1 s rather than 0.05 means half as many INSERTs at low rates for about
the same p99.) When the buffer passes `high_water` rows the feed is told to stop reading its
sockets (TCP back-pressure) until the writer has drained it below half. A failed insert keeps its rows and is retried; nothing
received is dropped.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from k2.exchanges.base import ExchangeAdapter
from k2.monitoring.latency import observe_ingest
from k2.monitoring.metrics import reject_class
from k2.rejects import Reject
from k2.warehouse.bronze import BronzeWriter, write_rejects
from k2.warehouse.memory import FreedMemoryRelease

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
    #: exchange -> reason class -> rejects, for k2_rejects_total{reason} (see k2.monitoring.metrics.reject_class)
    rejects_by_reason: dict[str, dict[str, int]] = field(default_factory=dict)


class DirectTransport:
    name = "direct"

    def __init__(self, wh, adapters: list[ExchangeAdapter], max_rows: int = 50_000,
                 max_delay_s: float = 0.1, high_water: int = 200_000):
        self.wh = wh
        # the only writer of its data dir: trades newer than what it stored skip the key probe
        self.writers = {a.name: BronzeWriter(wh, a, skip_probe_when_newer=True) for a in adapters}
        self.max_rows, self.max_delay_s, self.high_water = max_rows, max_delay_s, high_water
        self.shutdown_retry_s = 30.0
        self.stats = WriterStats(written={a.name: 0 for a in adapters},
                                 duplicates={a.name: 0 for a in adapters})
        self._buf: dict[tuple[str, str], list[tuple]] = {}
        self._rejects: list[Reject] = []
        self._count = 0
        self._oldest = 0.0
        self._cv = threading.Condition(threading.Lock())
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="k2-writer", daemon=True)
        #: held while a batch is written: history rows handed to this process (write_now) go
        #: through the same writers, one write at a time, so live and history rows are stored once
        self._write_lock = threading.Lock()
        self.paused = False
        self._on_pause: Callable[[bool], None] | None = None

    # -- feed side (event loop thread) ------------------------------------------------------------
    def set_pause_callback(self, callback: Callable[[bool], None]) -> None:
        """`callback(True)` pauses socket reads, `callback(False)` resumes; called on the loop."""
        self._on_pause = callback

    def submit(self, adapter: ExchangeAdapter, rows: list[tuple], source: str = "ws") -> None:
        """`source` marks the rows in bronze: 'ws' live, 'rest' backfilled."""
        with self._cv:
            first = not self._count
            if first:
                self._oldest = time.monotonic()
            buf = self._buf.get((adapter.name, source))
            if buf is None:
                buf = self._buf[(adapter.name, source)] = []
            buf.extend(rows)
            self._count += len(rows)
            if first or self._count >= self.max_rows:  # start the delay clock, or flush now
                self._cv.notify()
        if self._count > self.high_water and not self.paused and self._on_pause:
            self.paused = True
            self._on_pause(True)

    def write_now(self, adapter: ExchangeAdapter, rows: list[tuple], source: str) -> int:
        """Write history rows (k2 backfill/load handed to this process) at once, between two live
        batches, through the exchange's writer; returns how many were new."""
        with self._write_lock:
            writer = self.writers.get(adapter.name)
            if writer is None:
                writer = self.writers[adapter.name] = BronzeWriter(self.wh, adapter, skip_probe_when_newer=True)
                self.stats.written.setdefault(adapter.name, 0)
                self.stats.duplicates.setdefault(adapter.name, 0)
            elif writer.adapter.bronze_table != adapter.bronze_table:
                raise ValueError(f"the running pipeline writes {adapter.name} to {writer.adapter.bronze_table}, "
                                 f"these rows are for {adapter.bronze_table} (another --api)")
            return writer.commit(writer.prepare(rows), source=source) if rows else 0

    def submit_reject(self, reject: Reject) -> None:
        by_class = self.stats.rejects_by_reason.setdefault(reject.exchange, {})
        cls = reject_class(reject.reason)
        by_class[cls] = by_class.get(cls, 0) + 1
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
    def _take(self) -> tuple[dict[tuple[str, str], list[tuple]], list[Reject]] | None:
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
            taken, room = {}, self.max_rows
            for key, rows in self._buf.items():
                if rows and room > 0:
                    taken[key] = rows[:room] if len(rows) > room else rows
                    room -= len(taken[key])
            for key, rows in taken.items():  # what did not fit stays, in order, for the next batch
                rest = self._buf[key][len(rows):]
                if rest:
                    self._buf[key] = rest
                else:
                    del self._buf[key]
            rejects = self._rejects
            self._rejects = []
            self._count -= sum(map(len, taken.values())) + len(rejects)
        return taken, rejects

    def _run(self) -> None:
        memory = FreedMemoryRelease(self.wh)
        while True:
            item = self._take()
            if item is None:
                return
            taken, rejects = item
            self._write_until_done(taken, rejects)
            memory.after_write()
            if self.paused and self._count < self.high_water // 2:
                self.paused = False
                loop = getattr(self, "_loop", None)
                if self._on_pause and loop is not None:
                    loop.call_soon_threadsafe(self._on_pause, False)

    def _write_until_done(self, taken: dict[tuple[str, str], list[tuple]], rejects: list[Reject]) -> None:
        """Insert until it works: a failed insert keeps its rows and is retried with backoff. Once
        stopping, retries are bounded (`shutdown_retry_s`) and what still cannot be written is
        spooled to a file, so a dead warehouse can neither lose trades nor hang the exit."""
        delay, deadline = 0.1, None
        while taken or rejects:
            try:
                started = time.perf_counter()
                for key in list(taken):
                    name, source = key
                    rows = taken[key]
                    writer = self.writers[name]
                    batch = writer.prepare(rows)
                    with self._write_lock:
                        n = writer.commit(batch, source=source)
                    del taken[key]
                    self.stats.written[name] += n
                    self.stats.duplicates[name] += len(rows) - n
                    self.stats.last_batch_rows = len(rows)
                    if source == "ws":  # live trades only: backfilled ones are late by design
                        self._observe(name, batch.times_us)
                if rejects:
                    write_rejects(self.wh, rejects, token="")
                    self.stats.rejects_written += len(rejects)
                    rejects = []
                self.stats.batches += 1
                self.stats.last_insert_s = time.perf_counter() - started
            except Exception as exc:  # keep the rows, retry: nothing received is dropped
                self.stats.insert_errors += 1
                self.stats.last_error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                if self._stopping:
                    deadline = deadline or time.monotonic() + self.shutdown_retry_s
                    if time.monotonic() > deadline:
                        self._spool(taken, rejects)
                        return
                log.error("insert failed, retrying in %.1f s: %s", delay, self.stats.last_error)
                log.debug("insert failure", exc_info=True)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _observe(self, name: str, times_us) -> None:
        """Latency metrics; a failure here must never turn into a retried insert."""
        try:
            observe_ingest(name, times_us)  # k2_ingest_latency_seconds
        except Exception:
            log.debug("latency observation failed", exc_info=True)

    def _spool(self, taken: dict[tuple[str, str], list[tuple]], rejects: list[Reject]) -> None:
        """Last resort at shutdown: keep unwritten rows as JSON lines (bronze column names)."""
        folder = os.path.join(str(getattr(self.wh, "data_dir", ".")), "spool")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"unwritten-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.jsonl")
        with open(path, "a", encoding="utf-8") as f:
            for (name, source), rows in taken.items():
                cols = self.writers[name].adapter.columns
                for row in rows:
                    f.write(json.dumps({"exchange": name, "source": source, **dict(zip(cols, row))}) + "\n")
            for r in rejects:
                f.write(json.dumps({"exchange": r.exchange, "reject": r.reason,
                                    "raw": r.raw.decode("utf-8", "replace")}) + "\n")
        n = sum(len(v) for v in taken.values()) + len(rejects)
        self.stats.spooled = getattr(self.stats, "spooled", 0) + n
        log.error("the warehouse kept failing at shutdown: %d rows saved to %s", n, path)
