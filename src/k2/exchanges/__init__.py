"""The exchange registry: one module per venue, each exporting ADAPTER."""

from __future__ import annotations

from k2.errors import K2Error
from k2.exchanges.base import ExchangeAdapter
from k2.exchanges.binance import ADAPTER as BINANCE
from k2.exchanges.kraken import ADAPTER as KRAKEN

ADAPTERS: dict[str, ExchangeAdapter] = {a.name: a for a in (BINANCE, KRAKEN)}


def get_adapter(name: str) -> ExchangeAdapter:
    try:
        return ADAPTERS[name.strip().lower()]
    except KeyError:
        raise K2Error(f"unknown exchange {name!r} (known: {', '.join(ADAPTERS)})") from None


def parse_exchange_list(value: str | None, default: list[str] | None = None) -> list[str]:
    """`binance,kraken` or `all` -> validated adapter names, in the order given."""
    if value is None or value.strip() == "":
        return list(default if default is not None else ADAPTERS)
    if value.strip().lower() == "all":
        return list(ADAPTERS)
    names = [v.strip().lower() for v in value.split(",") if v.strip()]
    for n in names:
        get_adapter(n)
    return list(dict.fromkeys(names))
