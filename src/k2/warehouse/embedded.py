"""The embedded warehouse: ClickHouse running inside this process through chDB.

chDB lets one process open a data directory (ClickHouse locks `<dir>/status`), so opening checks
the lock first and says who holds it instead of failing deep inside ClickHouse. All calls go
through one lock: the session is shared by the writer thread and the read server.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import msgspec
from chdb import session

from k2.errors import K2Error, WarehouseBusy
from k2.runfile import READER_FILE, RELEASE_FILE, read_reader_info, request_release
from k2.warehouse import RowReads
from k2.warehouse.journal import InflightJournal

#: applied to every session: UTC everywhere, exact decimals and 64-bit ints as JSON strings
SESSION_SETTINGS = (
    "SET session_timezone = 'UTC'",
    "SET output_format_json_quote_decimals = 1",
    "SET output_format_json_quote_64bit_integers = 1",
    "SET output_format_json_escape_forward_slashes = 0",
    "SET output_format_decimal_trailing_zeros = 0",
)

_decode_line = msgspec.json.Decoder().decode

#: ClickHouse's counters of what an INSERT can do without failing: drop a block as a duplicate of
#: an earlier insert's token, and fail to write a file of a part (seen with a full disk: the part is
#: broken and the INSERT still succeeds)
_INSERT_EVENTS = ("SELECT event, value FROM system.events "
                  "WHERE event IN ('DuplicatedInsertedBlocks', 'WriteBufferFromFileDescriptorWriteFailed')")


def _insert_events(conn) -> tuple[int, int]:
    """(blocks dropped as duplicates, part files not written) so far, from a session or connection."""
    rows = dict(line.split(",") for line in conn.query(_INSERT_EVENTS, "CSV").bytes()
                .decode().replace('"', "").splitlines() if line)
    return int(rows.get("DuplicatedInsertedBlocks", 0)), int(rows.get("WriteBufferFromFileDescriptorWriteFailed", 0))


def _insert_sql(table: str, select_exprs: Sequence[str], target_columns: Sequence[str],
                params: dict[str, Any] | None, where: str, token: str) -> tuple[str, dict[str, Any] | None]:
    """The INSERT of a pyarrow Table named `batch` in the caller's frame, and its parameters."""
    settings = ""
    if token:
        settings = ("SETTINGS insert_deduplicate = 1, deduplicate_blocks_in_dependent_materialized_views = 1, "
                    "insert_deduplication_token = {token:String} ")
        params = {**(params or {}), "token": token}
    sql = (f"INSERT INTO k2.{table} ({', '.join(target_columns)}) {settings}"
           f"SELECT {', '.join(select_exprs)} FROM Python(batch)" + (f" WHERE {where}" if where else ""))
    return sql, params


class StorageWriteFailed(OSError):
    """An INSERT ClickHouse reported done, with files of its part unwritten (k2.warehouse.embedded)."""


class InsertOutcome(NamedTuple):
    """What an INSERT that did not raise really did (k2.warehouse.bronze reads it)."""
    deduplicated: bool = False  # ClickHouse dropped a block: its token was seen before
    write_failed: bool = False  # a file of a new part could not be written: the part may be broken


class _captured_stderr:
    """Route file descriptor 2 to a temp file while chDB starts: its C++ side prints errors
    there directly, and the user should get one line from k2, not ClickHouse's."""

    def __enter__(self) -> "_captured_stderr":
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)

    def text(self) -> str:
        self._file.seek(0)
        data = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return data


def chdb_dir(data_dir: Path) -> Path:
    return Path(data_dir) / "chdb"


def data_dir_is_locked(data_dir: Path) -> bool:
    """True when another process holds the chDB lock on this data dir."""
    status = chdb_dir(data_dir) / "status"
    if not status.exists():
        return False
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def wait_for_reader_release(data_dir: Path, timeout: float = 15.0) -> bool:
    """When the process holding the data dir is a reader (the Python API between calls), ask it to
    close its engine and wait until the lock is free (it answers within ~0.1 s, after the read it
    may be running). False when the holder is not a reader, or did not let go in time."""
    if read_reader_info(data_dir) is None:
        return False
    request_release(data_dir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not data_dir_is_locked(data_dir):
            return True
        time.sleep(0.05)
    return False


def check_data_dir(data_dir: Path) -> None:
    """Refuse a path that is not a K2 data dir before chDB sees it."""
    d = Path(data_dir)
    if d.exists() and not d.is_dir():
        raise K2Error(f"data dir {d} exists and is not a directory")
    if d.is_dir():
        entries = {p.name for p in d.iterdir()}
        foreign = entries - {"chdb", "k2.run.json", "logs", "k2.lock", "exports", ".k2demo", "spool", "inflight.json",
                             READER_FILE, RELEASE_FILE}
        if entries and "chdb" not in entries and foreign:
            raise K2Error(
                f"{d} is not a K2 data dir (it holds {', '.join(sorted(foreign)[:3])}...); "
                "choose an empty or new directory with --data-dir"
            )
    sub = chdb_dir(d)
    if sub.exists() and not (sub / "metadata").exists() and any(sub.iterdir()):
        if not (sub / "status").exists():
            raise K2Error(f"{sub} does not look like a chDB data directory; refusing to open it")


class EmbeddedWarehouse(RowReads):
    backend = "embedded"

    def __init__(self, data_dir: Path, read_only: bool = False):
        """`read_only`: the data dir cannot be written (k2.warehouse.readonly): chDB opens a
        temporary mirror of it and the data dir is never touched."""
        self.data_dir = Path(data_dir)
        self.read_only = read_only
        #: set by the first batch of a trade writer (an insert_rows with a token: bronze, rejects; not
        #: the schema's seeding of instruments): a writer shares this engine from then on
        self.has_written = False
        self._mirror: Path | None = None
        check_data_dir(self.data_dir)
        if data_dir_is_locked(self.data_dir) and not wait_for_reader_release(self.data_dir):
            raise WarehouseBusy(
                f"data dir {self.data_dir} is in use by another k2 process; "
                "stop it or use a different --data-dir"
            )
        if read_only:
            from k2.warehouse.readonly import make_mirror

            if not (chdb_dir(self.data_dir) / "metadata").is_dir():
                raise K2Error(f"data dir {self.data_dir} is read-only and holds no K2 store")
            self._mirror = where = make_mirror(chdb_dir(self.data_dir))
        else:
            chdb_dir(self.data_dir).mkdir(parents=True, exist_ok=True)
            where = chdb_dir(self.data_dir)
        self._engine_dir = where  # the data dir's chdb/, or its mirror when the dir is read-only
        self._lock = threading.RLock()
        with _captured_stderr() as captured:
            try:
                self._session = session.Session(str(where))
                error = None
            except Exception as exc:  # chDB reports a foreign or damaged dir this way
                error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if error is not None:
            self._remove_mirror()
            detail = captured.text().strip().splitlines()
            raise K2Error(f"cannot open data dir {self.data_dir}: {detail[0] if detail else error}")
        for stmt in SESSION_SETTINGS:
            self._session.query(stmt)
        self.journal = None if read_only else InflightJournal(self.data_dir)
        self._door = None
        self._events = self._insert_events()
        self._statements_since_events = 0

    # -- basic calls ------------------------------------------------------------------------
    def execute(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """Run a statement. An INSERT (the gaps ledger, the instruments, a rebuild) that ClickHouse
        reports done although files of its part could not be written raises StorageWriteFailed:
        the part is broken, and the caller must not count on it (see InsertOutcome)."""
        with self._lock:
            if not sql.lstrip().upper().startswith("INSERT"):
                self._statements_since_events += 1
                return self._session.query(sql, "CSV", params=params or None)
            if self._statements_since_events:
                self._events = self._insert_events()
            result = self._session.query(sql, "CSV", params=params or None)
            before, after = self._events, self._insert_events()
            self._events, self._statements_since_events = after, 0
        if after[1] > before[1]:
            raise StorageWriteFailed("ClickHouse could not write every file of an INSERT (a full disk?): "
                                     "its part may be broken")
        return result

    def _insert_events(self) -> tuple[int, int]:
        return _insert_events(self._session)

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict[str, Any] | None = None,
              settings: dict[str, Any] | None = None) -> str:
        """Run a read and return ClickHouse's formatted text (CSVWithNames, JSONEachRow, ...).
        With `settings` (output settings), it runs through the read door, which applies them."""
        if settings:
            return self.reads().query(sql, fmt, params, settings)
        with self._lock:
            self._statements_since_events += 1  # a user's SQL may write too
            res = self._session.query(sql, fmt, params=params or None)
        return res.bytes().decode("utf-8", "replace") if hasattr(res, "bytes") else str(res)



    # -- inserts ------------------------------------------------------------------------------
    def existing_keys(self, table: str, key_columns: Sequence[str], batch: Any,
                      also: Sequence[str] = ()) -> tuple[list[list[Any]], int]:
        """Keys of `batch` (a pyarrow Table holding the key columns) already present in `table`
        (or in the tables `also` names: the same trades from an archive), and how many distinct
        keys `batch` holds. One query in the usual case (nothing stored yet); the IN-set on the
        primary key reads only the granules that could hold them."""
        key = ", ".join(key_columns)
        stored_sql = " UNION ALL ".join(f"SELECT {key} FROM k2.{t} WHERE ({key}) IN (SELECT {key} FROM Python(batch))"
                                        for t in (table, *also))
        with self._lock:
            counts = self._session.query(
                f"SELECT uniqExact({key}), (SELECT count() FROM ({stored_sql})) FROM Python(batch)", "CSV").bytes()
            distinct, n_stored = (int(x) for x in counts.split(b","))
            stored = self._session.query(stored_sql, "JSONCompactEachRow").bytes() if n_stored else b""
        rows = [_decode_line(line) for line in stored.splitlines() if line]
        return rows, distinct

    def insert_rows(self, table: str, batch: Any, select_exprs: Sequence[str],
                    target_columns: Sequence[str], params: dict[str, Any] | None = None,
                    where: str = "", token: str = "") -> InsertOutcome:
        """Insert a pyarrow Table. With a token, an exact retry of the same batch is a no-op in
        the table and in every materialized view fed by it. Returns what ClickHouse did beside
        succeeding (a block dropped as a duplicate, a file it could not write), read from its
        counters: one cheap query after the insert (and one before when other statements ran)."""
        sql, params = _insert_sql(table, select_exprs, target_columns, params, where, token)
        with self._lock:
            if self._statements_since_events:
                self._events = self._insert_events()
            self._session.query(sql, "CSV", params=params or None)
            self.has_written = self.has_written or bool(token)
            before, after = self._events, self._insert_events()
            self._events, self._statements_since_events = after, 0
        return InsertOutcome(after[0] > before[0], after[1] > before[1])

    def reads(self, limits=None):
        """The read door on this engine (k2.warehouse.reads): reads in sessions of their own,
        read-only, limited, never through the writer's session or its lock."""
        from k2.warehouse.reads import EmbeddedReads

        if limits is None:
            if self._door is None:
                self._door = EmbeddedReads(self._engine_dir, beside_writer=self._beside_writer)
            return self._door
        return EmbeddedReads(self._engine_dir, limits, beside_writer=self._beside_writer)

    def _beside_writer(self) -> bool:
        """Whether this process writes into the engine (k2 run, k2 sink, a load): only then do
        reads yield the CPU to it (K2_READ_NICE); a notebook's or `k2 export`'s reads do not."""
        return self.has_written

    def bulk_session(self) -> "BulkSession":
        """Another connection to this engine, for a bulk writer's statements that run beside this
        session's (`k2 import`'s second insert stream): ClickHouse runs the two on two cores, where
        one INSERT ... SELECT of a chunk uses about one. The caller closes it."""
        if self.read_only:
            raise K2Error(f"data dir {self.data_dir} is read-only")
        return BulkSession(self._engine_dir)

    def release_freed_memory(self) -> None:
        """Hand the memory ClickHouse has freed back to the OS. chDB allocates with its own
        jemalloc, which keeps freed pages for reuse for seconds, per arena: after each INSERT of a
        live feed its RSS stayed at the high-water of the largest batch so far (a 100k-row write
        left 125 MB of such pages; the purge takes ~10 ms)."""
        with self._lock:
            self._session.query("SYSTEM JEMALLOC PURGE", "CSV")

    def close(self) -> None:
        with self._lock:
            try:
                self._session.close()
            except Exception:
                pass
            self._remove_mirror()

    def _remove_mirror(self) -> None:
        if self._mirror is not None:
            from k2.warehouse.readonly import remove_mirror

            remove_mirror(self._mirror)
            self._mirror = None


class BulkSession:
    """A connection of its own to an engine this process holds (EmbeddedWarehouse.bulk_session),
    with the session settings K2 uses everywhere. Like `EmbeddedWarehouse.execute`, an INSERT that
    ClickHouse reports done with files of its part unwritten raises StorageWriteFailed. The
    engine's counters are the process's: a failure beside it is reported by both statements,
    never by neither."""

    def __init__(self, engine_dir: Path):
        import chdb

        self._conn = chdb.connect(str(engine_dir))
        for stmt in SESSION_SETTINGS:
            self._conn.query(stmt)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> None:
        before = _insert_events(self._conn)[1]
        self._conn.query(sql, "CSV", params=params or None)
        if _insert_events(self._conn)[1] > before:
            raise StorageWriteFailed("ClickHouse could not write every file of an INSERT (a full disk?): "
                                     "its part may be broken")

    def insert_rows(self, table: str, batch: Any, select_exprs: Sequence[str], target_columns: Sequence[str],
                    params: dict[str, Any] | None = None, where: str = "", token: str = "") -> InsertOutcome:
        """`EmbeddedWarehouse.insert_rows` on this connection (`k2 load`'s second insert stream).
        The counters are the process's: a block dropped or a file unwritten by a statement running
        beside this one is reported here too, which only ever makes the caller check more."""
        sql, params = _insert_sql(table, select_exprs, target_columns, params, where, token)
        before = _insert_events(self._conn)
        self._conn.query(sql, "CSV", params=params or None)
        after = _insert_events(self._conn)
        return InsertOutcome(after[0] > before[0], after[1] > before[1])

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:
            pass
