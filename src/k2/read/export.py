"""`k2 export`: the warehouse as Parquet files that pyarrow, polars, duckdb and Spark read as they are.

    OUT/silver/trades/exchange=binance/date=2026-12-05/data.parquet
    OUT/gold/ohlcv_1m/exchange=kraken/date=2026-12-05/data.parquet
    OUT/bronze/binance/date=2026-12-05/data.parquet          (bronze: one dataset per venue's format)

* Hive-style partitions by exchange and UTC date (silver: trade time; gold: window start; bronze:
  the time K2 received the frame); the partition values live in the path, not in the file.
* Exact types: decimals stay decimal128(38, 18) (a wider stored decimal is narrowed only when that
  is exact, else the export fails), times are UTC timestamps, enums are their names.
* zstd, row groups of `row_group_rows` rows (64 Ki by default: ~20 MB uncompressed for silver);
  the engine also ends one at ENGINE_ROW_GROUP_BYTES (16 MiB) of column data, which bounds what it
  keeps in flight while it writes.
* Order: silver by symbol, time, exchange, trade id; gold by symbol, window; bronze by its venue
  table's own sorting key (never sorted whole: a big day would not fit the read's memory). A
  silver or bronze file the engine writes holds one sorted run per part the table stores that day
  in (the parts are read one after another, not merged: memory).
* One file per partition, written to a temporary file beside it and renamed over the old one:
  re-exporting a day replaces it atomically, an interrupted export leaves no half file.
* Resumable: a partition whose manifest (`_k2_export.json` beside the file: rows, bytes, filters)
  matches what the warehouse has for it is skipped; `force` re-exports everything.

Who writes the file: when this process opened the data dir, the engine itself, with its
multi-threaded Parquet encoder, in one statement per partition (`INSERT INTO FUNCTION file`,
a session of its own that writes no table). Otherwise (through `k2 run`'s endpoint, Arrow IPC
on the wire, or a ClickHouse server) pyarrow writes the same files from the read door's Arrow
batches; a large day is then read in hour slices, so that no single read meets the time limit.
docs/adr/0017-parquet-export.md says what each costs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from k2.errors import K2Error
from k2.exchanges import ALL_ADAPTERS, get_adapter
from k2.read.queries import check_interval, resolve_symbol
from k2.terminal import Progress
from k2.times import EPOCH, FAR_FUTURE, parse_time
from k2.warehouse import stored_query

LAYERS = ("bronze", "silver", "gold")
#: rows per Parquet row group
ROW_GROUP_ROWS = 64 * 1024
#: a day with more rows than this is read in hour slices (each read stays well inside its limits)
SLICE_ROWS = 2_000_000
#: each partition's manifest (beside its data file): rows, bytes and filters of the export that
#: wrote it, what makes an export resumable. Readers skip names starting with "_" or ".".
MANIFEST = "_k2_export.json"
#: where files of an earlier K2 kept the same (their Parquet key-value metadata): still honoured
META_KEY = b"k2.export"
#: how the engine writes Parquet (measured on 10M silver rows, docs/adr/0017-parquet-export.md):
#: zstd, no bloom filters, page indexes or page checksums and no dictionaries (as the pyarrow
#: writer wrote them: files of the same size, ~20 % less CPU). Memory (the < 400 MB floor):
#: * the day's parts are read one after another, each in its own sorted order, by one stream
#:   (no ORDER BY, `max_streams_to_max_threads_ratio` 0.5 of the 2 threads): merging them in
#:   order kept a decompressed block of every column of every part in memory (~+130 MB for 10);
#: * blocks of 8192 rows (`max_block_size`): the read holds ~100 MB less;
#: * a row group ends at `row_group_rows` or ENGINE_ROW_GROUP_BYTES of column data, whichever
#:   comes first: the encoder keeps up to 4x that in flight (ClickHouse's
#:   ParquetBlockOutputFormat), the default bound (512 MiB) let it hold ~3 whole row groups.
#: The encoder's own threads are `max_threads` (2): it stays parallel. A source read in order
#: (gold: a view that aggregates) merges its parts without buffering each first
#: (`read_in_order_use_buffering`: ~250 MB less for a day of 10 parts).
ENGINE_ROW_GROUP_BYTES = 16 * 1024 * 1024
ENGINE_PARQUET: dict[str, Any] = {
    "output_format_parquet_compression_method": "zstd",
    "output_format_parquet_parallel_encoding": 1,
    "output_format_parquet_write_bloom_filter": 0,
    "output_format_parquet_write_page_index": 0,
    "output_format_parquet_write_checksums": 0,
    "output_format_parquet_max_dictionary_size": 0,
    "output_format_parquet_string_as_string": 1,
    "max_block_size": 8192,
    "max_streams_to_max_threads_ratio": 0.5,
    "read_in_order_use_buffering": 0,
    "engine_file_truncate_on_insert": 1,
}
#: what the pyarrow path asks of the read door (a read may lower its own memory)
READ_SETTINGS: dict[str, Any] = {"read_in_order_use_buffering": 0}
#: the engine's time limit for one partition: at least this, and long enough at this rate
ENGINE_TIMEOUT_FLOOR_S = 600
ENGINE_SLOWEST_ROWS_PER_S = 20_000
#: characters ClickHouse's file() expands in a path
_GLOB_CHARS = frozenset("*?{}[]")


@dataclass(frozen=True)
class Source:
    """What one layer exports from: a table or view, its time column, and how rows are ordered."""

    layer: str
    table: str
    dataset: str           # path under OUT
    time_column: str
    exchange_column: str | None
    symbol_column: str | None
    order_by: str
    #: a MergeTree table sorted by `order_by`: read as stored, each stored part comes in that order
    #: (the engine writer then skips the ORDER BY and its merge of the parts; see ENGINE_PARQUET)
    stored_order: bool = False


@dataclass
class Partition:
    source: Source
    exchange: str
    day: str
    rows: int

    def path(self, out: Path) -> Path:
        base = out / self.source.layer / self.source.dataset
        if self.source.exchange_column:
            base = base / f"exchange={self.exchange}"
        return base / f"date={self.day}" / "data.parquet"


def sources(layer: str, interval: str, exchanges: list[str] | None) -> list[tuple[Source, str | None]]:
    """(source, fixed exchange or None) of a layer."""
    if layer == "silver":
        return [(Source("silver", "silver_trades_v2", "trades", "timestamp", "exchange", "canonical_symbol",
                        "canonical_symbol, timestamp, exchange, trade_id", stored_order=True), None)]
    if layer == "gold":
        interval = check_interval(interval)
        return [(Source("gold", f"ohlcv_{interval}", f"ohlcv_{interval}", "window_start", "exchange",
                        "canonical_symbol", "canonical_symbol, window_start"), None)]
    if layer == "bronze":
        names = exchanges or sorted({a.name for a in ALL_ADAPTERS})
        out = []
        for name in names:
            tables = sorted({a.bronze_table for a in ALL_ADAPTERS if a.name == name}) or [get_adapter(name).bronze_table]
            for table in tables:
                dataset = table.removeprefix("bronze_trades_")
                out.append((Source("bronze", table, dataset, "received_at", None, None, ""), name))
        return out
    raise K2Error(f"unknown layer {layer!r} (choose {', '.join(LAYERS)})")


# -- SQL built from the table's own columns ---------------------------------------------------------------
def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def column_exprs(columns: list[list[str]], skip: set[str]) -> list[str]:
    """A select list that Arrow and Parquet take exactly: enums as their names, DateTime as UTC
    timestamps, decimals wider than 38 digits narrowed to Decimal(38, 18) only when that is exact
    (else the read fails with the reason), everything else as stored."""
    out = []
    for name, ctype in columns:
        if name in skip:
            continue
        col = _ident(name)
        base = ctype.removeprefix("LowCardinality(").removeprefix("Nullable(")
        if base.startswith("Enum"):
            out.append(f"toString({col}) AS {col}")
        elif base.startswith("DateTime(") or base == "DateTime":
            out.append(f"toDateTime64({col}, 0, 'UTC') AS {col}")
        elif base.startswith("Decimal(") and int(base[8:].split(",")[0]) > 38:
            out.append(f"toDecimal128({col}, 18) + throwIf(toDecimal128({col}, 18) != {col}, "
                       f"'{name} has more than 18 decimal places: it cannot be exported exactly as Decimal(38, 18)') "
                       f"AS {col}")
        else:
            out.append(col)
    return out


def select_sql(src: Source, columns: list[list[str]], ordered: bool = True) -> str:
    """One partition (or an hour of it) of a source, in the source's order; not `ordered` (a
    source with `stored_order`): as stored, each stored part's rows in the table's order, the parts
    one after another when read by one stream (the engine writer, see ENGINE_PARQUET)."""
    skip = {src.exchange_column} if src.exchange_column else set()
    where = [f"{_ident(src.time_column)} >= {{lo:DateTime64(6, 'UTC')}}",
             f"{_ident(src.time_column)} < {{hi:DateTime64(6, 'UTC')}}"]
    if src.exchange_column:
        where.append(f"{_ident(src.exchange_column)} = {{exchange:String}}")
    if src.symbol_column:
        where.append(f"(empty({{symbols:Array(String)}}) OR {_ident(src.symbol_column)} IN {{symbols:Array(String)}})")
    order = f" ORDER BY {src.order_by or _ident(src.time_column)}" if ordered else ""
    return (f"SELECT {', '.join(column_exprs(columns, skip))} FROM k2.{_ident(src.table)} "
            f"WHERE {' AND '.join(where)}{order}")


def plan_sql(src: Source) -> str:
    """Rows per (exchange, UTC day) of a source within the filters: the export's plan."""
    ex = f"toString({_ident(src.exchange_column)})" if src.exchange_column else "{exchange:String}"
    where = [f"{_ident(src.time_column)} >= {{since:DateTime64(6, 'UTC')}}",
             f"{_ident(src.time_column)} < {{until:DateTime64(6, 'UTC')}}"]
    if src.exchange_column:
        where.append(f"(empty({{exchanges:Array(String)}}) OR {_ident(src.exchange_column)} IN {{exchanges:Array(String)}})")
    if src.symbol_column:
        where.append(f"(empty({{symbols:Array(String)}}) OR {_ident(src.symbol_column)} IN {{symbols:Array(String)}})")
    return (f"SELECT {ex} AS ex, toString(toDate({_ident(src.time_column)}, 'UTC')) AS day, count() AS n "
            f"FROM k2.{_ident(src.table)} WHERE {' AND '.join(where)} GROUP BY ex, day ORDER BY ex, day")


def _array(values: Iterable[str]) -> str:
    return "[" + ", ".join("'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'" for v in values) + "]"


# -- the export ------------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    partitions: int = 0
    written: int = 0
    skipped: int = 0
    rows: int = 0
    seconds: float = 0.0

    def text(self, out: Path) -> str:
        rate = self.rows / self.seconds if self.seconds else 0.0
        return (f"exported {self.rows:,} rows in {self.written} partition files to {out} "
                f"({self.skipped} of {self.partitions} partitions already up to date) in {self.seconds:.1f} s "
                f"({rate:,.0f} rows/s)")


def check_out(out: Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise K2Error(f"--out {out} exists and is not a directory")
    if out.exists() and any(out.iterdir()) and not any((out / layer).is_dir() for layer in LAYERS):
        raise K2Error(f"--out {out} holds other files; choose an empty directory or a previous export")
    return out


def export(reader, out: Path, layer: str = "silver", exchanges: list[str] | None = None,
           symbols: list[str] | None = None, since: str | None = None, until: str | None = None,
           interval: str = "1m", force: bool = False, row_group_rows: int = ROW_GROUP_ROWS,
           progress: Callable[[str], None] | None = None, bar: Progress | None = None,
           writer: str = "auto") -> ExportReport:
    """Export one layer (see the module docstring). `progress(line)` hears about each partition,
    `bar` counts the rows done of all partitions. `writer`: "auto" (the engine when it runs in this
    process, see engine_writes), "engine" or "pyarrow"."""
    if layer not in LAYERS:
        raise K2Error(f"unknown layer {layer!r} (choose {', '.join(LAYERS)})")
    if writer not in ("auto", "engine", "pyarrow"):
        raise K2Error(f"unknown writer {writer!r} (choose auto, engine, pyarrow)")
    if row_group_rows <= 0:
        raise K2Error("--row-group-rows must be positive")
    if layer == "bronze" and symbols:
        raise K2Error("--symbols filters silver and gold; bronze is exported per exchange, whole")
    out = check_out(out)
    exchanges = [get_adapter(e).name for e in exchanges] if exchanges else None
    canon = sorted({resolve_symbol(reader, s) for s in symbols}) if symbols else []
    lo, hi = parse_time(since, "--since", EPOCH), parse_time(until, "--until", FAR_FUTURE)
    filt = {"layer": layer, "symbols": canon, "since": lo, "until": hi, "interval": interval if layer == "gold" else None}
    say = progress or (lambda _line: None)
    report = ExportReport()
    started = time.monotonic()

    todo: list[Partition] = []
    columns: dict[str, list[list[str]]] = {}
    for src, fixed in sources(layer, interval, exchanges):
        columns[src.table] = reader.rows(stored_query("export_columns"), {"table": src.table})
        if not columns[src.table]:
            continue  # a venue's table this data dir does not have
        if src.layer == "bronze":  # each venue's table in its own sorting key: read in order, never sorted whole
            key = (reader.rows(stored_query("export_sorting_key"), {"table": src.table}) or [[""]])[0][0]
            if key:
                src = replace(src, order_by=key, stored_order=True)
        params = {"since": lo, "until": hi, "symbols": _array(canon), "exchanges": _array(exchanges or []),
                  "exchange": fixed or ""}
        for ex, day, n in reader.rows(plan_sql(src), params):
            todo.append(Partition(src, ex, day, int(n)))
    report.partitions = len(todo)
    total_rows, done_rows = sum(p.rows for p in todo), 0
    if bar is not None:
        bar.update(0, total_rows)
    for i, part in enumerate(todo, 1):
        path = part.path(out)
        label = f"[{i}/{len(todo)}] {part.source.layer} {part.source.dataset} {part.exchange} {part.day}"
        if not force and _up_to_date(path, part.rows, filt):
            report.skipped += 1
            say(f"{label}: {part.rows:,} rows, up to date")
            done_rows += part.rows
            if bar is not None:
                bar.update(done_rows)
            continue
        t0 = time.monotonic()
        on_rows = None
        if bar is not None:
            def on_rows(n: int, base: int = done_rows, most: int = part.rows) -> None:
                bar.update(base + min(n, most))
        n = _write_partition(reader, part, columns[part.source.table], path, filt, canon, lo, hi, row_group_rows,
                             writer, on_rows)
        dt = time.monotonic() - t0
        report.written += 1
        report.rows += n
        say(f"{label}: {n:,} rows in {dt:.1f} s ({n / dt if dt else 0:,.0f} rows/s)")
        done_rows += part.rows
        if bar is not None:
            bar.update(done_rows)
    report.seconds = time.monotonic() - started
    return report


def _up_to_date(path: Path, rows: int, filt: dict) -> bool:
    """The partition's file holds what the warehouse has for it: its manifest names the same filters,
    the plan's row count and the file as it is now (its size). A file of an earlier K2 (filters kept
    in its Parquet metadata, no manifest) counts when its footer counts the plan's rows."""
    if not path.is_file():
        return False
    manifest = path.parent / MANIFEST
    if manifest.is_file():
        try:
            doc = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return False
        return (isinstance(doc, dict) and doc.get("filter") == filt and doc.get("file") == path.name
                and doc.get("rows") == rows and doc.get("bytes") == path.stat().st_size)
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path)
        doc = json.loads((meta.metadata or {}).get(META_KEY) or b"{}")
    except Exception:
        return False
    return meta.num_rows == rows and isinstance(doc, dict) and doc.get("filter") == filt


def _write_manifest(path: Path, rows: int, filt: dict, source: str) -> None:
    """The partition's manifest, written (atomically) after its data file is in place: a crash
    between the two leaves a whole new file without a manifest, which the next run re-exports."""
    doc = {"file": path.name, "rows": rows, "bytes": path.stat().st_size, "filter": filt, "source": source}
    tmp = path.parent / f".{MANIFEST}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(doc, f, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path.parent / MANIFEST)
    finally:
        tmp.unlink(missing_ok=True)


def _day_range(part: Partition, lo: str, hi: str) -> tuple[str, str]:
    """The partition's UTC day, clipped to the filters."""
    from datetime import datetime, timedelta

    start = datetime.strptime(part.day, "%Y-%m-%d")
    day_hi = (start + timedelta(days=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    return max(f"{part.day} 00:00:00.000000", lo), min(day_hi, hi)


def _slices(part: Partition, lo: str, hi: str) -> list[tuple[str, str]]:
    """The time ranges one partition is read in: the day (clipped to the filters), or its hours."""
    from datetime import datetime, timedelta

    a, b = _day_range(part, lo, hi)
    if part.rows <= SLICE_ROWS:
        return [(a, b)]
    start = datetime.strptime(part.day, "%Y-%m-%d")
    out = []
    for h in range(24):
        s = (start + timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S.%f")
        e = (start + timedelta(hours=h + 1)).strftime("%Y-%m-%d %H:%M:%S.%f")
        s, e = max(s, a), min(e, b)
        if s < e:
            out.append((s, e))
    return out


def engine_writes(reader, path: Path) -> bool:
    """Whether the engine writes this partition's file itself: it runs in this process (a data dir
    opened here, nothing else holding it), and the path has none of the glob characters that
    ClickHouse's file() expands (such a path goes through pyarrow)."""
    door = getattr(reader, "door", None)
    return callable(getattr(door, "select_into_file", None)) and not _GLOB_CHARS.intersection(str(path.absolute()))


def _write_partition(reader, part: Partition, columns: list[list[str]], path: Path, filt: dict,
                     canon: list[str], lo: str, hi: str, row_group_rows: int, writer: str = "auto",
                     on_rows: Callable[[int], None] | None = None) -> int:
    """One partition's file: written beside it, checked (its footer must count the plan's rows),
    fsynced and renamed over the old one; then its manifest. Nothing is left behind on failure."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (".data.parquet.tmp-*", f".{MANIFEST}.tmp-*"):  # left by an export that was killed
        for stale in path.parent.glob(pattern):
            stale.unlink(missing_ok=True)
    (path.parent / MANIFEST).unlink(missing_ok=True)  # first: a manifest never vouches for another file
    tmp = path.parent / f".data.parquet.tmp-{os.getpid()}"
    use_engine = engine_writes(reader, tmp) if writer == "auto" else writer == "engine"
    if use_engine and not engine_writes(reader, tmp):
        raise K2Error("the engine writes Parquet only for a data dir this process opened, to a path without * ? { } [ ]")
    try:
        if use_engine:
            written = _engine_write(reader.door, part, columns, tmp, canon, lo, hi, row_group_rows, on_rows)
        else:
            written = _pyarrow_write(reader, part, columns, tmp, canon, lo, hi, row_group_rows)
        if written < part.rows:  # more is fine: trades of that day arrived meanwhile
            raise K2Error(f"{part.source.table} {part.exchange} {part.day}: read {written:,} rows, the plan counted "
                          f"{part.rows:,}; nothing was replaced, run it again")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
        _write_manifest(path, written, filt, part.source.table)
        return written
    finally:
        tmp.unlink(missing_ok=True)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _engine_write(door, part: Partition, columns: list[list[str]], tmp: Path, canon: list[str], lo: str, hi: str,
                  row_group_rows: int, on_rows: Callable[[int], None] | None = None) -> int:
    """The engine writes the whole partition in one statement with its own Parquet encoder
    (multi-threaded; see ENGINE_PARQUET). The rows written are what the finished file's footer
    counts (a file without a whole footer fails here). No pyarrow in this process: ~60 MB less."""
    a, b = _day_range(part, lo, hi)
    settings = {**ENGINE_PARQUET, "output_format_parquet_row_group_size": row_group_rows,
                "output_format_parquet_row_group_size_bytes": ENGINE_ROW_GROUP_BYTES,
                # no writer shares this engine: the time limit grows with the partition
                "max_execution_time": int(max(door.limits.timeout_s, ENGINE_TIMEOUT_FLOOR_S,
                                              part.rows / ENGINE_SLOWEST_ROWS_PER_S)),
                "log_comment": f"k2-export-{os.getpid()}-{time.monotonic_ns()}"}
    stop = _watch_rows(door, settings["log_comment"], on_rows) if on_rows else None
    try:
        sql = select_sql(part.source, columns, ordered=not part.source.stored_order)
        return door.select_into_file(sql, tmp.absolute(), "Parquet",
                                     {"lo": a, "hi": b, "exchange": part.exchange, "symbols": _array(canon)}, settings)
    finally:
        if stop:
            stop()


def _watch_rows(door, tag: str, on_rows: Callable[[int], None], every_s: float = 0.5) -> Callable[[], None]:
    """Progress of the engine's statement: every `every_s`, the rows it has handed to the Parquet
    writer (system.processes, read in a read-only session of its own) go to `on_rows`. Returns
    the function that stops watching."""
    import threading

    stop = threading.Event()
    sql = stored_query("export_progress")

    def watch() -> None:
        most = 0  # never backwards: the session's last statement (reading the file's count) says 0
        while not stop.wait(every_s):
            try:
                got = door.rows(sql, {"tag": tag})
            except Exception:  # progress is for the eye; the statement's own outcome decides
                continue
            n = max((int(r[0]) for r in got if r), default=0)
            if n > most:
                most = n
                on_rows(n)

    thread = threading.Thread(target=watch, name="k2-export-progress", daemon=True)
    thread.start()

    def done() -> None:
        stop.set()
        thread.join(10)

    return done


def _pyarrow_write(reader, part: Partition, columns: list[list[str]], tmp: Path, canon: list[str], lo: str, hi: str,
                   row_group_rows: int) -> int:
    """Arrow batches from the read door (through `k2 run` when it holds the data dir), written by
    pyarrow in row groups of `row_group_rows`, read ahead in a thread while the writer writes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sql = select_sql(part.source, columns)
    # dictionaries for the columns ClickHouse keeps as LowCardinality or Enum, statistics for the
    # scalar columns: maps and arrays gain nothing from either and cost the most (measured: 0.9M ->
    # 1.3M rows/s for silver, files 15 % smaller)
    kept = [(n, ct) for n, ct in columns if n != part.source.exchange_column]
    dictionary = [n for n, ct in kept if ct.startswith(("LowCardinality(", "Enum"))]
    statistics = [n for n, ct in kept if not ct.startswith(("Map(", "Array("))]
    writer = None
    pending: list[Any] = []
    pending_rows = written = 0

    def flush() -> None:
        nonlocal pending, pending_rows, written
        if pending:
            table = pa.Table.from_batches(pending)
            writer.write_table(table, row_group_size=row_group_rows)
            written += table.num_rows
            pending, pending_rows = [], 0

    try:
        for a, b in _slices(part, lo, hi):
            schema, batches = reader.arrow_batches(sql, {"lo": a, "hi": b, "exchange": part.exchange,
                                                         "symbols": _array(canon)}, READ_SETTINGS)
            try:
                if writer is None:
                    writer = pq.ParquetWriter(tmp, schema, compression="zstd",
                                              use_dictionary=dictionary or False, write_statistics=statistics or False)
                for batch in _prefetched(batches):
                    pending.append(batch)
                    pending_rows += batch.num_rows
                    if pending_rows >= row_group_rows:
                        flush()
            finally:
                close = getattr(batches, "close", None)
                if close:
                    close()
        if writer is None:
            raise K2Error(f"{part.source.table} {part.exchange} {part.day}: no rows came back")
        flush()
        writer.close()
        writer = None
        return written
    finally:
        if writer is not None:
            writer.close()


def _prefetched(batches, depth: int = 2):
    """The batches, read ahead in a thread while the caller writes (the engine and the Parquet
    writer both work outside the GIL: reading and writing overlap on two cores)."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(depth)
    done = object()
    stop = threading.Event()

    def offer(item) -> bool:
        """Put `item` once there is room; False when the writer stopped taking (then nobody
        would ever take it: a plain put could wait forever)."""
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def pump() -> None:
        try:
            for b in batches:
                if not offer(b):
                    return
            offer(done)
        except BaseException as exc:  # handed to the writer, raised there
            offer(exc)

    thread = threading.Thread(target=pump, name="k2-export-read", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(30)


def progress_printer(stream=sys.stderr) -> Callable[[str], None]:
    def say(line: str) -> None:
        print(line, file=stream, flush=True)

    return say
