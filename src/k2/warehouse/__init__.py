"""The warehouse: ClickHouse SQL (numbered files in sql/) on embedded chDB or a server."""

from __future__ import annotations

from pathlib import Path

from k2.errors import K2Error
from k2.warehouse import schema


class RowReads:
    """`rows` and `scalar` on top of a backend's `query(sql, fmt, params)` (embedded, server, or
    the running pipeline's read API). Decimals and 64-bit ints arrive as exact strings."""

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None) -> str:
        raise NotImplementedError

    def rows(self, sql: str, params: dict | None = None) -> list[list]:
        import msgspec

        decode = msgspec.json.Decoder().decode
        return [decode(line) for line in self.query(sql, "JSONCompactEachRow", params).splitlines() if line]

    def scalar(self, sql: str, params: dict | None = None):
        r = self.rows(sql, params)
        return r[0][0] if r and r[0] else None


def first_line(exc: BaseException) -> str:
    """ClickHouse's message without its code prefix and stack: what a user can act on."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    if "DB::Exception:" in line:
        line = line.split("DB::Exception:", 1)[1].strip()
    return line[:400]


def open_warehouse(data_dir: Path | str, *, url: str | None = None, apply_schema: bool = True,
                   release_startup_pages: bool = False):
    """Open the warehouse: a ClickHouse server when `url` is given, else chDB in `data_dir`.
    The schema is applied (idempotently) unless told otherwise. `release_startup_pages`: the
    long-running writers give back the chDB library pages only opening it needed (k2.memory),
    after each step of the opening, so that the peak is one step's pages, not all of them, and
    set up their memory use (`k2.memory.lean_writer_process`)."""
    release = _no_release
    if release_startup_pages and not url:
        from k2.memory import lean_writer_process, release_startup_pages as release

        lean_writer_process()
    if url:
        from k2.warehouse.server import ServerWarehouse

        wh = ServerWarehouse(url)
    else:
        from k2.warehouse.embedded import EmbeddedWarehouse

        wh = EmbeddedWarehouse(Path(data_dir))
        release()  # loading chDB's library and starting its engine
    if apply_schema:
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

        repair_interrupted_insert(wh)
        release()
    return wh


def _no_release() -> float:
    return 0.0
