"""Apply the numbered SQL files in `sql/` in order. Every statement is idempotent
(IF NOT EXISTS / OR REPLACE / MODIFY SETTING), so applying twice changes nothing. Files named
`*.embedded.sql` tune the embedded engine and are skipped on a ClickHouse server."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Iterator

from k2.exchanges import ALL_ADAPTERS
from k2.warehouse.instruments import seed_builtin_instruments


def sql_files() -> list[tuple[str, str]]:
    """(file name, text) of every schema file, in apply order."""
    folder = resources.files("k2.warehouse").joinpath("sql")
    files = sorted(p for p in folder.iterdir() if p.name.endswith(".sql"))
    return [(p.name, p.read_text(encoding="utf-8")) for p in files]


def split_statements(text: str) -> Iterator[str]:
    """Split a SQL file on `;` outside quotes and comments."""
    buf: list[str] = []
    i, n = 0, len(text)
    quote = ""
    while i < n:
        c = text[i]
        if quote:
            buf.append(c)
            if c == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 2
                continue
            if c == quote:
                quote = ""
        elif c in ("'", '"', "`"):
            quote = c
            buf.append(c)
        elif c == "-" and text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif c == ";":
            stmt = "".join(buf).strip()
            if stmt:
                yield stmt
            buf = []
        else:
            buf.append(c)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        yield stmt


def statements() -> list[tuple[str, str]]:
    return [(name, stmt) for name, text in sql_files() for stmt in split_statements(text)]


def schema_hash() -> str:
    h = hashlib.sha256()
    for name, stmt in statements():
        h.update(name.encode())
        h.update(stmt.encode())
    for adapter in ALL_ADAPTERS:
        h.update(repr(adapter.fallback_instruments).encode())
    return h.hexdigest()


def is_current(wh) -> bool:
    try:
        last = wh.scalar("SELECT schema_hash FROM k2.schema_state ORDER BY applied_at DESC LIMIT 1")
    except Exception:  # no database or table yet
        return False
    return last == schema_hash()


def apply(wh, force: bool = True) -> int:
    """Apply every schema statement, then seed the built-in instrument lists. Returns the count
    of statements run (0 when `force` is false and the stored hash says nothing changed)."""
    if not force and is_current(wh):
        return 0
    done = 0
    embedded = getattr(wh, "backend", "") == "embedded"
    for name, stmt in statements():
        if name.endswith(".embedded.sql") and not embedded:
            continue
        wh.execute(stmt)
        done += 1
    seed_builtin_instruments(wh)
    wh.execute("INSERT INTO k2.schema_state (schema_hash) VALUES ({h:String})", {"h": schema_hash()})
    return done
