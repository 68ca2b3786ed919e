"""Read commands: candles, trades, ad-hoc SQL. User input is validated here and bound as query
parameters; the SQL lives in warehouse/queries/*.sql.

A reader (k2.read.remote) is the read door of a warehouse this process opened, or `RemoteReader`
asking a running `k2 run` on loopback (chDB lets one process hold a data dir, so while the pipeline
runs it answers the reads); both are read-only and limited (k2.warehouse.reads).
"""

from __future__ import annotations

from typing import Any

from k2.errors import K2Error
from k2.exchanges import get_adapter
from k2.times import EPOCH as _EPOCH, FAR_FUTURE as _FAR, parse_time
from k2.warehouse import stored_query as sql

INTERVALS = ("1m", "5m", "15m", "1h", "1d")
#: counts print as JSON numbers in `--format json` (the read door applies output settings per read)
COUNTS_AS_NUMBERS = {"output_format_json_quote_64bit_integers": 0}
FORMATS = {"table": "PrettyCompactMonoBlock", "csv": "CSVWithNames", "json": "JSONEachRow"}


def clickhouse_format(fmt: str) -> str:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise K2Error(f"unknown format {fmt!r} (choose table, csv or json)") from None


def resolve_symbol(reader, symbol: str) -> str:
    """Canonical `BTC/USD` as given, or a native symbol (`BTCUSDT`, `XBT/USD`) mapped through
    the instruments table. Unknown symbols are an error listing a few known ones."""
    text = symbol.strip()
    if not text:
        raise K2Error("symbol is empty")
    upper = text.upper()
    if int(reader.scalar(sql("symbol_exists"), {"s": upper}) or 0):
        return upper
    found = reader.rows(sql("native_to_canonical"), {"native": upper})
    if found:
        return found[0][0]
    known = [r[0] for r in reader.rows(sql("known_symbols"))]  # only to say what would work
    sample = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    raise K2Error(f"unknown symbol {symbol!r} (known: {sample or 'none yet'})")


def check_interval(interval: str) -> str:
    if interval not in INTERVALS:
        raise K2Error(f"unknown interval {interval!r} (choose {', '.join(INTERVALS)})")
    return interval


def check_exchange(exchange: str | None) -> str:
    if exchange is None or exchange.strip().lower() == "all":
        return "all"
    return get_adapter(exchange).name


def ohlcv(reader, symbol: str, interval: str, exchange: str | None = "all", since: str | None = None,
          until: str | None = None, fmt: str = "table", limit: int = 1_000_000) -> str:
    interval = check_interval(interval)
    exchange = check_exchange(exchange)
    ch_fmt = clickhouse_format(fmt)
    params: dict[str, Any] = {
        "view": f"ohlcv_{interval}_cross" if exchange == "all" else f"ohlcv_{interval}",
        "exchange": exchange,
        "since": parse_time(since, "--since", _EPOCH),
        "until": parse_time(until, "--until", _FAR),
        "limit": int(limit),
    }
    return _query_symbol(reader, "ohlcv", ch_fmt, params, symbol)


def trades(reader, symbol: str, exchange: str | None = "all", since: str | None = None,
           until: str | None = None, fmt: str = "table", limit: int = 1_000_000) -> str:
    exchange = check_exchange(exchange)
    params: dict[str, Any] = {
        "exchange": exchange,
        "since": parse_time(since, "--since", _EPOCH),
        "until": parse_time(until, "--until", _FAR),
        "limit": int(limit),
    }
    return _query_symbol(reader, "trades", clickhouse_format(fmt), params, symbol)


def _query_symbol(reader, query: str, ch_fmt: str, params: dict[str, Any], symbol: str) -> str:
    """Run a per-symbol query with the symbol as given first (the usual case: a canonical symbol
    with data, one round trip); only when nothing comes back is the symbol resolved -- a native
    name is mapped and asked again, an unknown one is an error."""
    text = symbol.strip().upper()
    out = reader.query(sql(query), ch_fmt, {**params, "symbol": text}, COUNTS_AS_NUMBERS) if text else ""
    if out.count("\n") > (1 if ch_fmt == "CSVWithNames" else 0):
        return out
    canonical = resolve_symbol(reader, symbol)
    return out if canonical == text else reader.query(sql(query), ch_fmt, {**params, "symbol": canonical},
                                                      COUNTS_AS_NUMBERS)


def gaps(reader, exchange: str | None = "all", state: str = "all", fmt: str = "table", limit: int = 1000) -> str:
    params = {"exchange": check_exchange(exchange), "state": state, "limit": int(limit)}
    return reader.query(sql("gaps"), clickhouse_format(fmt), params, COUNTS_AS_NUMBERS)


def rejects(reader, exchange: str | None = "all", since: str | None = None, fmt: str = "table",
            limit: int = 1000) -> str:
    params = {"exchange": check_exchange(exchange), "since": parse_time(since, "--since", _EPOCH),
              "limit": int(limit)}
    return reader.query(sql("rejects"), clickhouse_format(fmt), params, COUNTS_AS_NUMBERS)


def adhoc(reader, text: str, fmt: str = "table", write: bool = False) -> str:
    """`k2 query`: any reading statement through the read door (checked, read-only, limited);
    with `write`, one statement in a session of its own that may change the user's own tables."""
    if not text.strip():
        raise K2Error("query is empty")
    if write:
        return reader.write(text, clickhouse_format(fmt))
    return b"".join(reader.stream(text, clickhouse_format(fmt))).decode("utf-8", "replace")
