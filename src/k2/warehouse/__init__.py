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
                   release_startup_pages: bool = False, for_reading: bool = False):
    """Open the warehouse: a ClickHouse server when `url` is given, else chDB in `data_dir`.
    The schema is applied (idempotently) unless told otherwise. `release_startup_pages`: the
    long-running writers give back the chDB library pages only opening it needed (memory.py),
    after each step of the opening, so that the peak is one step's pages, not all of them, and
    set up their memory use (`k2.warehouse.memory.lean_writer_process`).

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
        wh = EmbeddedWarehouse(Path(data_dir), read_only=read_only)
        release()  # loading chDB's library and starting its engine
        if read_only:  # nothing may be written: no schema, no repair (k2.warehouse.readonly)
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
    wh.execute("USE k2")
    if apply_schema:
        from k2.warehouse.journal import repair_interrupted_insert

        try:
            repair_interrupted_insert(wh)
        except K2Error:
            wh.close()
            raise
        release()
    return wh


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
