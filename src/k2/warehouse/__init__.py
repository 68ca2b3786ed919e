"""The warehouse: ClickHouse SQL (numbered files in sql/) on embedded chDB or a server."""

from __future__ import annotations

from pathlib import Path

from k2.warehouse import schema


def open_warehouse(data_dir: Path | str, *, url: str | None = None, apply_schema: bool = True):
    """Open the warehouse: a ClickHouse server when `url` is given, else chDB in `data_dir`.
    The schema is applied (idempotently) unless told otherwise."""
    if url:
        from k2.warehouse.server import ServerWarehouse

        wh = ServerWarehouse(url)
    else:
        from k2.warehouse.embedded import EmbeddedWarehouse

        wh = EmbeddedWarehouse(Path(data_dir))
    if apply_schema:
        schema.apply(wh, force=False)
    wh.execute("USE k2")
    return wh
