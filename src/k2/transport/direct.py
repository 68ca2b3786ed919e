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

A full disk is not left to ClickHouse to find halfway through a part: below a reserve of free space
(k2.monitoring.health.DISK_RESERVE_BYTES) the writer does not insert, keeps the rows and says so
(health `writes` red), and goes on when space is back. Rows it still cannot write when told to stop
go to the spool (k2.transport.spool), which the next start re-sends (`resend_spool`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from k2.exchanges.base import ExchangeAdapter
from k2.monitoring.health import DISK_RESERVE_BYTES, free_bytes
from k2.monitoring.latency import observe_ingest
from k2.monitoring.metrics import reject_class
from k2.rejects import Reject
from k2.transport import spool
from k2.warehouse import stored_query
from k2.warehouse.bronze import BronzeWriter, PartsMayBeBroken, write_rejects
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
    #: the health facts (k2.monitoring.health.write_conditions): wall-clock times
    last_write_at: float | None = None
    failing_since: float | None = None
    failures_in_a_row: int = 0
    spooled: int = 0  # rows saved to the spool at the stop (re-sent at the next start)
    spool_path: str = ""
    lost: int = 0  # rows neither written nor spooled (the spool could not be written either)


class DiskFull(OSError):
    """Less free space than the writer's reserve on the data dir's filesystem."""


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
        self.started_at = time.time()
        self.halted = ""  # why inserts stopped for the rest of the run (parts may be broken)
        self._shutdown_deadline = 0.0
        # the embedded store's filesystem, watched for room before each insert
        self.data_dir: Path | None = Path(wh.data_dir) if getattr(wh, "backend", "") == "embedded" else None
        self.disk_reserve = DISK_RESERVE_BYTES

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
        delay = 0.1
        while taken or rejects:
            if self.halted:  # parts may be broken: no more inserts in this run; the stop spools
                if self._stopping:
                    self._spool(taken, rejects)
                    return
                with self._cv:
                    self._cv.wait(1.0)
                continue
            try:
                started = time.perf_counter()
                self._check_disk()
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
                self.stats.last_write_at = time.time()
                self.stats.failing_since, self.stats.failures_in_a_row = None, 0
            except PartsMayBeBroken as exc:
                self.halted = str(exc)
                self.stats.insert_errors += 1
                self.stats.failures_in_a_row += 1
                self.stats.failing_since = self.stats.failing_since or time.time()
                self.stats.last_error = self.halted
                log.critical("%s", self.halted)
            except Exception as exc:  # keep the rows, retry: nothing received is dropped
                self.stats.insert_errors += 1
                self.stats.failures_in_a_row += 1
                if self.stats.failing_since is None:
                    self.stats.failing_since = time.time()
                self.stats.last_error = str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__
                if self._stopping:  # one deadline for the whole stop, not one per batch
                    self._shutdown_deadline = self._shutdown_deadline or time.monotonic() + self.shutdown_retry_s
                    if time.monotonic() > self._shutdown_deadline or isinstance(exc, DiskFull):
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

    def _check_disk(self) -> None:
        if self.data_dir is None:
            return
        free = free_bytes(self.data_dir)
        if free is not None and free < self.disk_reserve:
            raise DiskFull(f"disk full: {free / 2**20:.0f} MB free on the filesystem of {self.data_dir} "
                           f"(K2 keeps {self.disk_reserve / 2**20:.0f} MB free); writing resumes when space is freed")

    def _spool(self, taken: dict[tuple[str, str], list[tuple]], rejects: list[Reject]) -> None:
        """Last resort at shutdown: keep unwritten rows in the spool, re-sent at the next start."""
        n = sum(len(v) for v in taken.values()) + len(rejects)
        by_adapter = {(self.writers[name].adapter, source): rows for (name, source), rows in taken.items()}
        try:
            path = spool.write_spool(Path(str(getattr(self.wh, "data_dir", "."))), by_adapter, rejects)
        except OSError as exc:
            self.stats.lost += n
            log.critical("the warehouse kept failing at shutdown and the spool cannot be written (%s): "
                         "%d rows are lost", exc, n)
            return
        self.stats.spooled += n
        self.stats.spool_path = str(path)
        log.error("the warehouse kept failing at shutdown: %d rows saved to %s (re-sent at the next start)", n, path)


def resend_spool(wh, data_dir: Path) -> int:
    """Write the rows earlier runs spooled (k2.transport.spool) into bronze, once: each file is
    claimed, written through the exactly-once writer (keys bronze holds are skipped, so a file
    re-sent twice adds nothing), then deleted. Returns the rows written. A failure leaves the
    file for the next start and raises."""
    written = 0
    for path in spool.pending_files(data_dir):
        path = spool.claim(path)
        content = spool.read_spool(path)
        new = 0
        for (adapter, source), rows in content.rows.items():
            new += BronzeWriter(wh, adapter).write(rows, source=source)
        if content.rejects:
            h = hashlib.blake2b(path.name.encode(), digest_size=12).hexdigest()
            write_rejects(wh, content.rejects, token=f"spool-{h}")
        for version in sorted(content.gaps, key=lambda g: int(g.get("updated") or 0)):
            wh.execute(stored_query("gap_upsert"), {"since": -1, **version})  # spooled by an older K2: no since
        log.warning("re-sent %d spooled rows from %s (%d new in bronze)", content.count, path, new)
        written += new
        if content.damaged_lines:
            spool.keep_damaged(path)
        else:
            path.unlink()
    return written
