"""The instruments table: native symbol -> (base, quote), seeded from the adapters' built-in
lists and refreshed from each exchange's metadata endpoint by the feed when online."""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa

from k2.exchanges import ALL_ADAPTERS
from k2.exchanges.base import Instrument

_COLUMNS = ("exchange", "native_symbol", "base", "quote", "source")


def _table(exchange: str, instruments: Iterable[Instrument], source: str) -> pa.Table:
    items = list(instruments)
    return pa.table({
        "exchange": [exchange] * len(items),
        "native_symbol": [i.native_symbol for i in items],
        "base": [i.base for i in items],
        "quote": [i.quote for i in items],
        "source": [source] * len(items),
    })


def upsert_instruments(wh, exchange: str, instruments: Iterable[Instrument], source: str,
                       updated_at: str = "now64(6)") -> int:
    """Insert the instruments whose (symbol, base, quote) is not already current. Returns how many."""
    batch = _table(exchange, instruments, source)
    if batch.num_rows == 0:
        return 0
    before = int(wh.scalar("SELECT count() FROM k2.instruments"))
    wh.insert_rows(
        "instruments",
        batch,
        select_exprs=[*_COLUMNS, updated_at],
        target_columns=[*_COLUMNS, "updated_at"],
        where="(exchange, native_symbol, base, quote) NOT IN "
              "(SELECT exchange, native_symbol, base, quote FROM k2.instruments FINAL)",
    )
    return int(wh.scalar("SELECT count() FROM k2.instruments")) - before


def seed_builtin_instruments(wh) -> None:
    """Built-in rows carry an old version so that anything fetched from an exchange wins."""
    for adapter in ALL_ADAPTERS:
        known = {r[0] for r in wh.rows(
            "SELECT native_symbol FROM k2.instruments WHERE exchange = {e:String}", {"e": adapter.name})}
        missing = [i for i in adapter.fallback_instruments if i.native_symbol not in known]
        if missing:
            upsert_instruments(wh, adapter.name, missing, "builtin",
                               updated_at="toDateTime64('2000-01-01 00:00:00', 6, 'UTC')")


def instrument_map(wh, exchange: str) -> dict[str, str]:
    """native symbol -> canonical symbol, as silver will compute it."""
    return {
        r[0]: f"{r[1]}/{r[2]}"
        for r in wh.rows(
            "SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = {e:String}",
            {"e": exchange},
        )
    }
