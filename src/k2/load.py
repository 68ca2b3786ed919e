"""`k2 load`: replay a file of raw WebSocket frames (one per line, as the exchange sent them)
through the same adapter parser as the live feed, into bronze and on to silver and gold.

Parsing runs on this thread while the previous batch is inserted on a writer thread (chDB
releases the GIL), so the two overlap on a two-core machine.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue

from k2.errors import FrameError, K2Error
from k2.exchanges.base import ExchangeAdapter, FrameKind
from k2.warehouse.sink import BronzeWriter, Reject, now_us, write_rejects

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

    def __init__(self, writer: BronzeWriter, wh, report: LoadReport, depth: int = 2):
        super().__init__(name="k2-load-writer", daemon=True)
        self.writer, self.wh, self.report = writer, wh, report
        self.queue: Queue = Queue(maxsize=depth)
        self.error: BaseException | None = None

    def run(self) -> None:
        while True:
            item = self.queue.get()
            if item is None:
                return
            batch, rejects = item
            try:
                if batch is not None:
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
        self.queue.put((self.writer.prepare(rows) if rows else None, rejects))


def load_file(wh, adapter: ExchangeAdapter, path: Path | str, batch_size: int = DEFAULT_BATCH) -> LoadReport:
    path = Path(path)
    if not path.is_file():
        raise K2Error(f"no such file: {path}")
    report = LoadReport(adapter.name, str(path))
    writer = _Writer(BronzeWriter(wh, adapter), wh, report)
    writer.start()
    parse = adapter.session().parse  # one file = one connection's frames (Bitfinex channel ids)
    rows: list[tuple] = []
    rejects: list[Reject] = []
    started = time.perf_counter()
    received = now_us()
    other = report.other
    try:
        with path.open("rb") as f:
            for lineno, line in enumerate(f, 1):
                frame = line.rstrip(b"\r\n")
                if not frame.strip():
                    report.blank_lines += 1
                    continue
                report.frames += 1
                try:
                    parsed = parse(frame, received)
                except FrameError as exc:
                    report.rejects += 1
                    rejects.append(Reject(adapter.name, "file", str(exc), frame, received, f"{path.name}:{lineno}"))
                    continue
                except Exception as exc:  # a parser bug must not lose the frame either
                    report.rejects += 1
                    rejects.append(Reject(adapter.name, "file", f"parser error: {exc!r:.200}", frame,
                                          received, f"{path.name}:{lineno}"))
                    continue
                if parsed.kind is FrameKind.TRADES:
                    rows.extend(parsed.rows)
                    if len(rows) >= batch_size:
                        report.trades += len(rows)
                        writer.put(rows, rejects)
                        rows, rejects = [], []
                        received = now_us()
                else:
                    other[parsed.kind.value] += 1
        report.trades += len(rows)
        writer.put(rows, rejects)
    finally:
        writer.queue.put(None)
        writer.join()
    if writer.error:
        raise writer.error
    report.seconds = time.perf_counter() - started
    return report
