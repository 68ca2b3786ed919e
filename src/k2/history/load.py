"""`k2 load`: replay a file of raw WebSocket frames (one per line, as the exchange sent them)
through the same adapter parser as the live feed, into bronze and on to silver and gold.

Parsing runs on this thread while the previous batch is inserted on a writer thread (chDB
releases the GIL), so the two overlap on a two-core machine.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

from k2.errors import FrameError, K2Error
from k2.exchanges.base import ExchangeAdapter, FrameKind
from k2.rejects import Reject, now_us
from k2.warehouse.bronze import BronzeWriter, write_rejects

DEFAULT_BATCH = 100_000


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

    @property
    def duplicates(self) -> int:
        return self.trades - self.written

    def summary(self) -> str:
        other = ", ".join(f"{k} {v}" for k, v in sorted(self.other.items())) or "none"
        rate = self.trades / self.seconds if self.seconds else 0.0
        return (
            f"{self.exchange}: {self.path}: {self.frames} frames, {self.trades} trades "
            f"({self.written} new, {self.duplicates} already stored), {self.rejects} rejected, "
            f"non-trade frames: {other}; {self.seconds:.2f} s, {rate:,.0f} trades/s"
        )


class _Writer(threading.Thread):
    """Writes batches in order; at most `depth` batches wait, so memory stays bounded."""

    def __init__(self, writer: BronzeWriter, wh, report: LoadReport, depth: int = 2, write=None):
        super().__init__(name="k2-load-writer", daemon=True)
        self.writer, self.wh, self.report = writer, wh, report
        self.write = write  # rows -> new rows: a running pipeline's writer (k2 load while k2 run runs)
        self.queue: Queue = Queue(maxsize=depth)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch, rejects = item
            try:
                if batch is not None and self.write is not None:
                    self.report.written += self.write(batch)
                elif batch is not None:
                    self.report.written += self.writer.commit(batch, source="file")
                if rejects:
                    write_rejects(self.wh, rejects)
            except BaseException as exc:  # surfaced by the loader thread
                self.error = exc
                return

    def put(self, rows: list, rejects: list) -> None:
        """Prepare the batch on the calling thread (Python work) while the writer thread inserts
        the previous one (database work, GIL released)."""
        if self.error:
            raise self.error
        if self.write is not None:
            self.queue.put((list(rows) if rows else None, list(rejects)))
            return
        self.queue.put((self.writer.prepare(rows) if rows else None, list(rejects)))


def _chunks(f, size: int = 256):
    """(number of the first line, frames) for runs of `size` lines, line endings removed."""
    lineno, chunk = 1, []
    for line in f:
        chunk.append(line.rstrip(b"\r\n"))
        if len(chunk) == size:
            yield lineno, chunk
            lineno, chunk = lineno + size, []
    if chunk:
        yield lineno, chunk


def load_file(wh, adapter: ExchangeAdapter, path: Path | str, batch_size: int = DEFAULT_BATCH,
              write=None) -> LoadReport:
    """`write(rows) -> new rows`: hand the batches to a running pipeline's writer instead (the
    process holding the data dir, k2.services.history_jobs)."""
    path = Path(path)
    if not path.is_file():
        raise K2Error(f"no such file: {path}")
    report = LoadReport(adapter.name, str(path))
    # repeated trades stay in the batch: the writer keeps each key's first row (in C++), then
    # probes bronze only for rows not newer than what it already holds
    writer = _Writer(BronzeWriter(wh, adapter, skip_probe_when_newer=True), wh, report, write=write)
    writer.start()
    session = adapter.session()  # one file = one connection's frames (Bitfinex channel ids)
    parse, parse_trades = session.parse, session.parse_trade_frames
    rows: list[tuple] = []
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
            rejects.append(Reject(adapter.name, "file", reason, frame, received, f"{path.name}:{lineno}"))

    # a load allocates millions of short-lived acyclic tuples: the cyclic collector would scan them
    # again and again for nothing (measured: a third of the parse thread's time). Paused, not off.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with path.open("rb") as f:
            for first_lineno, frames in _chunks(f, min(256, batch_size)):
                fast = parse_trades(frames, received)
                if fast is None:
                    one_by_one(first_lineno, frames)
                else:  # the usual chunk: trade frames only, all valid
                    report.frames += len(frames)
                    report.trades += len(fast)
                    rows.extend(fast)
                if len(rows) >= batch_size:
                    writer.put(rows, rejects)
                    rows.clear()  # put() copied what it needs
                    rejects.clear()
                    received = now_us()
        writer.put(rows, rejects)
    finally:
        if gc_was_enabled:
            gc.enable()
        writer.queue.put(None)
        writer.join()
    if writer.error:
        raise writer.error
    report.seconds = time.perf_counter() - started
    return report
