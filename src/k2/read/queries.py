"""Read commands: candles, trades, ad-hoc SQL. User input is validated here and bound as query
parameters; the SQL lives in warehouse/queries/*.sql.

A reader (k2.read.remote) is the read door of a warehouse this process opened, or `RemoteReader`
asking a running `k2 run` on loopback (chDB lets one process hold a data dir, so while the pipeline
runs it answers the reads); both are read-only and limited (k2.warehouse.reads).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from k2.errors import K2Error
from k2.exchanges import get_adapter
from k2.terminal import format_table, parse_tsv
from k2.times import EPOCH as _EPOCH, parse_range, parse_time
from k2.warehouse import stored_query as sql

#: counts print as JSON numbers in `--format json` (the read door applies output settings per read)
COUNTS_AS_NUMBERS = {"output_format_json_quote_64bit_integers": 0}
INTERVALS = ("1m", "5m", "15m", "1h", "1d")
#: "table" is read as typed TSV and laid out by k2.terminal.format_table (numbers for reading, no
#: escape codes, the same whichever process ran the query); csv and json are ClickHouse's, exact
FORMATS = {"table": "TabSeparatedWithNamesAndTypes", "csv": "CSVWithNames", "json": "JSONEachRow"}
TABLE = FORMATS["table"]
#: columns a narrow terminal leaves out first, per read (the rest go from the right)
DROP_FIRST = {
    "ohlcv": ("buy_volume", "sell_volume", "quote_volume", "vwap", "symbol", "trade_count"),
    "trades": ("native_symbol", "is_valid", "symbol", "trade_id"),
    "gaps": (),
    "rejects": (),
}


def table_width() -> int | None:
    """The width a table must fit: the terminal's when stdout is one, else none (piped output
    keeps every column)."""
    import shutil

    try:
        if not sys.stdout.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    return shutil.get_terminal_size().columns


def as_table(tsv: str, query: str = "", fit: bool = True) -> tuple[str, list[str]]:
    """Typed TSV -> (a table for reading, the columns left out to fit the terminal). `fit=False`
    (k2 query: the user chose the columns) keeps them all."""
    names, types, rows = parse_tsv(tsv)
    if not names:
        return "", []
    return format_table(names, types, rows, table_width() if fit else None, DROP_FIRST.get(query, ()))


def clickhouse_format(fmt: str) -> str:
    try:
        return FORMATS[fmt]
    except KeyError:
        raise K2Error(f"unknown format {fmt!r} (choose table, csv or json)") from None


def check_symbol(symbol: str) -> str:
    text = symbol.strip()
    if not text:
        raise K2Error("symbol is empty")
    return text


def resolve_symbol(reader, symbol: str) -> str:
    """Canonical `BTC/USD` as given, or a native symbol (`BTCUSDT`, `XBT/USD`) mapped through
    the instruments table. Unknown symbols are an error listing a few known ones."""
    upper = check_symbol(symbol).upper()
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
    """'all', or the exchanges of a comma list by their K2 names ("binance,kraken"); an unknown
    name is an error. The stored queries match either form."""
    if exchange is None or exchange.strip().lower() in ("", "all"):
        return "all"
    names = [get_adapter(e.strip()).name for e in exchange.split(",") if e.strip()]
    return ",".join(dict.fromkeys(names)) or "all"


#: rows a read returns when no --limit is given (0 = no limit)
DEFAULT_LIMITS = {"ohlcv": 1_000_000, "trades": 1_000_000, "gaps": 1000, "rejects": 1000}
_ALL_ROWS = 2**63 - 1  # LIMIT for "no limit"


@dataclass
class Page:
    """A read's answer and whether it is all of it: `total` rows matched, `shown` are in `text`
    (the newest ones unless `oldest`). A cut answer is never silent: the CLI prints `note()`."""

    text: str
    what: str  # "candles", "trades", "gaps", "rejects"
    total: int
    shown: int
    limit: int  # 0 = none
    default_limit: bool  # the limit was the default, not the user's
    oldest: bool = False
    hidden: list[str] = field(default_factory=list)  # columns a table left out to fit the terminal

    def hidden_note(self) -> str:
        return (f"left out {', '.join(self.hidden)} to fit the terminal; a wider one, or --format csv, shows them"
                if self.hidden else "")

    @property
    def cut(self) -> bool:
        return self.shown < self.total

    def note(self) -> str:
        end = "oldest" if self.oldest else "newest"
        why = "the default --limit" if self.default_limit else "--limit"
        return (f"showing the {end} {self.shown:,} of {self.total:,} {self.what} ({why} {self.limit:,}); "
                "--limit 0 shows all, --since/--until narrow the range")


def check_limit(limit: int | None, query: str) -> tuple[int, bool]:
    """(limit, is the default). None = the default; 0 = no limit; negative is an error."""
    if limit is None:
        return DEFAULT_LIMITS[query], True
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise K2Error(f"--limit must be 0 (no limit) or a positive number of rows, got {limit!r}")
    return limit, False


def ohlcv(reader, symbol: str, interval: str, exchange: str | None = "all", since: str | None = None,
          until: str | None = None, fmt: str = "table", limit: int | None = None, oldest: bool = False) -> str:
    return ohlcv_page(reader, symbol, interval, exchange, since, until, fmt, limit, oldest).text


def ohlcv_page(reader, symbol: str, interval: str, exchange: str | None = "all", since: str | None = None,
               until: str | None = None, fmt: str = "table", limit: int | None = None,
               oldest: bool = False) -> Page:
    """Candles of `symbol`: the newest `limit` (or the oldest, with `oldest`), in time order."""
    interval = check_interval(interval)
    exchange = check_exchange(exchange)
    ch_fmt = clickhouse_format(fmt)
    lo, hi = parse_range(since, until)
    params: dict[str, Any] = {
        "view": f"ohlcv_{interval}_cross" if exchange == "all" else f"ohlcv_{interval}",
        "exchange": exchange, "since": lo, "until": hi,
    }
    return _symbol_page(reader, "ohlcv", "candles", ch_fmt, params, symbol, limit, oldest)


def trades(reader, symbol: str, exchange: str | None = "all", since: str | None = None,
           until: str | None = None, fmt: str = "table", limit: int | None = None, oldest: bool = False) -> str:
    return trades_page(reader, symbol, exchange, since, until, fmt, limit, oldest).text


def trades_page(reader, symbol: str, exchange: str | None = "all", since: str | None = None,
                until: str | None = None, fmt: str = "table", limit: int | None = None,
                oldest: bool = False) -> Page:
    """Silver trades of `symbol`: the newest `limit` (or the oldest, with `oldest`), in time order."""
    exchange = check_exchange(exchange)
    ch_fmt = clickhouse_format(fmt)
    lo, hi = parse_range(since, until)
    params: dict[str, Any] = {"exchange": exchange, "since": lo, "until": hi}
    return _symbol_page(reader, "trades", "trades", ch_fmt, params, symbol, limit, oldest)


def _symbol_page(reader, query: str, what: str, ch_fmt: str, params: dict[str, Any], symbol: str,
                 limit: int | None, oldest: bool) -> Page:
    """Count first (with the symbol as given: the usual case, a canonical symbol with data), then
    read the page. Only when nothing matches is the symbol resolved -- a native name is mapped and
    counted again, an unknown one is an error."""
    limit, default = check_limit(limit, query)
    text = symbol.strip().upper()
    total = int(reader.scalar(sql(f"{query}_count"), {**params, "symbol": text}) or 0) if text else 0
    if not total:
        canonical = resolve_symbol(reader, symbol)
        if canonical != text:
            text = canonical
            total = int(reader.scalar(sql(f"{query}_count"), {**params, "symbol": text}) or 0)
    shown = min(total, limit) if limit else total
    offset = 0 if oldest else total - shown
    out = reader.query(sql(query), ch_fmt, {**params, "symbol": text, "limit": shown or 1, "offset": offset},
                       COUNTS_AS_NUMBERS)
    if not shown:  # nothing matched: the query ran for its header (csv) and gave no rows
        out = out if ch_fmt == "CSVWithNames" else ""
    hidden: list[str] = []
    if ch_fmt == TABLE and out:
        out, hidden = as_table(out, query)
    return Page(out, what, total, shown, limit, default, oldest, hidden)


def gaps(reader, exchange: str | None = "all", state: str = "all", fmt: str = "table",
         limit: int | None = None) -> str:
    return gaps_page(reader, exchange, state, fmt, limit).text


def gaps_page(reader, exchange: str | None = "all", state: str = "all", fmt: str = "table",
              limit: int | None = None) -> Page:
    """The gaps ledger, newest first."""
    limit, default = check_limit(limit, "gaps")
    params: dict[str, Any] = {"exchange": check_exchange(exchange), "state": state}
    return _page(reader, "gaps", "gaps", clickhouse_format(fmt), params, limit, default)


def rejects(reader, exchange: str | None = "all", since: str | None = None, fmt: str = "table",
            limit: int | None = None) -> str:
    return rejects_page(reader, exchange, since, fmt, limit).text


def rejects_page(reader, exchange: str | None = "all", since: str | None = None, fmt: str = "table",
                 limit: int | None = None) -> Page:
    """Rejected frames, newest first, raw bytes exact (text, or base64 when not UTF-8)."""
    limit, default = check_limit(limit, "rejects")
    params: dict[str, Any] = {"exchange": check_exchange(exchange), "since": parse_time(since, "--since", _EPOCH)}
    return _page(reader, "rejects", "rejects", clickhouse_format(fmt), params, limit, default)


def _page(reader, query: str, what: str, ch_fmt: str, params: dict[str, Any], limit: int, default: bool) -> Page:
    total = int(reader.scalar(sql(f"{query}_count"), params) or 0)
    shown = min(total, limit) if limit else total
    out = reader.query(sql(query), ch_fmt, {**params, "limit": shown or _ALL_ROWS}, COUNTS_AS_NUMBERS) if total else ""
    hidden: list[str] = []
    if ch_fmt == TABLE and out:
        out, hidden = as_table(out, query)
    return Page(out, what, total, shown, limit, default, hidden=hidden)


def adhoc(reader, text: str, fmt: str = "table", write: bool = False) -> str:
    """`k2 query`: any reading statement through the read door (checked, read-only, limited);
    with `write`, one statement in a session of its own that may change the user's own tables."""
    if not text.strip():
        raise K2Error("query is empty")
    if write:
        out = reader.write(text, clickhouse_format(fmt))
    else:
        out = b"".join(reader.stream(text, clickhouse_format(fmt))).decode("utf-8", "replace")
    if fmt == "table" and out:
        out = as_table(out, fit=False)[0]
    return out
