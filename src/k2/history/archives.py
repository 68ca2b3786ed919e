"""`k2 import`: exchange archive files into the warehouse, parsed by ClickHouse itself.

Formats (one bronze table each, ADR 0018; Kraken's is reconciliation only, ADR 0019):
  binance trades     BTCUSDT-trades-2024-01-15.zip / .csv, daily or monthly (…-2024-01.zip)
                     trade id, price, qty, quoteQty, time, isBuyerMaker, isBestMatch (no header)
  binance aggTrades  BTCUSDT-aggTrades-2024-01-15.zip: aggId, price, qty, firstTradeId,
                     lastTradeId, time, isBuyerMaker, isBestMatch
  kraken timesales   XBTUSD.csv from Kraken's Time & Sales download: unix seconds, price, volume

Every file is checked before any is loaded: name, venue and kind (by the name and by the first
line's fields), known symbol, the `.CHECKSUM` beside a zip (SHA-256), the time unit (Binance
spot: milliseconds to 2024, microseconds from 2025-01-01, detected from the first line and
checked on every line). Then each file is streamed in chunks of lines into ClickHouse's
LineAsString reader through a FIFO: a zip member is inflated by Python's zlib on the way (chDB
4.4 is built without ClickHouse's zip reader), so memory stays flat whatever the file's size,
and the embedded warehouse is free between chunks for a running pipeline's live writes.

Exactly once: a finished file (same name and SHA-256 in `archive_files`) is skipped; an
interrupted one resumes after its last committed chunk; ids bronze already holds (from an
earlier file, REST or the live feed) are left out by id runs; each chunk carries a
deduplication token, so a retried chunk is a no-op in bronze, silver and gold.
"""

from __future__ import annotations

import errno
import hashlib
import os
import queue
import re
import tempfile
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from k2.errors import K2Error
from k2.warehouse import stored_query

DEFAULT_CHUNK_LINES = 50_000
#: chunks inserted at once by `k2 import` in its own process: one INSERT ... SELECT runs on about
#: one core, so two use a two-core machine (10M lines: 1.7x the lines/s at the same CPU seconds,
#: ADR 0036). A running pipeline imports with one, beside its live writes.
IMPORT_STREAMS = max(1, min(2, os.cpu_count() or 1))
#: how often an import's progress is written to the ledger (`archive_files`), at most: each write
#: is an insert of its own (~25 ms on a loaded machine, 200 of them in a 10M-line file). A resume
#: starts after the last one written; the chunks after it are read again at the same boundaries,
#: so their deduplication tokens make them no-ops (ADR 0035).
LEDGER_EVERY_S = 2.0
_BLOCK = 1 << 20

#: name pattern, kind and expected field counts per (exchange, kind)
_BINANCE_NAME = re.compile(
    r"^(?P<symbol>[A-Z0-9]{2,30})-(?P<kind>trades|aggTrades|\d+[smhdwM]|[A-Za-z]+)-"
    r"(?P<date>\d{4}-\d{2}(?:-\d{2})?)\.(?P<ext>zip|csv)$")
_KRAKEN_NAME = re.compile(r"^(?P<symbol>[A-Z0-9]{4,20})\.csv$")
_FIELDS = {("binance", "trades"): (6, 7), ("binance", "aggTrades"): (7, 8), ("kraken", "timesales"): (3,)}
_QUERY = {("binance", "trades"): "archive_binance_trades", ("binance", "aggTrades"): "archive_binance_agg_trades",
          ("kraken", "timesales"): "archive_kraken_timesales"}
_TABLE = {("binance", "trades"): ("bronze_archive_binance_trades", "symbol"),
          ("binance", "aggTrades"): ("bronze_archive_binance_agg_trades", "symbol"),
          ("kraken", "timesales"): ("bronze_archive_kraken_timesales", "pair")}
#: what a first line with this many fields looks like, to name a file of the wrong kind
_LOOKS_LIKE = {6: "Binance trades", 7: "Binance trades", 8: "Binance aggTrades", 12: "Binance klines",
               3: "Kraken time and sales", 10: "Bybit trades", 5: "an OKX trades export"}
#: µs from this value up; a ms time reaches it in the year 5138, a µs one left it in 1973
_US_FROM = 100_000_000_000_000
IMPORTABLE = ("binance", "kraken")


@dataclass
class ArchiveFile:
    """One file to import, checked."""

    path: Path
    exchange: str
    kind: str
    symbol: str
    name: str  # the published name: the zip's, or the csv's
    member: str | None  # the CSV inside a zip
    sha256: str
    time_unit: str
    from_us: int  # the file's dates (from its name), for the id-run probe
    to_us: int
    header: bool  # the first line is column names
    size: int
    mtime_ns: int = 0  # when it was checked: a running pipeline handed it trusts the digest if unchanged

    def to_json(self) -> dict:
        return {**asdict(self), "path": str(self.path)}

    @classmethod
    def from_json(cls, doc: dict) -> "ArchiveFile":
        return cls(**{**doc, "path": Path(doc["path"])})

    def unchanged(self) -> bool:
        """Whether the file is still the one checked (same size and modification time)."""
        try:
            st = self.path.stat()
        except OSError:
            return False
        return bool(self.mtime_ns) and (st.st_size, st.st_mtime_ns) == (self.size, self.mtime_ns)

    @property
    def batch(self) -> str:
        return f"archive:{self.exchange}:{self.name}:{self.sha256[:16]}"


@dataclass
class FileReport:
    name: str
    kind: str
    symbol: str
    time_unit: str
    state: str = "imported"  # imported | already imported | resumed
    lines: int = 0  # lines read this time
    loaded: int = 0  # rows of this file now in bronze
    rejected: int = 0
    skipped_lines: int = 0  # committed by an earlier, interrupted run
    seconds: float = 0.0


@dataclass
class ImportReport:
    exchange: str
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def loaded(self) -> int:
        return sum(f.loaded for f in self.files if f.state != "already imported")

    @property
    def lines(self) -> int:
        return sum(f.lines for f in self.files)

    def summary(self) -> str:
        out = []
        for f in self.files:
            if f.state == "already imported":
                out.append(f"{self.exchange}: {f.name}: already imported ({f.loaded} rows, {f.rejected} rejected); "
                           "nothing to do")
                continue
            kept = f.lines - f.rejected - (f.loaded if f.state == "imported" else 0)
            rate = f.lines / f.seconds if f.seconds else 0.0
            out.append(
                f"{self.exchange}: {f.name}: {f.kind} {f.symbol} (time in {f.time_unit}): {f.lines} lines, "
                f"{f.loaded} rows in bronze, {f.rejected} rejected"
                + (f", {max(kept, 0)} already stored" if f.state == "imported" else "")
                + (f", resumed after line {f.skipped_lines}" if f.skipped_lines else "")
                + f"; {f.seconds:.2f} s, {rate:,.0f} lines/s")
        return "\n".join(out)

    def to_json(self) -> dict:
        return {"exchange": self.exchange, "seconds": self.seconds, "files": [asdict(f) for f in self.files]}

    @classmethod
    def from_json(cls, doc: dict) -> "ImportReport":
        return cls(doc["exchange"], [FileReport(**f) for f in doc["files"]], doc.get("seconds", 0.0))


# -- checking files --------------------------------------------------------------------------------
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(_BLOCK):
            h.update(block)
    return h.hexdigest()


def _checksum(path: Path, digest: str) -> None:
    """Binance publishes `<file>.CHECKSUM` beside each zip: `<sha256>  <file name>`."""
    side = path.with_name(path.name + ".CHECKSUM")
    if not side.is_file():
        return
    text = side.read_text(encoding="ascii", errors="replace").split()
    if not text or not re.fullmatch(r"[0-9a-fA-F]{64}", text[0]):
        raise K2Error(f"{side}: not a SHA-256 CHECKSUM file")
    if len(text) > 1 and text[1].lstrip("*") != path.name:
        raise K2Error(f"{side} is the checksum of {text[1]}, not of {path.name}")
    if text[0].lower() != digest:
        raise K2Error(f"{path}: SHA-256 does not match {side.name} (file damaged or incomplete); nothing loaded")


def _open(path: Path, member: str | None) -> BinaryIO:
    if member is None:
        return path.open("rb")
    z = zipfile.ZipFile(path)
    stream = z.open(member)
    stream_close = stream.close

    def close() -> None:  # the member's stream and its archive together
        stream_close()
        z.close()

    stream.close = close  # type: ignore[method-assign]
    return stream


def _first_line(path: Path, member: str | None) -> bytes:
    try:
        with _open(path, member) as f:
            return f.readline(1 << 16).rstrip(b"\r\n")
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise K2Error(f"{path}: cannot read: {exc}") from None


def _dates(date: str | None) -> tuple[int, int]:
    """µs range of a file's dates (a day or a month) with a day's margin each side."""
    if not date:
        return 0, 2**62
    if len(date) == 7:
        start = datetime.strptime(date, "%Y-%m").replace(tzinfo=timezone.utc)
        end = (start + timedelta(days=32)).replace(day=1)
    else:
        start = datetime.strptime(date, "%Y-%m-%d").replace(tzinfo=timezone.utc)
        end = start + timedelta(days=1)
    day = 86_400_000_000
    return int(start.timestamp()) * 1_000_000 - day, int(end.timestamp()) * 1_000_000 + day


def describe(path: Path | str, exchange: str, known_symbol: Callable[[str], bool],
             symbol: str | None = None) -> ArchiveFile:
    """Check one file and say what it is, or raise K2Error (one line, before anything is loaded)."""
    path = Path(path)
    if exchange not in IMPORTABLE:
        raise K2Error(f"k2 import reads Binance and Kraken archives, not {exchange!r} "
                      "(use k2 backfill for the other venues' REST history)")
    if not path.is_file():
        raise K2Error(f"no such file: {path}")
    name = path.name
    date = None
    if exchange == "binance":
        m = _BINANCE_NAME.match(name)
        if not m:
            raise K2Error(f"{path}: not a Binance spot archive name (SYMBOL-trades-YYYY-MM[-DD].zip or "
                          "SYMBOL-aggTrades-...; the name says the symbol and the kind)")
        kind, date, ext = m["kind"], m["date"], m["ext"]
        if kind not in ("trades", "aggTrades"):
            what = "klines (candles)" if re.fullmatch(r"\d+[smhdwM]", kind) else kind
            raise K2Error(f"{path}: a Binance {what} file; k2 import loads trades and aggTrades files")
        file_symbol = m["symbol"]
    else:
        m = _KRAKEN_NAME.match(name)
        if not m:
            raise K2Error(f"{path}: not a Kraken time-and-sales file name (PAIR.csv, e.g. XBTUSD.csv)")
        kind, ext, file_symbol = "timesales", "csv", m["symbol"]
    if symbol and symbol.replace("/", "").upper() != file_symbol:
        raise K2Error(f"{path}: the file name says {file_symbol}, --symbol says {symbol}")
    if not known_symbol(file_symbol):
        raise K2Error(f"{path}: {file_symbol} is not a {exchange} symbol (unknown to the instrument list)")
    member = None
    if ext == "zip":
        try:
            with zipfile.ZipFile(path) as z:
                members = [i.filename for i in z.infolist() if not i.is_dir()]
        except (zipfile.BadZipFile, OSError) as exc:
            raise K2Error(f"{path}: not a readable zip archive (truncated or damaged: {exc})") from None
        if len(members) != 1 or not members[0].endswith(".csv"):
            raise K2Error(f"{path}: expected one CSV inside the zip, found {members[:5]}")
        member = members[0]
    before = path.stat()
    digest = sha256_of(path)
    if member is not None:
        _checksum(path, digest)
    first = _first_line(path, member)
    if not first:
        raise K2Error(f"{path}: empty file")
    fields = first.split(b",")
    header = not fields[0].strip().isdigit()
    if header:  # column names: look at the next line for the shape
        with _open(path, member) as f:
            f.readline()
            nxt = f.readline(1 << 16).rstrip(b"\r\n")
        fields = nxt.split(b",") if nxt else fields
    expected = _FIELDS[(exchange, kind)]
    if len(fields) not in expected:
        looks = _LOOKS_LIKE.get(len(fields), f"a file with {len(fields)} fields")
        raise K2Error(f"{path}: the first line has {len(fields)} fields and looks like {looks}, "
                      f"not {exchange} {kind} ({'/'.join(map(str, expected))} fields)")
    if exchange == "binance":
        t = fields[4] if kind == "trades" else fields[5]
        try:
            unit = "us" if int(t) >= _US_FROM else "ms"
        except ValueError:
            raise K2Error(f"{path}: the first line's time is not an integer: {t[:30]!r}") from None
    else:
        unit = "s"
    from_us, to_us = _dates(date)
    return ArchiveFile(path.resolve(), exchange, kind, file_symbol, name, member, digest, unit,
                       from_us, to_us, header, before.st_size, before.st_mtime_ns)


# -- streaming -------------------------------------------------------------------------------------
class _Lines:
    """Whole lines from a byte stream, handed on in chunks of a given count.

    One buffer, read into and written from in place: a fresh 1 MiB `bytes` per block and a slice
    of it per write were ~380,000 page faults in a 10M-line import (glibc maps and unmaps blocks
    that large), on a host where every fresh page is expensive (ADR 0035)."""

    def __init__(self, stream: BinaryIO, block: int = _BLOCK):
        self.stream = stream
        self.buf = bytearray(block)  # the last byte stays free for a missing last line ending
        self.view = memoryview(self.buf)
        self.start = self.end = 0  # buf[start:end] is read and not yet handed on
        self.eof = False
        self.counted = 0  # lines handed on (or skipped) so far

    def _more(self) -> None:
        """Read more after what is held (a part of a line at most), growing the buffer when
        one line is longer than it."""
        held = self.end - self.start
        if self.start:
            self.buf[:held] = self.view[self.start:self.end]
            self.start, self.end = 0, held
        if held >= len(self.buf) - 1:
            self.view.release()  # a bytearray with a view on it cannot grow
            self.buf.extend(bytes(len(self.buf)))
            self.view = memoryview(self.buf)
        got = self.stream.readinto(self.view[held:-1])
        if got:
            self.end = held + got
            return
        self.eof = True
        if held and self.buf[held - 1] != 0x0A:  # a last line without its ending is still a line
            self.buf[held] = 0x0A
            self.end = held + 1

    def copy(self, n: int, out: BinaryIO | None) -> int:
        """Write the next `n` lines to `out` (None: skip them); how many there were."""
        done = 0
        buf = self.buf
        while done < n:
            if self.start == self.end:
                if self.eof:
                    break
                self._more()
                continue
            lines = buf.count(b"\n", self.start, self.end)
            if lines == 0:
                if self.eof:
                    break
                self._more()
                continue
            if done + lines <= n:
                cut = buf.rfind(b"\n", self.start, self.end) + 1
                take = lines
            else:
                cut = self.start - 1
                for _ in range(n - done):
                    cut = buf.find(b"\n", cut + 1, self.end)
                cut += 1
                take = n - done
            if out is not None:
                out.write(self.view[self.start:cut])
            done += take
            self.counted += take
            self.start = cut
        return done


# -- importing -------------------------------------------------------------------------------------
class Importer:
    """Imports checked files into one warehouse (the local one, or a running pipeline's)."""

    def __init__(self, wh, chunk_lines: int = DEFAULT_CHUNK_LINES,
                 progress: Callable[[str, int, int], None] | None = None,
                 ledger_every_s: float = LEDGER_EVERY_S, streams: int = 1,
                 rebuild: tuple[int, str] | None = None):
        """`rebuild`: (YYYYMM, token prefix) to put one month's good lines of a file back into a
        partition `k2 repair` emptied (`rebuild_partition_from_files`): the file ledger is neither
        read nor written, and the chunks carry tokens of their own (the first import's would be
        dropped as duplicates)."""
        if chunk_lines <= 0:
            raise K2Error("--chunk-lines must be positive")
        self.rebuild = rebuild
        self.wh = wh
        self.chunk_lines = chunk_lines
        self.progress = progress
        self.ledger_every_s = ledger_every_s
        from k2.warehouse.memory import FreedMemoryRelease

        # after every chunk: chDB's jemalloc would keep the views' blocks resident for seconds
        # (1M lines: 408 MB peak instead of 460, the CPU time within noise), and the library pages
        # the insert and merge code touched again go back too (10M lines: 381 MB instead of 416)
        # (two streams: the library pages every 2 s and not the engine's: ADR 0036)
        self.freed = (FreedMemoryRelease(wh, interval_s=0.0, library_pages=True) if streams == 1 else
                      FreedMemoryRelease(wh, interval_s=2.0, library_pages=True, engine=False))
        self.streams = streams

    def known_symbol(self, exchange: str) -> Callable[[str], bool]:
        from k2.exchanges import get_adapter
        from k2.warehouse.instruments import instrument_map

        natives = set(instrument_map(self.wh, exchange)) | {
            i.native_symbol for i in get_adapter(exchange).fallback_instruments}
        flat = {s.replace("/", "") for s in natives}
        if exchange == "kraken":  # XBT/USD is XBTUSD in Kraken's file names
            return lambda s: s in flat
        return lambda s: s in natives

    def run(self, paths: Iterable[str | Path | ArchiveFile], exchange: str, symbol: str | None = None) -> ImportReport:
        """`paths`: files, or what `check_files` said of them (then only their symbols are checked
        again, against the warehouse's instrument list)."""
        known = self.known_symbol(exchange)
        files = check_files(paths, exchange, symbol, known)  # every file checked first
        report = ImportReport(exchange)
        started = time.perf_counter()
        for f in files:
            report.files.append(self.import_file(f))
        report.seconds = time.perf_counter() - started
        return report

    def _ledger(self, f: ArchiveFile, lines_done: int, loaded: int, rejected: int, state: str) -> None:
        self.wh.execute(stored_query("archive_file_upsert"), {
            "exchange": f.exchange, "file": f.name, "sha256": f.sha256, "kind": f.kind, "symbol": f.symbol,
            "unit": f.time_unit, "path": str(f.path), "lines_done": lines_done, "rows_loaded": loaded,
            "rejected": rejected, "state": state})

    def _counts(self, f: ArchiveFile) -> tuple[int, int]:
        table, key = _TABLE[(f.exchange, f.kind)]
        row = self.wh.rows(stored_query("archive_batch_counts"),
                           {"table": table, "key": key, "symbol": f.symbol, "batch": f.batch})[0]
        return int(row[0]), int(row[1])

    def _skip_runs(self, f: ArchiveFile) -> list[tuple[int, int]]:
        if f.exchange != "binance":
            return []
        query = "archive_binance_trade_runs" if f.kind == "trades" else "archive_binance_agg_runs"
        rows = self.wh.rows(stored_query(query), {"symbol": f.symbol, "from_us": f.from_us, "to_us": f.to_us})
        return [(int(lo), int(hi)) for lo, hi in rows]

    def import_file(self, f: ArchiveFile) -> FileReport:
        rep = FileReport(f.name, f.kind, f.symbol, f.time_unit)
        state = [] if self.rebuild else self.wh.rows(stored_query("archive_file_state"),
                                                     {"exchange": f.exchange, "file": f.name, "sha256": f.sha256})
        done_lines = 0
        if state:
            st, lines_done, loaded, rejected, _unit = state[0]
            if st == "done":
                rep.state, rep.loaded, rep.rejected = "already imported", int(loaded), int(rejected)
                return rep
            done_lines = int(lines_done)
            rep.state, rep.skipped_lines = "resumed", done_lines
        started = time.perf_counter()
        skip = "[" + ",".join(f"({lo},{hi})" for lo, hi in ([] if self.rebuild else self._skip_runs(f))) + "]"
        only_month, token_prefix = self.rebuild or (0, "")
        sql = stored_query(_QUERY[(f.exchange, f.kind)]) + _CHUNK_SETTINGS
        first_line = 1
        with tempfile.TemporaryDirectory(prefix="k2-import-") as tmp, _open(f.path, f.member) as stream, \
                _Streams(self.wh, self.streams) as streams:
            lines = _Lines(stream)
            if f.header:
                lines.copy(1, None)
                first_line = 2
            if done_lines:
                lines.copy(done_lines - (first_line - 1), None)
                first_line = done_lines + 1
            committed = _Committed(first_line - 1)
            ledger_at = time.monotonic()
            while True:
                fifo = os.path.join(tmp, f"chunk-{first_line}.csv")
                os.mkfifo(fifo)
                params = {"symbol": f.symbol, "file": f.name, "unit": f.time_unit, "batch": f"{f.batch}",
                          "first_line": first_line, "path": fifo, "skip": skip, "only_month": only_month,
                          "token": f"{token_prefix}{f.batch}:{first_line}"}
                # the engine reads the FIFO on a stream's thread while this one writes the chunk into
                # it; the next chunk is read once this one is written, as the first one is inserted
                ended = streams.insert(sql, params, first_line, committed, self.freed.after_write)
                n, damage = _write_chunk(fifo, lines, self.chunk_lines, ended)
                os.unlink(fifo)  # the INSERT reading it keeps it open
                if streams.count == 1:
                    ended.wait()  # the next chunk waits for the stream anyway: progress is exact
                committed.read(first_line, n)
                if damage:
                    streams.finish()
                    raise K2Error(f"{f.path}: damaged after line {first_line - 1 + n}: {damage}")
                rep.lines += n
                first_line += n
                if n < self.chunk_lines:
                    break
                if streams.failed:
                    break
                lines_committed, chunks_committed = committed.now()
                if not self.rebuild and time.monotonic() - ledger_at >= self.ledger_every_s \
                        and lines_committed > done_lines:
                    done_lines = lines_committed
                    self._ledger(f, done_lines, 0, 0, "loading")
                    ledger_at = time.monotonic()
                if self.progress:
                    self.progress(f.name, lines_committed, chunks_committed)
            streams.finish()
            if streams.failed:
                start, exc = streams.failed
                raise K2Error(f"{f.path}: import failed at the chunk from line {start}: {_first_line_of(exc)}")
        if self.rebuild:
            rep.state = "rebuilt"
        else:
            rep.loaded, rep.rejected = self._counts(f)
            self._ledger(f, first_line - 1, rep.loaded, rep.rejected, "done")
        rep.seconds = time.perf_counter() - started
        return rep


#: every chunk's INSERT: one stream read in 65,536-row blocks (a chunk is one block, one part per
#: table), deduplicated by the chunk's token in bronze and in every view below it
_CHUNK_SETTINGS = (" SETTINGS max_threads = 1, input_format_parallel_parsing = 0, max_block_size = 65536,"
                   " min_insert_block_size_rows = 65536, min_insert_block_size_bytes = 0,"
                   " min_insert_block_size_rows_for_materialized_views = 65536,"
                   " min_insert_block_size_bytes_for_materialized_views = 0,"
                   " insert_deduplicate = 1, deduplicate_blocks_in_dependent_materialized_views = 1,"
                   " insert_deduplication_token = {token:String}")


def _write_chunk(fifo: str, lines: _Lines, n: int, ended: threading.Event) -> tuple[int, str]:
    """Write the next `n` lines into the FIFO a stream's INSERT reads: (lines written, what was
    wrong with the input or ""). The FIFO is opened once the INSERT has opened it to read, or not
    at all when the INSERT `ended` first (it failed: its error says why)."""
    before = lines.counted
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
        if ended.wait(0.001):
            return 0, ""
    os.set_blocking(fd, True)
    try:
        with open(fd, "wb", buffering=_BLOCK) as out:
            lines.copy(n, out)
    except BrokenPipeError:
        pass  # the reader stopped: its INSERT failed and says why
    except Exception as exc:  # a damaged zip member (CRC, zlib)
        return lines.counted - before, f"{type(exc).__name__}: {exc}"
    return lines.counted - before, ""


class _Committed:
    """Which chunks of a file are in the warehouse: with two streams a later chunk can finish
    first, and the ledger may only say the lines before the first unfinished one are done."""

    def __init__(self, lines_before: int):
        self.lines = lines_before  # every line up to here is committed
        self.chunks = 0
        self._lock = threading.Lock()
        self._sizes: dict[int, int] = {}  # first line -> lines, read
        self._done: set[int] = set()  # first lines of committed chunks

    def now(self) -> tuple[int, int]:
        """(lines committed without a hole before them, chunks committed)"""
        with self._lock:
            return self.lines, self.chunks

    def read(self, first_line: int, n: int) -> None:
        with self._lock:
            self._sizes[first_line] = n
            self._advance()

    def commit(self, first_line: int) -> None:
        with self._lock:
            self._done.add(first_line)
            self.chunks += 1
            self._advance()

    def _advance(self) -> None:
        while (nxt := self.lines + 1) in self._done and nxt in self._sizes:
            self._done.discard(nxt)
            self.lines += self._sizes.pop(nxt)


class _Streams:
    """The INSERTs of one file's chunks, `count` at a time, each on a thread and a connection of
    its own (the warehouse's `bulk_session`; one stream is the warehouse itself). A failed chunk
    stops the file: the chunks already running finish, no new one starts."""

    def __init__(self, wh, count: int):
        self.wh = wh
        self.count = count if count > 1 and hasattr(wh, "bulk_session") else 1
        self.failed: tuple[int, BaseException] | None = None
        self._free: queue.Queue = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._sessions: list = []

    def __enter__(self) -> "_Streams":
        if self.count == 1:
            self._free.put(self.wh)
        else:
            for _ in range(self.count):
                self._sessions.append(self.wh.bulk_session())
                self._free.put(self._sessions[-1])
        return self

    def insert(self, sql: str, params: dict, first_line: int, committed: _Committed,
               after: Callable[[], None]) -> threading.Event:
        """Start the chunk's INSERT as soon as a stream is free; set the event it returns when
        the INSERT has ended (done or failed)."""
        session = self._free.get()
        ended = threading.Event()
        if self.failed is not None:  # a chunk failed: no new one starts
            self._free.put(session)
            ended.set()
            return ended

        def run() -> None:
            try:
                session.execute(sql, params)
                committed.commit(first_line)
                after()
            except BaseException as exc:
                if self.failed is None:
                    self.failed = (first_line, exc)
            finally:
                ended.set()
                self._free.put(session)

        t = threading.Thread(target=run, name="k2-import-insert", daemon=True)
        self._threads.append(t)
        t.start()
        return ended

    def finish(self) -> None:
        for t in self._threads:
            t.join()
        self._threads.clear()

    def __exit__(self, *exc: object) -> None:
        self.finish()
        for s in self._sessions:
            s.close()


def _first_line_of(exc: BaseException) -> str:
    from k2.errors import first_line

    return first_line(exc)


def check_files(paths: Iterable[str | Path | ArchiveFile | dict], exchange: str, symbol: str | None = None,
                known_symbol: Callable[[str], bool] | None = None) -> list[ArchiveFile]:
    """Every file checked (name, kind, zip, CHECKSUM, first line, time unit) before any work starts:
    `k2 import` calls it before it opens the warehouse, so a wrong file costs nothing. Without
    `known_symbol` the symbol is checked only against the file name and --symbol."""
    known = known_symbol or (lambda s: True)
    files = []
    for p in paths:
        if isinstance(p, dict):  # what `k2 import` checked, handed to a running pipeline (to_json)
            f = ArchiveFile.from_json(p)
            # not read (and hashed) a second time when unchanged since
            p = f if f.unchanged() and f.exchange == exchange else f.path
        if isinstance(p, ArchiveFile):
            if not known(p.symbol):
                raise K2Error(f"{p.path}: {p.symbol} is not a {exchange} symbol (unknown to the instrument list)")
            files.append(p)
        else:
            files.append(describe(p, exchange, known, symbol))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise K2Error("the same file name is given twice")
    return files


def rebuild_partition_from_files(wh, table: str, partition_id: str, tag: str) -> tuple[bool, str]:
    """Put a month's partition of an archive table back as the files made it, after a damaged
    part took rows away: every file the ledger says brought rows of that kind must still be at
    its path with its SHA-256; then the partition's surviving rows are dropped and the month's
    good lines of every such file are imported again (rejects are not stored twice; a row's
    `ingested_at` is the rebuild's). Returns (rebuilt, one line saying what happened); when not
    rebuilt nothing was changed, the damage is not recorded as repaired (it is reported again)
    and the next `k2 repair` tries again."""
    exchange, kind = next(k for k, (t, _) in _TABLE.items() if t == table)
    if not re.fullmatch(r"\d{6}", partition_id):
        return False, f"{table}: partition {partition_id} is not a month; not rebuilt"
    month = int(partition_id)
    files = []
    ledger = wh.rows(stored_query("archive_files_of_kind"),
                     {"exchange": exchange, "kind": kind, "table": table, "partition_id": partition_id})
    for name, sha, path, state, has_rows_there in ledger:
        dated = _BINANCE_NAME.match(name) if exchange == "binance" else None
        if dated and int(dated["date"][:4] + dated["date"][5:7]) != month and not int(has_rows_there):
            continue  # a Binance file holds the days its name says (or it has rows left there); Kraken's hold years
        if state != "done":
            return False, (f"{table}: partition {partition_id} not rebuilt: {name} is still being imported "
                           f"(finish `k2 import`, then `k2 repair`)")
        try:
            f = describe(path, exchange, lambda s: True)
        except K2Error as exc:
            return False, f"{table}: partition {partition_id} not rebuilt: {exc} (put the file back, then `k2 repair`)"
        if f.name != name or f.sha256 != sha:
            return False, (f"{table}: partition {partition_id} not rebuilt: {path} is not the file imported as "
                           f"{name} (its SHA-256 changed; put that file back, then `k2 repair`)")
        files.append(f)
    if not files:  # dropping the month's survivors would lose them: nothing to read them back from
        return False, f"{table}: partition {partition_id} not rebuilt: no imported file of that month is known"
    wh.execute(f"ALTER TABLE k2.{table} DROP PARTITION ID {{p:String}}", {"p": partition_id})
    importer = Importer(wh, rebuild=(month, f"repair:{tag}:"))
    for f in files:
        importer.import_file(f)
    rows = int(wh.scalar(f"SELECT count() FROM k2.{table} WHERE _partition_id = {{p:String}}", {"p": partition_id}))
    return True, f"{table}: partition {partition_id} rebuilt from {len(files)} archive file(s): {rows:,} rows"


def import_archives(wh, paths: Iterable[str | Path | ArchiveFile | dict], exchange: str, symbol: str | None = None,
                    chunk_lines: int = DEFAULT_CHUNK_LINES,
                    progress: Callable[[str, int, int], None] | None = None,
                    ledger_every_s: float = LEDGER_EVERY_S, streams: int = 1) -> ImportReport:
    return Importer(wh, chunk_lines, progress, ledger_every_s, streams).run(paths, exchange, symbol)
