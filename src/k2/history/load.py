"""`k2 load`: replay a file of raw WebSocket frames (one per line, as the exchange sent them)
through the same adapter parser as the live feed, into bronze and on to silver and gold.

Parsing runs on this thread while the previous batch is inserted on a writer thread (chDB
releases the GIL), so the two overlap on a two-core machine. The input (a file, a pipe or
stdin; gzip, zstd, bz2 or xz) is opened and its first lines checked by k2.history.inputs before
anything is written. Symbols the instruments table does not know are placed before their
first batch is written (k2.history.placement), so silver is right the first time.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Callable, Iterable

import pyarrow.compute as pc

from k2.errors import FrameError
from k2.exchanges.base import ExchangeAdapter, FrameKind
from k2.history.inputs import open_frames, sniff
from k2.history.placement import Placement
from k2.rejects import Reject, now_us
from k2.warehouse.bronze import BronzeWriter, write_rejects
from k2.warehouse.instruments import upsert_instruments
from k2.warehouse.memory import FreedMemoryRelease, trim_c_heap

DEFAULT_BATCH = 50_000
#: INSERTs at a time (_Writer; `k2 load --streams`). Two load 1M trades ~1.2x as fast as one at
#: 384-402 MB instead of ~345, but 10M at 0.87-0.89x and 432-439 MB (ADR 0036): one unless asked.
DEFAULT_STREAMS = 1
#: parsed rows are turned into Arrow columns this many at a time: a batch waits as columns, and
#: the Python tuples alive at once stay a few MB (issue 22: `k2 load` in bounded memory)
COLUMNAR_ROWS = 8_192
#: seconds between two purges of the engine's freed memory during a load
PURGE_EVERY_S = 2.0


@dataclass
class LoadReport:
    exchange: str
    path: str
    frames: int = 0
    trades: int = 0
    written: int = 0
    rejects: int = 0
    blank_lines: int = 0
    other: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    compression: str | None = None
    #: native symbols no instrument list placed: their trades are flagged unknown_instrument
    unplaced: list[str] = field(default_factory=list)
    #: why the exchange's instrument list could not be fetched ("" = fetched, or not needed)
    instruments_error: str = ""

    @property
    def duplicates(self) -> int:
        return self.trades - self.written

    def summary(self) -> str:
        other = ", ".join(f"{k} {v}" for k, v in sorted(self.other.items())) or "none"
        rate = self.trades / self.seconds if self.seconds else 0.0
        packed = f" ({self.compression})" if self.compression else ""
        return (
            f"{self.exchange}: {self.path}{packed}: {self.frames} frames, {self.trades} trades "
            f"({self.written} new, {self.duplicates} already stored), {self.rejects} rejected, "
            f"non-trade frames: {other}; {self.seconds:.2f} s, {rate:,.0f} trades/s"
        )


class _Writer(threading.Thread):
    """Writes batches in order; at most `depth` batches wait, so memory stays bounded.

    `streams=2`: a batch whose rows are all known new without a probe (a load of trades newer
    than what is stored: BronzeWriter.new_rows) is inserted on a second connection while this
    thread goes on with the next one; one INSERT of the views' chain keeps about one core busy, and
    the parse thread waited for it a third of the time. Any other batch first waits for the second
    stream to end, so that its probe sees every earlier row."""

    def __init__(self, writer: BronzeWriter, wh, report: LoadReport, placement: Placement | None = None,
                 depth: int = 2, write=None, streams: int = 1):
        super().__init__(name="k2-load-writer", daemon=True)
        self.writer, self.wh, self.report, self.placement = writer, wh, report, placement
        self.write = write  # rows -> new rows: a running pipeline's writer (k2 load while k2 run runs)
        self.streams = streams if write is None and streams > 1 and hasattr(wh, "bulk_session") else 1
        # with two streams the second INSERT is itself a batch in waiting: one in the queue is enough
        # (1M frames: 397 MB peak instead of 402-406, the same rate)
        self.queue: Queue = Queue(maxsize=1 if self.streams > 1 else depth)
        self.error: BaseException | None = None
        # chDB's jemalloc keeps the views' blocks of the last inserts resident for seconds: hand
        # them back at most every PURGE_EVERY_S (after every insert, the next insert faulted the
        # pages back in: 3M trades took +25 % CPU for -45 MB, ADR 0029), and the library pages the
        # inserts touched, as `k2 import` does (10M trades: 414-421 MB vs 456-461, CPU the same)
        self.freed = FreedMemoryRelease(wh, interval_s=PURGE_EVERY_S, library_pages=True)
        self._journal = getattr(wh, "journal", None)
        self._running: dict[str, int] = {}  # token -> first trade time (µs) of the INSERTs running
        self._lock = threading.Lock()
        self._beside: threading.Thread | None = None  # the second stream's INSERT, while it runs
        self._beside_result: list = []  # what it wrote, or how it failed

    def run(self) -> None:
        bulk = None
        try:
            bulk = self.wh.bulk_session() if self.streams > 1 else None
        except BaseException as exc:
            self.error = exc
        while True:
            item = self.queue.get()
            if item is None:
                break
            if self.error is not None:
                # after a failure nothing more is written, but the queue is still emptied: the
                # loader, blocked on a full queue, must come back to learn the error and stop
                continue
            try:
                self._write(item, bulk)
            except BaseException as exc:  # surfaced by the loader thread
                self.error = exc
        try:
            self._join_beside()
        except BaseException as exc:
            self.error = self.error or exc  # the first failure is the one to tell
        if bulk is not None:
            bulk.close()

    def _write(self, item: tuple, bulk) -> None:
        batch, rejects, instruments = item
        if instruments:  # before the batch, so silver places its trades
            upsert_instruments(self.wh, self.writer.adapter.name, instruments, "load")
        if batch is not None and self.write is not None:
            self.report.written += self.write(batch)
        elif batch is not None:
            arrays = self.writer.new_rows(batch) if bulk is not None else None
            if arrays is None:
                self._join_beside()  # a probe must see every earlier row
                self.report.written += self.writer.commit(batch, source="file")
            else:
                self.writer.remember(batch)
                if len(arrays[0]) and self._beside_free():
                    self._beside = threading.Thread(target=self._insert_beside, args=(batch, arrays, bulk),
                                                    name="k2-load-writer-2", daemon=True)
                    self._beside.start()
                elif len(arrays[0]):
                    self.report.written += self._insert(batch, arrays, None)
            self.freed.after_write()
            trim_c_heap()  # what the batch's Arrow columns freed
        if rejects:
            write_rejects(self.wh, rejects)

    def _insert(self, batch, arrays: list, via) -> int:
        """One INSERT of rows known new, under the crash journal: while INSERTs run, it names the
        earliest first trade time among them (the next open recomputes silver and gold from there),
        and it is removed when none runs. A failed INSERT leaves its entry (the next open repairs)."""
        with self._lock:
            self._running[batch.token] = batch.first_time_us
            if self._journal is not None:
                self._journal.begin(self.writer.adapter.bronze_table, batch.token, min(self._running.values()))
        written = self.writer.insert(batch, arrays, "file", via)
        with self._lock:
            del self._running[batch.token]
            if self._journal is not None and not self._running:
                self._journal.done()
        return written

    def _insert_beside(self, batch, arrays: list, via) -> None:
        try:
            self._beside_result.append(self._insert(batch, arrays, via))
        except BaseException as exc:
            self._beside_result.append(exc)

    def _beside_free(self) -> bool:
        """Whether the second stream is idle (collecting what its last INSERT did)."""
        if self._beside is not None and self._beside.is_alive():
            return False
        self._join_beside()
        return True

    def _join_beside(self) -> None:
        """Wait for the second stream's INSERT; count its rows, or raise how it failed."""
        if self._beside is None:
            return
        self._beside.join()
        self._beside = None
        result = self._beside_result.pop()
        if isinstance(result, BaseException):
            raise result
        self.report.written += result

    def columnar(self, rows: list) -> list:
        """`rows` as they wait for the batch: Arrow columns built now (a Python tuple of a trade
        takes ~530 bytes, its columns ~100), or the tuples a running pipeline's writer wants."""
        return list(rows) if self.write is not None else [self.writer.columnar(rows)]

    def put(self, rows: list, rejects: list) -> None:
        """Prepare the batch on the calling thread (Python work) while the writer thread inserts
        the previous one (database work, GIL released). `rows`: what `columnar` made."""
        if self.error:
            raise self.error
        si = self.writer.adapter.symbol_index
        if self.write is not None:  # the running pipeline prepares its own batches
            batch = list(rows) if rows else None
            symbols = list({r[si] for r in rows})
        else:
            batch = self.writer.prepare(rows) if rows else None
            symbols = pc.unique(batch.arrays[si]).to_pylist() if batch is not None else []
        instruments = self.placement.place(symbols) if symbols and self.placement is not None else []
        self.queue.put((batch, list(rejects), instruments))


def _chunks(f, size: int = 256):
    """(number of the first line, frames) for runs of `size` lines of `f` (an iterable of byte
    lines), line endings removed."""
    lineno, chunk = 1, []
    for line in f:
        chunk.append(line.rstrip(b"\r\n"))
        if len(chunk) == size:
            yield lineno, chunk
            lineno, chunk = lineno + size, []
    if chunk:
        yield lineno, chunk


def load_file(wh, adapter: ExchangeAdapter, path: Path | str, batch_size: int = DEFAULT_BATCH,
              placement: Placement | None = None, write=None, streams: int = DEFAULT_STREAMS) -> LoadReport:
    """Load a frame file (`-` = stdin; compressed or not). Raises K2Error before writing anything
    when the input cannot be read, is empty, or is not `adapter`'s frames. `placement` places
    symbols the instruments table does not know (default: offline, from the symbols' own form).
    `write(rows) -> new rows`: hand the batches to a running pipeline's writer instead (the
    process holding the data dir, k2.services.history_jobs)."""
    with open_frames(path) as (lines, name, compression):
        head = sniff(adapter, lines, name)
        return load_lines(wh, adapter, itertools.chain(head, lines), name, compression, batch_size, placement,
                          write, streams=streams)


def load_lines(wh, adapter: ExchangeAdapter, lines: Iterable[bytes], name: str, compression: str | None = None,
               batch_size: int = DEFAULT_BATCH, placement: Placement | None = None, write=None,
               progress: Callable[[LoadReport], None] | None = None, streams: int = DEFAULT_STREAMS) -> LoadReport:
    """Load frames (byte lines) already opened and checked (k2.history.inputs). `progress(report)`
    is called every 256 lines."""
    report = LoadReport(adapter.name, name, compression=compression)
    placement = placement or Placement(wh, adapter)
    _load(wh, adapter, lines, Path(name).name, report, batch_size, placement, write, progress, streams)
    report.unplaced = sorted(placement.unplaced)
    report.instruments_error = placement.fetch_error
    return report


def _load(wh, adapter: ExchangeAdapter, lines, origin: str, report: LoadReport, batch_size: int,
          placement: Placement, write=None, progress=None, streams: int = DEFAULT_STREAMS) -> None:
    # repeated trades stay in the batch: the writer keeps each key's first row (in C++), then
    # probes bronze only for rows not newer than what it already holds
    writer = _Writer(BronzeWriter(wh, adapter, skip_probe_when_newer=True), wh, report, placement, write=write,
                     streams=streams)
    writer.start()
    session = adapter.session()  # one file = one connection's frames (Bitfinex channel ids)
    parse, parse_trades = session.parse, session.parse_trade_frames
    rows: list[tuple] = []  # parsed, not yet columnar
    ready: list = []  # the batch so far, in columnar pieces (_Writer.columnar)
    in_batch = 0
    rejects: list[Reject] = []
    started = time.perf_counter()
    received = now_us()

    def one_by_one(first_lineno: int, frames: list[bytes]) -> None:
        """The careful path: classify each frame, count the others, reject the bad ones."""
        for lineno, frame in enumerate(frames, first_lineno):
            if not frame.strip():
                report.blank_lines += 1
                continue
            report.frames += 1
            try:
                parsed = parse(frame, received)
            except FrameError as exc:
                reason = str(exc)
            except Exception as exc:  # a parser bug must not lose the frame either
                reason = f"parser error: {exc!r:.200}"
            else:
                if parsed.kind is FrameKind.TRADES:
                    report.trades += len(parsed.rows)
                    rows.extend(parsed.rows)
                else:
                    report.other[parsed.kind.value] += 1
                continue
            report.rejects += 1
            rejects.append(Reject(adapter.name, "file", reason, frame, received, f"{origin}:{lineno}"))

    # a load allocates millions of short-lived acyclic tuples: the cyclic collector would scan them
    # again and again for nothing (measured: a third of the parse thread's time). Paused, not off.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for first_lineno, frames in _chunks(lines, min(256, batch_size)):
            fast = parse_trades(frames, received)
            if fast is None:
                one_by_one(first_lineno, frames)
            else:  # the usual chunk: trade frames only, all valid
                report.frames += len(frames)
                report.trades += len(fast)
                rows.extend(fast)
            if progress is not None:
                progress(report)
            if len(rows) >= COLUMNAR_ROWS:
                in_batch += len(rows)
                ready += writer.columnar(rows)
                rows.clear()
            if in_batch + len(rows) >= batch_size:
                writer.put(ready + writer.columnar(rows) if rows else ready, rejects)
                rows.clear()  # put() copied what it needs
                rejects.clear()
                ready, in_batch = [], 0
                received = now_us()
        writer.put(ready + writer.columnar(rows) if rows else ready, rejects)
    finally:
        if gc_was_enabled:
            gc.enable()
        writer.queue.put(None)
        writer.join()
    if writer.error:
        raise writer.error
    report.seconds = time.perf_counter() - started
