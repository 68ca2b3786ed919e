"""K2's Python API: exact candles and trades as Arrow tables, pandas or polars frames.

    import k2
    db = k2.connect()                                   # ./k2data, or K2_DATA_DIR
    candles = db.ohlcv("BTC/USDT", "1m", exchange="binance", since="2026-12-01", format="pandas")

Every method returns a `pyarrow.Table` (`format="arrow"`, the default), a pandas DataFrame
(`format="pandas"`) or a polars DataFrame (`format="polars"`, needs polars). Prices and volumes are
Arrow decimal128(38, 18): `decimal.Decimal` objects in pandas, Decimal(38, 18) in polars, never
floats. Times are UTC timestamps (timezone-aware in pandas and polars).

Where the reads go, decided at each call:
* `k2 run` (or `k2 serve`, `k2 sink`) holds the data dir: through its ClickHouse HTTP endpoint,
  Arrow IPC on the wire (k2.read.remote);
* nothing does: this process opens the data dir itself and reads through the read door. It keeps
  the engine open between calls (opening costs ~60 ms and more), writes `k2.reader.json` and gives
  the directory up within ~0.1 s when another K2 process asks for it (`k2.release`), and after
  `keep_open_s` without a call: a notebook never locks out `k2 run` or `k2 ohlcv`;
* `url=`: a K2 endpoint (`http://127.0.0.1:9108`) or a ClickHouse server
  (`clickhouse://user:password@host:8123/k2`), over ClickHouse's HTTP interface.

Reads are read-only and limited wherever they run (k2.warehouse.reads); errors are one-line
`k2.K2Error`s (`k2.QueryError` for a query the warehouse refused), never engine internals.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Mapping

import pyarrow as pa

from k2.config import ReadSettings, load_settings
from k2.errors import K2Error, WarehouseBusy
from k2.read.coverage import coverage
from k2.read.queries import check_exchange, check_interval, resolve_symbol
from k2.read.remote import ClickHouseHTTP, LocalReader, RemoteReader
from k2.runfile import read_run_info, release_requested, remove_reader_info, write_reader_info
from k2.times import EPOCH, FAR_FUTURE, parse_time
from k2.warehouse import stored_query

Format = Literal["arrow", "pandas", "polars"]
FORMATS = ("arrow", "pandas", "polars")
#: LIMIT when none is given: everything (an answer is never cut short silently)
NO_LIMIT = 2**63 - 1
#: how long a call waits for a data dir another K2 process is opening (k2 run starting)
BUSY_WAIT_S = 30.0


# -- conversions -------------------------------------------------------------------------------------
def _as_time(value: Any, what: str, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, datetime):
        value = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
    elif isinstance(value, date):
        value = value.isoformat()
    elif not isinstance(value, str):
        raise K2Error(f"{what}: expected an ISO-8601 string, a datetime or a date, got {type(value).__name__}")
    return parse_time(value, what, default)


def _param(value: Any) -> str:
    """A Python value as the text ClickHouse parses for a `{name:Type}` parameter."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime):
        v = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return v.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_quoted(v) for v in value) + "]"
    if isinstance(value, (int, float, Decimal, str)):
        return str(value)
    raise K2Error(f"query parameter of type {type(value).__name__} is not supported "
                  "(str, int, float, Decimal, bool, datetime, date, or a list of them)")


def _quoted(value: Any) -> str:
    text = _param(value)
    if isinstance(value, (int, float, Decimal, bool)):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def convert(table, format: str):
    """A pyarrow.Table as the format asked for."""
    if format == "arrow":
        return table
    if format == "pandas":
        try:
            return table.to_pandas()
        except ImportError:
            raise K2Error("format='pandas' needs pandas: pip install 'k2[pandas]'") from None
    if format == "polars":
        try:
            import polars as pl
        except ImportError:
            raise K2Error("format='polars' needs polars: pip install 'k2[polars]'") from None
        wide = [f.name for f in table.schema if str(f.type).startswith("decimal256")]
        if wide:
            raise K2Error(f"polars holds decimals of up to 38 digits; column(s) {', '.join(wide)} have more: "
                          "cast them in the query (toDecimal128(x, 18)) or use format='arrow' or 'pandas'")
        return pl.from_arrow(table)
    raise K2Error(f"unknown format {format!r} (choose {', '.join(FORMATS)})")


# -- the data dir held by this process ------------------------------------------------------------------
class _HeldEngine:
    """This process's chDB engine on one data dir, kept open between calls and given up when
    another K2 process asks (k2.release), after `keep_open_s` idle, or at exit. chDB runs one
    engine per process, so there is one of these at a time."""

    lock = threading.Lock()
    current: "_HeldEngine | None" = None

    def __init__(self, data_dir: Path, limits: ReadSettings, keep_open_s: float):
        from k2.warehouse import open_warehouse

        self.data_dir = data_dir
        self.keep_open_s = keep_open_s
        self.calls = threading.Lock()  # a call in flight holds it; closing waits for it
        self.last_used = time.monotonic()
        self.reader = LocalReader(open_warehouse(data_dir), limits)
        write_reader_info(data_dir)
        self.closed = threading.Event()
        threading.Thread(target=self._watch, name="k2-reader-watch", daemon=True).start()

    def _watch(self) -> None:
        while not self.closed.wait(0.1):
            idle = time.monotonic() - self.last_used > self.keep_open_s
            if idle or release_requested(self.data_dir):
                with _HeldEngine.lock:
                    self.close()

    def close(self) -> None:
        """Close the engine (after the call in flight). Callers hold _HeldEngine.lock."""
        with self.calls:
            if self.closed.is_set():
                return
            self.closed.set()
            try:
                self.reader.close()
            finally:
                remove_reader_info(self.data_dir)
                if _HeldEngine.current is self:
                    _HeldEngine.current = None

    @classmethod
    def for_dir(cls, data_dir: Path, limits: ReadSettings, keep_open_s: float) -> "_HeldEngine":
        with cls.lock:
            held = cls.current
            if held is not None and not held.closed.is_set():
                if held.data_dir == data_dir:
                    return held
                held.close()  # chDB: one data dir per process
            cls.current = cls(data_dir, limits, keep_open_s)
            return cls.current


@atexit.register
def _close_held_engine() -> None:
    with _HeldEngine.lock:
        if _HeldEngine.current is not None:
            _HeldEngine.current.close()


# -- the connection ----------------------------------------------------------------------------------------
class Connection:
    """A handle on K2's data: candles, trades, gaps, rejects and any read-only SQL.

    Get one with `k2.connect()`. Cheap to keep open; `close()` (or `with`) gives up the data dir
    at once. Safe to use from several threads."""

    def __init__(self, data_dir: Path | None = None, url: str | None = None, password: str | None = None,
                 keep_open_s: float = 30.0, settings=None):
        self._settings = settings or load_settings()
        self.limits: ReadSettings = self._settings.read
        self.keep_open_s = keep_open_s
        self._http: ClickHouseHTTP | None = None
        self.data_dir: Path | None = None
        self._server_reader: LocalReader | None = None
        if url:
            self._http = _http_client(url, password)
        elif data_dir is None and self._settings.warehouse_url:
            from k2.warehouse import open_warehouse

            self._server_reader = LocalReader(open_warehouse(None, url=self._settings.warehouse_url,
                                                             apply_schema=False), self.limits)
        else:
            self.data_dir = Path(data_dir if data_dir is not None else self._settings.data_dir)
            if not (self.data_dir / "chdb").is_dir():
                raise K2Error(f"no K2 data in {self.data_dir} (start `k2 run`, or pass data_dir=... "
                              "or set K2_DATA_DIR)")

    def __repr__(self) -> str:
        where = self._http.base if self._http else (self.data_dir or "ClickHouse server")
        return f"k2.Connection({where})"

    # -- where a call goes ------------------------------------------------------------------------
    def _call(self, fn):
        """Run `fn(reader)` on the reader in force now (see the module docstring)."""
        if self._http is not None:
            return fn(self._http)
        if self._server_reader is not None:
            return fn(self._server_reader)
        deadline = time.monotonic() + BUSY_WAIT_S
        while True:
            info = read_run_info(self.data_dir)
            if info is not None:
                return fn(RemoteReader(info))
            try:
                held = _HeldEngine.for_dir(self.data_dir, self.limits, self.keep_open_s)
            except WarehouseBusy:
                if time.monotonic() > deadline:
                    raise K2Error(f"data dir {self.data_dir} is in use by another process that serves no reads "
                                  f"(waited {BUSY_WAIT_S:g} s)") from None
                time.sleep(0.1)  # k2 run opening it: its run file comes next
                continue
            with held.calls:
                if held.closed.is_set():  # given up between for_dir and here: decide again
                    continue
                try:
                    return fn(held.reader)
                finally:
                    held.last_used = time.monotonic()

    def close(self) -> None:
        """Give up the data dir now, if this process holds it (later calls open it again)."""
        if self._server_reader is not None:
            self._server_reader.close()
            self._server_reader = None
        if self.data_dir is not None:
            with _HeldEngine.lock:
                held = _HeldEngine.current
                if held is not None and held.data_dir == self.data_dir:
                    held.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------------------------------
    def ohlcv(self, symbol: str, interval: str, exchange: str = "all", since: Any = None, until: Any = None,
              *, limit: int | None = None, format: Format = "arrow"):
        """OHLCV candles of one symbol, oldest first: `time` (window start, UTC), `exchange`
        ('all' for cross-exchange candles), `symbol`, `open`, `high`, `low`, `close`, `volume`,
        `quote_volume`, `vwap`, `buy_volume`, `sell_volume` (decimal128(38, 18)), `trade_count`,
        `first_trade_at`, `last_trade_at`.

        `interval`: 1m, 5m, 15m, 1h or 1d. `exchange`: a name, or "all" for candles over every
        venue trading the exact pair. `since`/`until`: ISO-8601 text, datetime or date (UTC when
        naive); `since` inclusive, `until` exclusive.

            >>> k2.connect().ohlcv("BTC/USDT", "1m", exchange="binance", since="2026-12-01", format="pandas")
        """
        interval = check_interval(interval)
        exchange = check_exchange(exchange)
        params = {"view": f"ohlcv_{interval}_cross" if exchange == "all" else f"ohlcv_{interval}",
                  "exchange": exchange, "since": _as_time(since, "since", EPOCH),
                  "until": _as_time(until, "until", FAR_FUTURE), "limit": _limit(limit)}
        return convert(self._call(lambda r: _per_symbol(r, "api_ohlcv", params, symbol)), _fmt(format))

    def trades(self, symbol: str, exchange: str = "all", since: Any = None, until: Any = None,
               *, limit: int | None = None, format: Format = "arrow"):
        """Silver trades of one symbol in exchange-time order: `time` (UTC, µs), `exchange`,
        `symbol`, `native_symbol`, `trade_id`, `price`, `quantity` (decimal128(38, 18)), `side`
        (the taker's: BUY or SELL), `is_valid`, `source`, `ingested_at`.

            >>> k2.connect().trades("ETH/USDT", since="2026-12-01T10:00:00Z", until="2026-12-01T11:00:00Z")
        """
        exchange = check_exchange(exchange)
        params = {"exchange": exchange, "since": _as_time(since, "since", EPOCH),
                  "until": _as_time(until, "until", FAR_FUTURE), "limit": _limit(limit)}
        return convert(self._call(lambda r: _per_symbol(r, "api_trades", params, symbol)), _fmt(format))

    def spreads(self, symbol: str, venues: str | list[str] | None = None, interval: str = "1m", since: Any = None,
                until: Any = None, *, min_bps: Any = 0, min_windows: int = 1, by: str = "last",
                format: Format = "arrow"):
        """Cross-exchange dislocations of one pair, as `k2 spreads`: per window and venue pair
        (`venue_a` < `venue_b`) both sides' last price and VWAP, the spreads of B over A in basis
        points (`last_spread_bps`, `vwap_spread_bps`: exact, 8 decimals), volumes, trade counts, last
        trade times and the run of consecutive windows over `min_bps` (`run_start`,
        `run_windows` >= `min_windows`). `interval`: 1s or 1m. A signal from trades (no quotes,
        fees or transfer time), not a tradeable edge.

            >>> k2.connect().spreads("BTC/USDT", "binance,okx", "1s", since="2026-12-01T10:00:00Z", min_bps=20)
        """
        from k2.read.spreads import spread_params

        lo, hi = _as_time(since, "since", EPOCH), _as_time(until, "until", FAR_FUTURE)
        return convert(self._call(lambda r: r.arrow(stored_query("spreads"), spread_params(
            r, symbol, venues, interval, lo, hi, min_bps, min_windows, by))), _fmt(format))

    def gaps(self, exchange: str = "all", state: str = "all", *, limit: int | None = None,
             format: Format = "arrow"):
        """The gaps ledger, newest first: holes found in trade streams and what REST backfill
        recovered (`state`: open, filled, unfillable or all).

            >>> k2.connect().gaps(state="open", format="pandas")
        """
        if state not in ("all", "open", "filled", "unfillable"):
            raise K2Error(f"unknown gap state {state!r} (choose all, open, filled, unfillable)")
        params = {"exchange": check_exchange(exchange), "state": state, "limit": _limit(limit)}
        return convert(self._call(lambda r: r.arrow(stored_query("api_gaps"), params)), _fmt(format))

    def rejects(self, exchange: str = "all", since: Any = None, *, limit: int | None = None,
                format: Format = "arrow"):
        """Frames and messages that could not be parsed, newest first, with their raw text and reason.

            >>> k2.connect().rejects(exchange="kraken", since="2026-12-01")
        """
        params = {"exchange": check_exchange(exchange), "since": _as_time(since, "since", EPOCH),
                  "limit": _limit(limit)}
        return convert(self._call(lambda r: r.arrow(stored_query("api_rejects"), params)), _fmt(format))

    def query(self, sql: str, parameters: Mapping[str, Any] | None = None, *, format: Format = "arrow"):
        """Any reading statement (database `k2`), with `{name:Type}` placeholders bound from
        `parameters`. Read-only and limited like every read (k2.warehouse.reads).

            >>> k2.connect().query("SELECT exchange, count() AS n FROM silver_trades_v2 "
            ...                    "WHERE timestamp >= {t:DateTime64(6)} GROUP BY exchange", {"t": "2026-12-01"})
        """
        if not isinstance(sql, str) or not sql.strip():
            raise K2Error("query is empty")
        params = {k: _param(v) for k, v in (parameters or {}).items()}
        return convert(self._call(lambda r: r.arrow(sql, params, check=True)), _fmt(format))

    def coverage(self, exchange: str = "all", symbol: str = "", since: Any = None, until: Any = None, *,
                 format: Format = "arrow"):
        """What history the warehouse holds, one row per exchange, symbol and UTC day: trades, where
        they came from (live, rest, archive, file), first and last trade, the id range, and whether
        the day is proven complete (its ids run without a hole into the neighbouring days', for
        venues that number trades consecutively), with the reason when it is not (as `k2 coverage`).

            >>> k2.connect().coverage("binance", "BTC/USDT", since="2026-11-01", format="pandas")
        """
        ex = check_exchange(exchange)
        lo, hi = _as_time(since, "since", EPOCH), _as_time(until, "until", FAR_FUTURE)
        cov = self._call(lambda r: coverage(r, ex, symbol.strip().upper() if symbol else "", lo[:19], hi[:19]))
        days = cov.days
        table = pa.table({
            "exchange": pa.array([d.exchange for d in days], pa.string()),
            "symbol": pa.array([d.symbol for d in days], pa.string()),
            "day": pa.array([date.fromisoformat(d.day) for d in days], pa.date32()),
            "trades": pa.array([d.trades for d in days], pa.uint64()),
            "sources": pa.array([d.sources for d in days], pa.string()),
            "first_trade": pa.array([d.first_trade for d in days], pa.string()),
            "last_trade": pa.array([d.last_trade for d in days], pa.string()),
            "min_id": pa.array([d.min_id for d in days], pa.uint64()),
            "max_id": pa.array([d.max_id for d in days], pa.uint64()),
            "proven_complete": pa.array([d.proven for d in days], pa.bool_()),
            "status": pa.array([d.status for d in days], pa.string()),
            "holes": pa.array([sum(1 for h in cov.holes if h.exchange == d.exchange and h.symbol == d.symbol
                                   and h.days[0] <= d.day <= h.days[1]) for d in days], pa.uint32()),
        })
        return convert(table, _fmt(format))


def _fmt(format: str) -> str:
    if format not in FORMATS:
        raise K2Error(f"unknown format {format!r} (choose {', '.join(FORMATS)})")
    return format


def _limit(limit: int | None) -> int:
    if limit is None:
        return NO_LIMIT
    if not isinstance(limit, int) or limit < 0:
        raise K2Error(f"limit must be a non-negative integer, got {limit!r}")
    return limit


def _per_symbol(reader, query: str, params: dict[str, Any], symbol: str):
    """The symbol as given first (the usual case: a canonical symbol with data, one round trip);
    when nothing comes back, a native name is mapped and asked again, an unknown one is an error."""
    if not isinstance(symbol, str):
        raise K2Error(f"symbol must be a string, got {type(symbol).__name__}")
    text = symbol.strip().upper()
    table = reader.arrow(stored_query(query), {**params, "symbol": text}) if text else None
    if table is not None and table.num_rows:
        return table
    canonical = resolve_symbol(reader, symbol)
    if canonical == text:
        return table
    return reader.arrow(stored_query(query), {**params, "symbol": canonical})


def _http_client(url: str, password: str | None) -> ClickHouseHTTP:
    """A K2 endpoint (http://host:port) or a ClickHouse server (clickhouse://user:pw@host:8123/db)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https") and not parts.username:
        return ClickHouseHTTP(f"{scheme}://{parts.netloc}", "default", password or os.environ.get("K2_READ_PASSWORD", ""),
                              (parts.path.strip("/") or "k2"))
    from k2.warehouse.server import parse_url

    u = parse_url(url)
    host = f"[{u.host}]" if ":" in u.host else u.host
    return ClickHouseHTTP(f"{'https' if u.secure else 'http'}://{host}:{u.port}", u.username,
                          password if password is not None else u.password, u.database)


def connect(data_dir: str | os.PathLike | None = None, *, url: str | None = None, password: str | None = None,
            keep_open_s: float = 30.0) -> Connection:
    """Open K2's data for reading.

    `data_dir`: the embedded data directory (default K2_DATA_DIR or ./k2data); reads go through
    the running `k2 run` when one holds it. `url`: a K2 endpoint or a ClickHouse server instead.
    `keep_open_s`: how long this process keeps the data dir open after a call when it opened it
    itself (another K2 process can always take it over at once).

        >>> import k2
        >>> db = k2.connect()
        >>> db.ohlcv("BTC/USDT", "1h", exchange="binance", format="pandas").tail()
    """
    if data_dir is not None and url is not None:
        raise K2Error("connect(): give data_dir or url, not both")
    if keep_open_s < 0:
        raise K2Error("connect(): keep_open_s must be >= 0")
    return Connection(Path(data_dir) if data_dir is not None else None, url, password, keep_open_s)
