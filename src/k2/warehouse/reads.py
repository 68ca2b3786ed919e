"""The read door: how every read reaches the warehouse, isolated from the writer.

`k2 ohlcv/trades/query/validate`, the Python API (`k2.connect`), `k2 export` and the
ClickHouse-compatible HTTP endpoint of `k2 run` / `k2 serve` (and so Grafana) read through here.
A read

* runs in a ClickHouse session of its own, never the writer's, opened with its limits and then
  `readonly = 1`: ClickHouse refuses INSERT, ALTER, DROP, TRUNCATE, CREATE, OPTIMIZE, SYSTEM, SET,
  a SETTINGS clause that changes anything, and the table functions that reach files, URLs, other
  servers or processes; nothing it does changes the writer's session;
* has a time limit (`max_execution_time`: ClickHouse cancels the query), a memory limit
  (`max_memory_usage`), a thread limit, and a result-size limit for the formats that cannot be
  streamed; it waits at most `queue_timeout_s` for one of `max_concurrent` slots;
* is one statement of a reading kind (SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN), without
  INTO OUTFILE, without the file() function and with only the table functions that stay inside the
  engine. chDB is clickhouse-local, which runs several statements, INTO OUTFILE and KILL QUERY in
  its client part and lets file() read any path, where no setting reaches (measured:
  docs/adr/0015-read-door.md). ClickHouse's own parser decides (`formatQuerySingleLine`,
  `EXPLAIN AST`); K2 reads the tree it prints and never parses SQL itself.

Errors are `QueryError`s carrying ClickHouse's code and name, on one line.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from k2.config import ReadSettings
from k2.errors import QueryError
from k2.warehouse import RowReads

#: the output K2 promises everywhere (the writer's session SETs the same): UTC, exact decimals and
#: 64-bit integers as JSON strings. A client may change these for its own read.
SESSION_SETTINGS: dict[str, Any] = {
    "session_timezone": "UTC",
    "output_format_json_quote_decimals": 1,
    "output_format_json_quote_64bit_integers": 1,
    "output_format_json_escape_forward_slashes": 0,
    "output_format_decimal_trailing_zeros": 0,
}
#: settings a reader may choose for its own read: how the result is written, and lower limits
_OUTPUT_SETTINGS = re.compile(r"^(output_format_|format_|date_time_output_format$|interval_output_format$|"
                              r"bool_(true|false)_representation$|extremes$|max_block_size$|session_timezone$|"
                              r"date_time_input_format$|cast_string_to_dynamic_use_inference$|join_use_nulls$|"
                              r"log_comment$|result_overflow_mode$|max_result_rows$|max_rows_to_read$|"
                              r"max_bytes_to_read$|max_rows_to_group_by$|read_in_order_use_buffering$)")
_LIMIT_SETTINGS = ("max_execution_time", "max_memory_usage", "max_threads", "max_result_bytes")
_SETTING_VALUE = re.compile(r"^[A-Za-z0-9_.:/\-]{0,200}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: statement kinds (the root of ClickHouse's AST) a read may be
_READING_KINDS = ("SelectWithUnionQuery", "SelectIntersectExceptQuery", "DescribeQuery", "Explain")
_READING_PREFIXES = ("Show", "Exists")
#: table functions that only read what the engine holds or generates (the rest reach files, URLs,
#: other servers, processes or Python objects, or list the file system)
SAFE_TABLE_FUNCTIONS = frozenset({
    "numbers", "numbers_mt", "zeros", "zeros_mt", "generateseries", "generate_series", "generaterandom",
    "values", "view", "viewifpermitted", "viewexplain", "merge", "null", "primes", "loop", "format",
    "mergetreeindex", "mergetreeprojection", "sqlstandardvalues",
})
#: formats whose chunks can be sent one after the other as they come (no header or footer per chunk)
STREAMING_FORMATS = frozenset({
    "TabSeparated", "TSV", "TabSeparatedRaw", "TSVRaw", "CSV", "JSONEachRow", "NDJSON", "JSONLines",
    "JSONCompactEachRow", "JSONStringsEachRow", "JSONCompactStringsEachRow", "Native", "RowBinary",
    "LineAsString", "Values",
})
ARROW_FORMATS = frozenset({"Arrow", "ArrowStream"})

_CODE = re.compile(r"Code: (\d+)\. (?:DB::\w*Exception: )?")
_NAME = re.compile(r"\(([A-Z][A-Z0-9_]+)\)\s*$")


# -- errors -------------------------------------------------------------------------------------------
def query_error(exc: BaseException | str, limits: ReadSettings | None = None) -> QueryError:
    """ClickHouse's error as one line, with its code and name; the limits K2 set say what to change."""
    if isinstance(exc, QueryError):
        return exc
    text = " ".join(str(exc).split()) or type(exc).__name__
    text = text.replace("Streaming query failed: ", "")
    codes = _CODE.findall(text)
    code = int(codes[-1]) if codes else 0
    body = _CODE.sub("", text)
    body = re.sub(r"\s*\(version [^)]*\)\.?", "", body)
    m = _NAME.search(body)
    name = m.group(1) if m else ""
    while True:  # nested "(READONLY). (READONLY)" endings
        stripped = re.sub(r"\.?\s*\(([A-Z][A-Z0-9_]+)\)\.?\s*$", "", body)
        if stripped == body:
            break
        body = stripped
    body = body.strip().rstrip(".")
    if limits is not None:
        if code == 159:
            body = (f"query timed out after {limits.timeout_s:g} s (K2_READ_TIMEOUT_S): {body}; "
                    "narrow it with a time range or LIMIT")
        elif code == 241:
            body = (f"query too large: needs more than {limits.max_memory_mb} MB (K2_READ_MAX_MEMORY_MB): {body}; "
                    "narrow it with a time range, fewer columns or LIMIT")
        elif code == 396:
            body = (f"result too large for this format (K2_READ_MAX_RESULT_MB = {limits.max_result_mb}): {body}; "
                    "use a streaming format (Native, ArrowStream, CSV, JSONEachRow, TabSeparated) or LIMIT")
    return QueryError(body[:2000], code, name)


def syntax_error(exc: BaseException, limits: ReadSettings) -> QueryError:
    """A parse error of the statement check, without the check's own wrapper in the message."""
    err = query_error(exc, limits)
    err.args = (re.sub(r":? In scope SELECT formatQuerySingleLine\(.*$", "", str(err)),)
    return err


def refused(code: int, name: str, message: str) -> QueryError:
    return QueryError(message, code, name)


# -- what a statement is, by ClickHouse's parser --------------------------------------------------------
@dataclass(frozen=True)
class Statement:
    kind: str               # the AST root: SelectWithUnionQuery, ShowTables, DescribeQuery, ...
    fmt: str | None = None  # its FORMAT clause, if any


def ast_nodes(dump: str) -> list[tuple[int, str, str]]:
    """(depth, node type, rest of the line) of `EXPLAIN AST` output (one space of indent per level)."""
    out = []
    for line in dump.splitlines():
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip(" "))
        node, _, rest = line.strip().partition(" ")
        out.append((depth, node, rest))
    return out


def inspect_ast(dump: str, formats: frozenset[str] | None = None) -> Statement:
    """Decide from ClickHouse's AST whether a statement may run as a read; raise QueryError if not.
    `formats`: ClickHouse's output format names (a FORMAT clause is an identifier child of the root;
    so is the database of SHOW ... FROM db)."""
    nodes = ast_nodes(dump)
    if not nodes:
        raise refused(62, "SYNTAX_ERROR", "empty query")
    kind = nodes[0][1]
    if kind not in _READING_KINDS and not kind.startswith(_READING_PREFIXES):
        raise refused(164, "READONLY", f"the read endpoint runs reading statements only (SELECT, WITH, SHOW, "
                                       f"DESCRIBE, EXISTS, EXPLAIN), not {kind} (k2 query --write runs one "
                                       f"writing statement in a session of its own)")
    fmt = None
    parents: list[str] = []
    for depth, node, rest in nodes:
        del parents[depth:]
        parent = parents[-1] if parents else ""
        parents.append(node)
        if depth == 1 and node == "Literal":  # the only literal child of a query with output: INTO OUTFILE
            raise refused(358, "INTO_OUTFILE_NOT_ALLOWED", "INTO OUTFILE is not allowed on the read endpoint "
                                                           "(use k2 export, or a FORMAT and the response)")
        if depth == 1 and node == "Identifier" and (formats is None or rest.split(" ")[0] in formats):
            fmt = rest.split(" ")[0]
        if node == "Function":
            name = rest.split(" ")[0]
            if name.lower() == "file":
                raise refused(497, "ACCESS_DENIED", "file() reads files of the machine K2 runs on; "
                                                    "it is not allowed on the read endpoint")
            if parent == "TableExpression" and name.lower() not in SAFE_TABLE_FUNCTIONS:
                raise refused(497, "ACCESS_DENIED", f"table function {name}() reaches outside the warehouse; "
                                                    "it is not allowed on the read endpoint")
    return Statement(kind, fmt)


def tsv_escape(text: str) -> str:
    """A query parameter's value as ClickHouse reads it (escaped like TabSeparated)."""
    return (text.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
            .replace("\0", "\\0"))


class _StatementCache:
    """Recently checked statements (dashboards repeat theirs), so a repeat costs nothing."""

    def __init__(self, size: int = 512):
        self._items: OrderedDict[str, Statement] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, sql: str) -> Statement | None:
        with self._lock:
            st = self._items.get(sql)
            if st is not None:
                self._items.move_to_end(sql)
            return st

    def put(self, sql: str, st: Statement) -> None:
        with self._lock:
            self._items[sql] = st
            if len(self._items) > self._size:
                self._items.popitem(last=False)


# -- settings of one read ----------------------------------------------------------------------------------
def read_settings(limits: ReadSettings, requested: dict[str, Any] | None = None,
                  buffered: bool = False) -> dict[str, Any]:
    """The settings a read's session starts with, `readonly = 1` last: K2's output settings, the
    output settings the client asked for, and K2's limits (a client may lower them; a higher value,
    as Grafana sends its own query timeout, leaves K2's ceiling in force). A request to change
    anything else is refused as ClickHouse refuses it in read-only mode."""
    ours: dict[str, int] = {
        "max_execution_time": max(1, int(round(limits.timeout_s))),
        "max_memory_usage": int(limits.max_memory_mb) * 1024 * 1024,
        "max_threads": int(limits.max_threads),
    }
    if limits.nice > 0:
        ours["os_thread_priority"] = int(limits.nice)
    if buffered:
        ours["max_result_bytes"] = int(limits.max_result_mb) * 1024 * 1024
    out: dict[str, Any] = dict(SESSION_SETTINGS)
    for name, value in (requested or {}).items():
        text = str(int(value)) if isinstance(value, bool) else str(value)
        if name == "readonly":
            if text in ("1", "2"):  # what the client wants is granted: reads only
                continue
            raise refused(164, "READONLY", "Cannot modify 'readonly' setting in readonly mode")
        if not _SETTING_VALUE.match(text):
            raise refused(36, "BAD_ARGUMENTS", f"value of setting '{name}' is not allowed on the read endpoint")
        if name in _LIMIT_SETTINGS:
            try:
                asked = int(float(text))
            except ValueError:
                raise refused(36, "BAD_ARGUMENTS", f"setting '{name}' must be a number") from None
            limit = ours.get(name)
            if asked > 0 and (limit is None or asked < limit):
                ours[name] = asked  # lower than K2's: taken; higher or 0 (unlimited): K2's ceiling stays
            continue
        if _OUTPUT_SETTINGS.match(name):
            out[name] = text
            continue
        raise refused(164, "READONLY", f"Cannot modify '{name}' setting in readonly mode")
    out.update(ours)
    out["readonly"] = 1
    return out


# -- a read in progress ----------------------------------------------------------------------------------------
@dataclass
class ReadStream:
    """One read's result, as it comes: `format` is what the bytes are (the query's FORMAT clause
    wins over the one asked for); iterating yields the bytes; `close()` stops the query and gives
    back its slot. `summary` is what ClickHouse reported when the first bytes were ready."""

    format: str
    chunks: Iterator[bytes]
    summary: dict[str, Any] = field(default_factory=dict)
    on_close: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def read_all(self) -> bytes:
        try:
            return b"".join(self.chunks)
        finally:
            self.close()

    def close(self) -> None:
        done, self.on_close = self.on_close, None
        if done is not None:
            done()

    def __enter__(self) -> "ReadStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ReadDoor(RowReads):
    """What every backend's read door offers (embedded: EmbeddedReads; server: ServerReads).

    `stream` is the general read (the HTTP endpoint, `k2 query`); `query` (RowReads) the text of
    K2's own stored queries; `arrow_batches` the rows as Arrow record batches (Python API, export).
    `check=False` skips the statement check for K2's own stored SQL; the session is read-only
    either way."""

    backend = "reads"

    def __init__(self, limits: ReadSettings | None = None):
        self.limits = limits or ReadSettings()
        self._slots = threading.BoundedSemaphore(self.limits.max_concurrent)
        self._checked = _StatementCache()
        self._formats: frozenset[str] | None = None

    # -- slots ---------------------------------------------------------------------------------------
    def _take_slot(self) -> Callable[[], None]:
        if not self._slots.acquire(timeout=self.limits.queue_timeout_s):
            raise refused(202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                          f"too many reads at once ({self.limits.max_concurrent} running, K2_READ_MAX_CONCURRENT); "
                          f"none finished within {self.limits.queue_timeout_s:g} s")
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                self._slots.release()

        return release

    # -- the interface ---------------------------------------------------------------------------------
    def stream(self, sql: str, fmt: str = "TabSeparated", params: dict[str, Any] | None = None,
               settings: dict[str, Any] | None = None, database: str = "k2", check: bool = True) -> ReadStream:
        raise NotImplementedError

    def arrow_batches(self, sql: str, params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                      check: bool = False):
        """(schema, iterator of pyarrow RecordBatch) of a read; close the iterator to stop early."""
        raise NotImplementedError

    def arrow(self, sql: str, params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
              check: bool = False):
        """The whole result as a pyarrow.Table (decimals decimal128/256, DateTime64 as UTC timestamps)."""
        import pyarrow as pa

        schema, batches = self.arrow_batches(sql, params, settings, check)
        try:
            return pa.Table.from_batches(list(batches), schema=schema)
        finally:
            close = getattr(batches, "close", None)
            if close:
                close()

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> str:
        with self.stream(sql, fmt, params, settings, check=False) as s:
            return s.read_all().decode("utf-8", "replace")

    def write(self, sql: str, fmt: str = "TabSeparated") -> str:
        """`k2 query --write`: one statement in a session of its own (not read-only, same time and
        memory limits), for a user's own tables and views. Never the writer's session, so a SET
        there ends with the statement."""
        raise NotImplementedError

    def close(self) -> None:
        pass


def write_settings(limits: ReadSettings) -> dict[str, Any]:
    out = read_settings(limits)
    out.pop("readonly")
    return out


def database_name(database: str | None) -> str:
    db = database or "k2"
    if not _IDENT.match(db):
        raise refused(81, "UNKNOWN_DATABASE", f"database name {db!r} is not valid")
    return db


# -- chDB ---------------------------------------------------------------------------------------------
class EmbeddedReads(ReadDoor):
    """Reads on the chDB engine of this process: each read opens a connection of its own on the
    engine's data dir (chDB allows any number per process, ~0.3 ms to open; measured) with the read
    settings in its connection string, so they are in force before the first statement runs."""

    backend = "embedded"

    def __init__(self, chdb_path: Path | str, limits: ReadSettings | None = None,
                 beside_writer: Callable[[], bool] | None = None):
        super().__init__(limits)
        self.path = str(chdb_path)
        #: whether a writer shares this engine now; without one a read keeps its CPU (nice 0)
        self.beside_writer = beside_writer

    def _limits_now(self) -> ReadSettings:
        if self.limits.nice and self.beside_writer is not None and not self.beside_writer():
            return replace(self.limits, nice=0)
        return self.limits

    def _connect(self, settings: dict[str, Any], database: str):
        import chdb

        conn_str = self.path + "?" + "&".join(f"{k}={v}" for k, v in settings.items())
        try:
            conn = chdb.connect(conn_str)
        except Exception as exc:
            raise query_error(exc, self.limits) from None
        try:
            conn.query(f"USE {database_name(database)}")
        except Exception as exc:
            conn.close()
            raise query_error(exc, self.limits) from None
        return conn

    def _check(self, conn, sql: str, params: dict[str, str] | None) -> Statement:
        st = self._checked.get(sql)
        if st is not None:
            return st
        try:  # exactly one statement, or ClickHouse's syntax error
            conn.query("SELECT formatQuerySingleLine({q:String})", "TSVRaw", params={"q": tsv_escape(sql)})
        except Exception as exc:
            raise syntax_error(exc, self.limits) from None
        try:
            dump = conn.query("EXPLAIN AST " + sql, "TSVRaw", params=params).bytes().decode("utf-8", "replace")
            if self._formats is None:
                names = conn.query("SELECT name FROM system.formats WHERE is_output", "TSVRaw").bytes()
                self._formats = frozenset(names.decode().split())
        except Exception as exc:
            raise query_error(exc, self.limits) from None
        st = inspect_ast(dump, self._formats)
        self._checked.put(sql, st)
        return st

    def _open(self, sql: str, fmt: str, params: dict[str, str] | None, settings: dict[str, Any] | None,
              database: str, check: bool, buffered_formats: bool = True):
        release = self._take_slot()
        try:
            st = self._checked.get(sql) if check else None
            if check and st is None:
                checker = self._connect(read_settings(self._limits_now()), "system")
                try:
                    st = self._check(checker, sql, params)
                finally:
                    checker.close()
            out_fmt = (st.fmt if st and st.fmt else fmt) or "TabSeparated"
            # chDB streams SELECTs only; SHOW, DESCRIBE, EXISTS and EXPLAIN answers are small
            buffered = buffered_formats and (out_fmt not in STREAMING_FORMATS and out_fmt not in ARROW_FORMATS
                                             or st is not None and not st.kind.startswith("Select"))
            conn = self._connect(read_settings(self._limits_now(), settings, buffered=buffered), database)
        except BaseException:
            release()
            raise
        return conn, out_fmt, buffered, release

    def stream(self, sql: str, fmt: str = "TabSeparated", params: dict[str, Any] | None = None,
               settings: dict[str, Any] | None = None, database: str = "k2", check: bool = True) -> ReadStream:
        params = {k: str(v) for k, v in (params or {}).items()} or None
        conn, out_fmt, buffered, release = self._open(sql, fmt, params, settings, database, check)
        started = time.monotonic()
        holder: dict[str, Any] = {}

        def finish() -> None:
            res = holder.pop("stream", None)
            try:
                if res is not None:
                    res.cancel()
            except Exception:
                pass
            finally:
                conn.close()
                release()

        try:
            if buffered:
                res = conn.query(sql, out_fmt, params=params)
                data = res.bytes()
                summary = {"read_rows": res.rows_read(), "read_bytes": res.bytes_read(),
                           "elapsed_ns": int(res.elapsed() * 1e9)}
                return ReadStream(out_fmt, iter([data] if data else []), summary, finish)
            if out_fmt == "ArrowStream":
                holder["stream"] = conn.send_query(sql, "ArrowStream", params=params)
                chunks = self._arrow_stream(conn, sql, params, holder)
            elif out_fmt == "Arrow":
                chunks = self._arrow_chunks(conn, sql, params, out_fmt, holder)
            else:
                holder["stream"] = conn.send_query(sql, out_fmt, params=params)
                chunks = self._chunks(holder)
            first = next(chunks, None)  # errors before the first bytes are the usual ones: raise them now
        except QueryError:
            finish()
            raise
        except Exception as exc:
            finish()
            raise query_error(exc, self.limits) from None
        summary = {"elapsed_ns": int((time.monotonic() - started) * 1e9)}
        return ReadStream(out_fmt, self._guarded(first, chunks), summary, finish)

    def _chunks(self, holder: dict) -> Iterator[bytes]:
        for chunk in holder["stream"]:
            data = chunk.bytes()
            if data:
                yield data

    def _guarded(self, first: bytes | None, chunks: Iterator[bytes]) -> Iterator[bytes]:
        """The chunks, with a failure mid-stream (a timeout, say) raised as a QueryError."""
        if first is None:
            return
        yield first
        try:
            yield from chunks
        except QueryError:
            raise
        except Exception as exc:
            raise query_error(exc, self.limits) from None

    def _arrow_stream(self, conn, sql: str, params, holder: dict) -> Iterator[bytes]:
        """chDB's ArrowStream chunks as one stream, without re-encoding a byte: each chunk is a
        complete stream (schema, batches, end marker), so the first keeps its schema, the others
        lose theirs, and one end marker closes the whole (a chunk whose schema differs, which
        one query does not produce, is an error). An empty result gets its schema unstreamed."""
        schema_msg = None
        for chunk in holder["stream"]:
            data = memoryview(chunk.bytes())
            if not data:
                continue
            msg_len = _first_message_length(data)
            if schema_msg is None:
                schema_msg = bytes(data[:msg_len])
                yield data[:-len(_EOS)] if bytes(data[-len(_EOS):]) == _EOS else data
                continue
            if bytes(data[:msg_len]) != schema_msg or bytes(data[-len(_EOS):]) != _EOS:
                raise refused(1002, "UNKNOWN_EXCEPTION", "the engine changed the Arrow schema between blocks of "
                                                         "one result; read it as Arrow or Native")
            yield data[msg_len:-len(_EOS)]
        if schema_msg is None:
            holder.pop("stream", None)
            data = conn.query(sql, "ArrowStream", params=params).bytes()
            if data:
                yield data
            return
        yield _EOS

    def _arrow_chunks(self, conn, sql: str, params, out_fmt: str, holder: dict) -> Iterator[bytes]:
        """chDB streams ArrowStream as one complete stream per chunk; a client expects one stream
        (or one file): the batches are written again, without copying their buffers twice."""
        import pyarrow as pa

        schema, batches = self._batches(conn, sql, params, holder)
        sink = _Chunks()
        writer = (pa.ipc.new_stream if out_fmt == "ArrowStream" else pa.ipc.new_file)(sink, schema)
        for batch in batches:
            writer.write_batch(batch)
            yield sink.take()
        writer.close()
        yield sink.take()

    def _batches(self, conn, sql: str, params, holder: dict):
        """(schema, batches) from chDB's ArrowStream chunks. An empty result has no chunk, so its
        schema comes from running it once more unstreamed (it found nothing: cheap)."""
        holder["stream"] = conn.send_query(sql, "ArrowStream", params=params)
        first = None
        for chunk in holder["stream"]:
            data = chunk.bytes()
            if data:
                first = _ipc(data)
                break
        if first is None:
            holder.pop("stream", None)
            return _ipc(conn.query(sql, "ArrowStream", params=params).bytes())

        def rest() -> Iterator[Any]:
            yield from first[1]
            for chunk in holder["stream"]:
                data = chunk.bytes()
                if data:
                    yield from _ipc(data)[1]

        return first[0], rest()

    @contextmanager
    def _writing_session(self, settings: dict[str, Any] | None = None) -> Iterator[Any]:
        """A read slot and a session of its own that may write (never the writer's), closed after."""
        release = self._take_slot()
        try:
            conn = self._connect({**write_settings(self._limits_now()), **(settings or {})}, "k2")
            try:
                yield conn
            finally:
                conn.close()
        finally:
            release()

    def write(self, sql: str, fmt: str = "TabSeparated") -> str:
        with self._writing_session() as conn:
            try:
                conn.query("SELECT formatQuerySingleLine({q:String})", "TSVRaw", params={"q": tsv_escape(sql)})
            except Exception as exc:
                raise syntax_error(exc, self.limits) from None
            try:
                return conn.query(sql, fmt).bytes().decode("utf-8", "replace")
            except Exception as exc:
                raise query_error(exc, self.limits) from None

    def select_into_file(self, select_sql: str, path: Path | str, fmt: str, params: dict[str, Any] | None = None,
                         settings: dict[str, Any] | None = None) -> int:
        """`k2 export` on an engine this process owns: K2's own SELECT written by the engine to a
        file (`INSERT INTO FUNCTION file(path, fmt) SELECT ...`), so that the engine's multi-threaded
        Parquet encoder writes it. A session of its own (never the writer's) with the read limits and
        `settings`, not read-only since writing a file is an INSERT for ClickHouse; only this one
        statement, built here around a SELECT from K2's own code (never a user's SQL), runs in it.
        The path goes as a parameter (no quoting); it must not hold glob characters (* ? { }),
        which the file() function expands: the caller checks. Returns the rows the finished file
        holds, as the engine reads them back from it (for Parquet: its footer)."""
        ours = {k: str(v) for k, v in (params or {}).items()}
        if "k2_out_path" in ours or "k2_out_format" in ours:
            raise ValueError("k2_out_path and k2_out_format are select_into_file's own parameters")
        ours.update(k2_out_path=str(path), k2_out_format=fmt)
        with self._writing_session(settings) as conn:
            try:
                conn.query("INSERT INTO FUNCTION file({k2_out_path:String}, {k2_out_format:String}) " + select_sql,
                           params=ours)
                back = conn.query("SELECT count() FROM file({k2_out_path:String}, {k2_out_format:String})", "TSVRaw",
                                  params={"k2_out_path": ours["k2_out_path"], "k2_out_format": fmt})
                return int(back.bytes().decode().strip())
            except Exception as exc:
                raise query_error(exc, self.limits) from None

    def arrow_batches(self, sql: str, params: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
                      check: bool = False):
        params = {k: str(v) for k, v in (params or {}).items()} or None
        conn, _fmt, _buffered, release = self._open(sql, "ArrowStream", params, settings, "k2", check,
                                                    buffered_formats=False)
        holder: dict[str, Any] = {}

        def finish() -> None:
            res = holder.pop("stream", None)
            try:
                if res is not None:
                    res.cancel()
            except Exception:
                pass
            finally:
                conn.close()
                release()

        try:
            schema, batches = self._batches(conn, sql, params, holder)
        except Exception as exc:
            finish()
            raise query_error(exc, self.limits) from None
        return schema, _ClosingBatches(batches, finish, self.limits)


#: the end-of-stream marker of the Arrow IPC stream format
_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"


def _first_message_length(data: memoryview) -> int:
    """Bytes of the first message (the schema) of an Arrow IPC stream: continuation marker,
    metadata length, metadata; a schema message has no body."""
    if bytes(data[:4]) != b"\xff\xff\xff\xff":
        raise ValueError("not an Arrow IPC stream")
    return 8 + int.from_bytes(data[4:8], "little")


def _ipc(data: bytes):
    """(schema, batches) of one Arrow IPC payload: a stream, or a file when the query's own FORMAT
    clause said Arrow."""
    import pyarrow as pa

    if data[:6] == b"ARROW1":
        reader = pa.ipc.open_file(data)
        return reader.schema, (reader.get_batch(i) for i in range(reader.num_record_batches))
    reader = pa.ipc.open_stream(data)
    return reader.schema, iter(reader)


class _Chunks:
    """A write-only file for pyarrow's IPC writer whose bytes are taken as they are written."""

    closed = False

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


class _ClosingBatches:
    """Batches of a read that gives back its session and slot when done, stopped or failed."""

    def __init__(self, batches: Iterator[Any], finish: Callable[[], None], limits: ReadSettings):
        self._batches, self._finish, self._limits = batches, finish, limits

    def __iter__(self) -> "_ClosingBatches":
        return self

    def __next__(self):
        try:
            return next(self._batches)
        except StopIteration:
            self.close()
            raise
        except QueryError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise query_error(exc, self._limits) from None

    def close(self) -> None:
        done, self._finish = self._finish, None
        if done is not None:
            done()

    def __del__(self) -> None:
        self.close()
