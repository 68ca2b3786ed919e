"""Cross-exchange dislocations for a user: `k2 spreads`, `Connection.spreads()`.

The spreads are SQL over silver and gold (warehouse/sql/32-gold-spreads.sql, ADR 0025); this
module checks the user's values and binds them to warehouse/queries/spreads.sql. What a
trade-based spread can and cannot tell is in the SQL file's header and the README: a signal
(no quotes, no fees, no transfer time), not a tradeable edge.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from k2.errors import K2Error
from k2.exchanges import get_adapter
from k2.read.queries import COUNTS_AS_NUMBERS, as_table, clickhouse_format, resolve_symbol
from k2.times import parse_range
from k2.terminal import parse_tsv
from k2.warehouse import stored_query as sql

#: interval -> (source view, seconds per window)
SPREAD_INTERVALS = {"1s": ("venue_prices_1s", 1), "1m": ("venue_prices_1m", 60)}
SPREAD_BY = ("last", "vwap")


def check_spread_interval(interval: str) -> str:
    if interval not in SPREAD_INTERVALS:
        raise K2Error(f"unknown spread interval {interval!r} (choose {', '.join(SPREAD_INTERVALS)})")
    return interval


def check_venues(venues: str | list[str] | None) -> list[str]:
    """`a,b` (or a list) -> exchange names; empty means every venue trading the pair."""
    if venues is None:
        return []
    items = [v.strip() for v in venues.split(",")] if isinstance(venues, str) else [str(v).strip() for v in venues]
    items = [v for v in items if v]
    names = sorted({get_adapter(v).name for v in items})
    if items and len(names) < 2:
        raise K2Error(f"--venues needs two or more exchanges (a spread is between venues), got {','.join(items)!r}")
    return names


def check_min_bps(value: Any) -> Decimal:
    try:
        bps = Decimal(str(value))
    except InvalidOperation:
        raise K2Error(f"--min-bps must be a number of basis points, got {value!r}") from None
    if not bps.is_finite() or bps < 0 or bps >= Decimal(10) ** 12:
        raise K2Error(f"--min-bps must be 0 or more basis points, got {value!r}")
    return bps.quantize(Decimal("0.00000001"))


def check_min_windows(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise K2Error(f"--min-windows must be 1 or more consecutive windows, got {value!r}")
    return value


def check_by(by: str) -> str:
    if by not in SPREAD_BY:
        raise K2Error(f"unknown --by {by!r} (choose last or vwap)")
    return by


def spreads(reader, symbol: str, venues: str | list[str] | None = None, interval: str = "1m",
            since: str | None = None, until: str | None = None, min_bps: Any = 0, min_windows: int = 1,
            by: str = "last", fmt: str = "table") -> str:
    """The windows where two venues' prices for `symbol` were at least `min_bps` apart for at
    least `min_windows` consecutive windows, oldest first, both sides' prices, sizes, trade counts
    and last trade times. Every row of the range: there is no limit to cut it."""
    ch_fmt = clickhouse_format(fmt)
    lo, hi = parse_range(since, until)
    params = spread_params(reader, symbol, venues, interval, lo, hi, min_bps, min_windows, by)
    query = sql("spreads")
    if fmt == "table":  # the columns a terminal can hold; csv and json give every column
        query = sql("spreads_table").replace("-- @spreads", query)
    out = reader.query(query, ch_fmt, params, COUNTS_AS_NUMBERS)
    if ch_fmt != "CSVWithNames" and not out.strip():
        return ""
    if fmt == "table":  # laid out by K2 like every read (the same whichever reader answered)
        out = as_table(out, "spreads")[0] if parse_tsv(out)[2] else ""
    return out


def spread_params(reader, symbol: str, venues: str | list[str] | None, interval: str, since: str, until: str,
                  min_bps: Any, min_windows: int, by: str) -> dict[str, Any]:
    """The bound parameters of queries/spreads.sql (`since`/`until` already parsed times); the
    symbol canonical or native, resolved through the instruments table."""
    source, seconds = SPREAD_INTERVALS[check_spread_interval(interval)]
    names = check_venues(venues)
    bps, windows, by = check_min_bps(min_bps), check_min_windows(min_windows), check_by(by)
    return {"source": source, "seconds": seconds, "symbol": resolve_symbol(reader, symbol), "venues": names,
            "since": since, "until": until, "min_bps": str(bps), "min_windows": windows, "by": by}
