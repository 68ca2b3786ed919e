"""The exchange registry: one module per venue, each exporting ADAPTER."""

from __future__ import annotations

from k2.errors import K2Error
from k2.exchanges.base import ExchangeAdapter
from k2.exchanges.binance import ADAPTER as BINANCE
from k2.exchanges.bitfinex import ADAPTER as BITFINEX
from k2.exchanges.bybit import ADAPTER as BYBIT
from k2.exchanges.coinbase import ADAPTER as COINBASE
from k2.exchanges.coinbase_advanced import ADAPTER as COINBASE_ADVANCED
from k2.exchanges.gemini import ADAPTER as GEMINI
from k2.exchanges.kraken import ADAPTER as KRAKEN
from k2.exchanges.kraken_v2 import ADAPTER as KRAKEN_V2
from k2.exchanges.okx import ADAPTER as OKX

#: the default adapter of each exchange; this order fixes the simulator's ports (port + index)
ADAPTERS: dict[str, ExchangeAdapter] = {a.name: a for a in (BINANCE, KRAKEN, COINBASE, BYBIT, OKX, BITFINEX, GEMINI)}
#: other wire APIs of an exchange, chosen with K2_<EXCHANGE>_API / `api = "..."` in k2.toml
API_VARIANTS: dict[tuple[str, str], ExchangeAdapter] = {
    ("kraken", "v2"): KRAKEN_V2,
    ("coinbase", "advanced"): COINBASE_ADVANCED,
}
#: every adapter, one per bronze table
ALL_ADAPTERS: list[ExchangeAdapter] = [*ADAPTERS.values(), *API_VARIANTS.values()]


def get_adapter(name: str, api: str | None = None) -> ExchangeAdapter:
    key = name.strip().lower()
    if key not in ADAPTERS:
        raise K2Error(f"unknown exchange {name!r} (known: {', '.join(ADAPTERS)})")
    if api and api.lower() not in ("", "default", "v1"):
        try:
            return API_VARIANTS[(key, api.lower())]
        except KeyError:
            apis = ", ".join(v for (n, v) in API_VARIANTS if n == key) or "none"
            raise K2Error(f"unknown API {api!r} for {key} (other APIs: {apis})") from None
    return ADAPTERS[key]


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
