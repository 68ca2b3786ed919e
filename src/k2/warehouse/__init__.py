"""The warehouse: ClickHouse SQL (numbered files in sql/) on embedded chDB or a server.

    sql/NN-*.sql     the schema, applied in order (schema.py)
    queries/*.sql    every other query K2 runs, by name (`stored_query`)
    embedded.py      chDB in this process (the default); server.py: a ClickHouse server
    bronze.py        exactly-once inserts into the bronze tables (and the rejects table)
    journal.py       crash safety of the insert in flight; rebuild.py: silver and gold from bronze
    instruments.py   native symbol -> base/quote; memory.py: RSS of the long-running writers

Importing this package loads nothing heavy (no chDB, no pyarrow): `open_warehouse` loads the
backend it chooses, the schema runner and the crash journal when it is called, so a writer process
sets up its memory first (memory.lean_writer_process: pyarrow reads its allocator from the
environment when it loads) and a process that only reads through a running pipeline never loads
chDB.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import msgspec

from k2.errors import K2Error, first_line

_decode_line = msgspec.json.Decoder().decode


class RowReads:
    """`rows` and `scalar` on top of a backend's `query(sql, fmt, params)` (embedded, server, or
    the running pipeline's read API). Decimals and 64-bit ints arrive as exact strings."""

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None) -> str:
        raise NotImplementedError

    def rows(self, sql: str, params: dict | None = None) -> list[list]:
        decode = _decode_line
        return [decode(line) for line in self.query(sql, "JSONCompactEachRow", params).splitlines() if line]

    def scalar(self, sql: str, params: dict | None = None):
        r = self.rows(sql, params)
        return r[0][0] if r and r[0] else None


@lru_cache(maxsize=None)
def stored_query(name: str) -> str:
    """The text of `queries/<name>.sql`: the SQL K2 runs lives in files, not in Python strings."""
    return resources.files("k2.warehouse").joinpath("queries", f"{name}.sql").read_text("utf-8")


def open_warehouse(data_dir: Path | str, *, url: str | None = None, apply_schema: bool = True,
                   release_startup_pages: bool = False, for_reading: bool = False, for_writing: bool = False):
    """Open the warehouse: a ClickHouse server when `url` is given, else chDB in `data_dir`.
    The schema is applied (idempotently) unless told otherwise. `release_startup_pages`: the
    long-running writers give back the chDB library pages only opening it needed (memory.py),
    after each step of the opening, so that the peak is one step's pages, not all of them, and
    set up their memory use (`k2.warehouse.memory.lean_writer_process`).

    Then what an earlier run left to put right: an insert a crash interrupted (journal.py) and
    parts ClickHouse found damaged (repair.py). A writer (`for_writing`) repairs both before it
    writes anything, or refuses to start (K2Error) when it cannot; a reader reports them and opens
    anyway, so a data dir on a full disk stays readable (`wh.damage`, `wh.deferred`).

    The backend modules are imported here, when chosen: a server needs the optional
    clickhouse-connect, and a process reading through a running pipeline never loads chDB.

    `for_reading`: the caller only reads, so a data dir this process cannot write is opened
    through a read-only mirror (k2.warehouse.readonly); for anyone else it is an error."""
    release = _no_release
    if release_startup_pages and not url:
        from k2.warehouse.memory import lean_writer_process, release_startup_pages as release

        lean_writer_process()
    if url:
        from k2.warehouse.server import ServerWarehouse

        wh = ServerWarehouse(url)
    else:
        from k2.warehouse.embedded import EmbeddedWarehouse
        from k2.warehouse.readonly import is_writable

        read_only = Path(data_dir).is_dir() and not is_writable(Path(data_dir))
        if read_only and not for_reading:
            raise K2Error(f"data dir {data_dir} is read-only: this command writes to it (reads work)")
        wh = _open_embedded(EmbeddedWarehouse, Path(data_dir), for_writing, read_only)
        release()  # loading chDB's library and starting its engine
        wh.releases_library_pages = release is not _no_release  # and again after bulk writes (memory.py)
        if read_only:  # nothing may be written: no schema, no repair (k2.warehouse.readonly)
            wh.damage, wh.deferred = [], []
            _warn_read_only(wh, Path(data_dir))
            wh.execute("USE k2")
            return wh
    if apply_schema:
        from k2.warehouse import schema

        try:
            schema.apply(wh, force=False)
        except Exception as exc:  # a damaged or foreign data dir, or an unreachable server
            wh.close()
            where = "the ClickHouse server" if url else f"data dir {data_dir}"
            raise K2Error(f"cannot prepare the warehouse in {where}: {first_line(exc)}") from None
        release()  # parsing and planning the schema's statements
    if apply_schema or wh.scalar("SELECT count() FROM system.databases WHERE name = 'k2'") not in (None, "0", 0):
        wh.execute("USE k2")  # (`k2 schema apply` on a new data dir creates the database after this)
    wh.damage, wh.deferred = [], []
    if apply_schema:
        try:
            _put_right(wh, for_writing)
        except K2Error:
            wh.close()
            raise
        release()
    return wh


#: how long a writer waits for a read that holds the data dir (a `k2 query` while nothing ran)
WRITER_WAITS_FOR_READS_S = 60.0


def _open_embedded(cls, data_dir: Path, for_writing: bool, read_only: bool = False):
    """A reader that opened the data dir while nothing ran holds it for a moment: a writer waits
    for it instead of failing at start. Another writer (its run file says so) is an error at once."""
    import time

    from k2.errors import WarehouseBusy
    from k2.runfile import read_run_info

    deadline = time.monotonic() + (WRITER_WAITS_FOR_READS_S if for_writing else 0.0)
    while True:
        try:
            return cls(data_dir, read_only=read_only)
        except WarehouseBusy:
            if time.monotonic() >= deadline or read_run_info(data_dir) is not None:
                raise
            time.sleep(0.5)


def _put_right(wh, for_writing: bool) -> None:
    """Finish an interrupted insert and repair damaged parts: now if this process writes (or if
    there is room), else later -- each deferred step is logged and kept in `wh.deferred`."""
    import logging

    from k2.warehouse.journal import interrupted_insert, repair_interrupted_insert
    from k2.warehouse.repair import find_damage, repair, report

    log = logging.getLogger("k2.warehouse")
    room = _has_room(wh)
    damage = find_damage(wh)
    if damage:
        log.warning("damaged parts found (ClickHouse detached them when it opened the data dir): %s", report(damage))
    pending = getattr(getattr(wh, "journal", None), "pending", lambda: None)()
    if not (pending or damage):
        return
    if not room:  # a repair writes (and a mutation on a full disk waits forever): not now
        what = [w for w, due in (("the repair of an insert a stop interrupted", pending),
                                 ("the repair of damaged parts", damage)) if due]
        if for_writing:
            raise K2Error(f"cannot repair the data dir before writing ({' and '.join(what)}): the disk is full; "
                          "free space and start again")
        wh.deferred += [f"{w} (needs free space)" for w in what]
        wh.damage = damage
        log.warning("not enough free space to repair now; opened for reading, repair deferred")
        return
    if not for_writing and damage:  # a reader reports; the next writer (or k2 repair) repairs
        wh.damage = damage
        try:
            repair_interrupted_insert(wh)
        except Exception as exc:
            wh.deferred.append(f"the repair of an interrupted insert: {first_line(exc)}")
        return
    try:
        if damage:  # first: an interrupted insert is replayed from bronze, which must be whole again
            interrupted = interrupted_insert(wh)
            lines = repair(wh, damage, also_rebuild=interrupted)
            for line in lines:
                log.warning("repair: %s", line)
            if interrupted and any(line.startswith("silver and gold rebuilt") for line in lines):
                log.warning("the last run stopped in the middle of an insert into %s's bronze: replayed with the "
                            "repair above", interrupted[0])
                wh.journal.done()
        repair_interrupted_insert(wh)
    except Exception as exc:
        if for_writing:
            raise K2Error(f"cannot repair the data dir before writing: {first_line(exc)}"
                          + ("" if room else " (the disk is full: free space and start again)")) from None
        wh.deferred.append(f"repair: {first_line(exc)}")
        log.warning("repair deferred: %s", first_line(exc))


def _has_room(wh) -> bool:
    """Room for a repair on the embedded store's filesystem (a server looks after its own disks)."""
    data_dir = getattr(wh, "data_dir", None)
    if getattr(wh, "backend", "") != "embedded" or data_dir is None:
        return True
    from k2.monitoring.health import DISK_RESERVE_BYTES, free_bytes

    free = free_bytes(data_dir)
    return free is None or free >= DISK_RESERVE_BYTES


def _no_release() -> float:
    return 0.0


def _warn_read_only(wh, data_dir: Path) -> None:
    import logging

    from k2.warehouse.journal import InflightJournal

    log = logging.getLogger("k2.warehouse")
    try:
        pending = InflightJournal(data_dir).pending()
    except K2Error:
        pending = {"bronze_table": "?"}
    if pending:
        log.warning("data dir %s is read-only and a k2 process stopped in the middle of an insert into %s: "
                    "answers may miss part of that batch until it is opened writable once", data_dir,
                    pending.get("bronze_table"))
    from k2.warehouse import schema

    if not schema.is_current(wh):
        log.warning("data dir %s is read-only and was written by another K2 version: reading it as it is",
                    data_dir)
