"""Coinbase Exchange (the public `ws-feed`): the `matches` channel, with `heartbeat`.

Wire facts (docs.cdp.coinbase.com exchange/websocket-feed/channels; cryptofeed capture
COINBASE.ws.28.0; ../shared/research/exchange-protocols.md section 4b):
  subscribe {"type":"subscribe","product_ids":["BTC-USD"],"channels":["matches","heartbeat"]}
  ack       {"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]},
             {"name":"heartbeat","product_ids":["BTC-USD"]}]}
  first     {"type":"last_match","trade_id":871234567,"maker_order_id":"0c1b...","taker_order_id":"9f8e...",
             "side":"buy","size":"0.00051234","price":"97512.35","product_id":"BTC-USD",
             "sequence":112233445566,"time":"2026-07-15T11:59:59.981234Z"}
  trade     {"type":"match", ...the same fields...}
  heartbeat {"type":"heartbeat","sequence":112233445601,"last_trade_id":871234567,"product_id":"BTC-USD",
             "time":"2026-07-15T12:00:00.512345Z"}      (every second, per product)
  error     {"type":"error","message":"Failed to subscribe","reason":"BTC-USDX is not a valid product"}
`side` is the MAKER order's side ("sell" = a resting sell was lifted = the taker BOUGHT); bronze
keeps it as sent and silver inverts it. `trade_id` counts up by one per product; `sequence` is
shared with the full order feed, so jumps in it are normal on `matches`. `last_match` is a real
(past) trade: it is kept like a match and deduplicated on trade_id. The connection must subscribe
within 5 s of opening (the runtime subscribes at once).

REST (backfill): GET /products/{id}/trades?limit=1000&after=<trade_id> -> newest first, each
{"time","trade_id","price","size","side"} (side again the maker's); `after` pages to OLDER trades
(ids below it, exclusive: UNCONFIRMED), so the trades from id N on are asked for as after=N+1000.
Instruments: GET /products -> [{"id":"BTC-USD","base_currency":"BTC","quote_currency":"USD",...}].
"""

from __future__ import annotations

import calendar
import json
import re
import time
from typing import Any, Sequence

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import (
    RestHistory,
    HEARTBEAT, OTHER, ExchangeAdapter, FrameKind, Instrument, Parsed, check_decimal, check_free_text,
    describe_decode_error,
    VenueCandles,
    candle_json,
    candle_of,
)

_decode = msgspec.json.Decoder().decode
#: RFC 3339 UTC as Coinbase writes it (fraction of 0-9 digits)
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z", re.ASCII).fullmatch
#: a product id: BASE-QUOTE in capitals and digits
PRODUCT_ID = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}", re.ASCII).fullmatch
_SIDES = ("buy", "sell")  # tuples: `in` compares, never hashes (a list value is not a crash)
_TRADE_TYPES = ("match", "last_match")


def split_product(native: str) -> tuple[str, str] | None:
    base, sep, quote = native.partition("-")
    return (base, quote) if sep and base and quote and "-" not in quote else None


def product_id(symbol: str) -> str:
    """BTC/USD, btc-usd, BTC_USD -> BTC-USD."""
    s = symbol.strip().upper().replace("/", "-").replace("_", "-")
    if not PRODUCT_ID(s):
        raise ValueError(f"Coinbase products are written BASE-QUOTE, e.g. BTC-USD (got {symbol!r})")
    return s


def decode_frame(frame: bytes | str) -> Any:
    try:
        return _decode(frame)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise FrameError(describe_decode_error(exc)) from None


def nonnegative_int(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:  # noqa: E721 (bool is not a trade id)
        raise FrameError(f"{what} is not a non-negative integer: {value!r:.40}")
    return value


def rfc3339_us(text: str) -> int:
    """"2026-07-15T12:00:01.101871Z" -> epoch microseconds (digits beyond the sixth are dropped)."""
    seconds = calendar.timegm((int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                               int(text[14:16]), int(text[17:19]), 0, 0, 0))
    fraction = text[20:-1] if text[19] == "." else ""
    return seconds * 1_000_000 + int((fraction + "000000")[:6])


def rfc3339(value: Any, what: str = "time") -> str:
    if type(value) is not str or not RFC3339(value):  # noqa: E721
        raise FrameError(f"{what} is not an RFC 3339 UTC time: {value!r:.40}")
    return value


_FALLBACK = [
    ("BTC", "USD"), ("ETH", "USD"), ("SOL", "USD"), ("XRP", "USD"), ("DOGE", "USD"), ("ADA", "USD"),
    ("LTC", "USD"), ("LINK", "USD"), ("AVAX", "USD"), ("DOT", "USD"), ("BCH", "USD"), ("SHIB", "USD"),
    ("USDT", "USD"), ("BTC", "USDC"), ("ETH", "USDC"), ("BTC", "USDT"), ("ETH", "USDT"), ("BTC", "EUR"),
    ("ETH", "EUR"), ("BTC", "GBP"), ("ETH", "BTC"), ("SOL", "BTC"), ("LTC", "BTC"), ("SOL", "ETH"),
]


class CoinbaseAdapter(ExchangeAdapter):
    name = "coinbase"
    bronze_table = "bronze_trades_coinbase"
    columns = (
        "type", "trade_id", "maker_order_id", "taker_order_id", "side", "size", "price", "product_id",
        "sequence", "time", "received_at",
    )
    column_types = (
        "String", "UInt64", "String", "String", "String", "String", "String", "String",
        "UInt64", "String", "Int64",
    )
    key_columns = ("product_id", "trade_id")
    symbol_index = 7
    trade_key_index = 1
    ws_url = "wss://ws-feed.exchange.coinbase.com"
    rest_url = "https://api.exchange.coinbase.com"
    rest_history = RestHistory(
        "id", 10.0, "public endpoints: 10 requests/s per IP (bursts of 15)",
        "every trade since the product listed, paged by trade id",
        "/products/{native}/trades?limit=1")
    max_symbols_per_connection = 100  # no documented limit per connection (UNCONFIRMED)
    stale_after_s = 10.0  # the heartbeat channel ticks every second per product
    sequential_id_index = 1  # trade_id counts up by one per product
    can_backfill = True
    exchange_time = ("time", "iso")
    bronze_time_sql = "parseDateTime64BestEffortOrZero(time, 6, 'UTC')"
    candles = VenueCandles(
        ("open", "high", "low", "close", "volume"), ("1m", "1h", "1d"), 300, 10.0,
        "public endpoints: 10 requests/s per IP (bursts of 15)",
        "time: bucket start in s since the epoch, UTC; [time, low, high, open, close, volume], newest first; "
        "buckets without trades are left out", floats=True)
    fallback_instruments = tuple(Instrument(f"{b}-{q}", b, q) for b, q in _FALLBACK)

    def native_symbol(self, symbol: str) -> str:
        return product_id(symbol)

    def canonical_symbol(self, native: str) -> str | None:
        parts = split_product(native)
        return f"{parts[0]}/{parts[1]}" if parts else None

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        message = {"type": "subscribe", "product_ids": list(native_symbols), "channels": ["matches", "heartbeat"]}
        return [(first_id, list(native_symbols), json.dumps(message, separators=(",", ":")))]

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        msg = decode_frame(frame)
        if not isinstance(msg, dict):
            raise FrameError(f"malformed frame: expected a JSON object, got {type(msg).__name__}")
        kind = msg.get("type") if isinstance(msg.get("type"), str) else None
        if kind in _TRADE_TYPES:
            return Parsed(FrameKind.TRADES, [self._row(msg, kind, received_us)])
        if kind == "heartbeat":
            return HEARTBEAT
        if kind == "subscriptions":
            channels = msg.get("channels") if isinstance(msg.get("channels"), list) else []
            names = ", ".join(f"{c.get('name')} {c.get('product_ids')}" for c in channels if isinstance(c, dict))
            return Parsed(FrameKind.SUBSCRIBED, detail=f"subscriptions: {names}"[:300])
        if kind == "error":
            return _error(msg)
        if isinstance(kind, str):
            return OTHER  # ticker, status... channels K2 does not subscribe to
        raise FrameError("malformed frame: object without a `type`")

    @staticmethod
    def _row(m: dict[str, Any], kind: str, received_us: int) -> tuple:
        side, product = m.get("side"), m.get("product_id")
        if side not in _SIDES:
            raise FrameError(f"side is not buy or sell: {side!r:.20}")
        if type(product) is not str or not PRODUCT_ID(product):  # noqa: E721
            raise FrameError(f"product_id is not BASE-QUOTE: {product!r:.40}")
        maker = check_free_text(m.get("maker_order_id", ""), "maker_order_id", 64)  # UUIDs: 36 characters
        taker = check_free_text(m.get("taker_order_id", ""), "taker_order_id", 64)
        return (kind, nonnegative_int(m.get("trade_id"), "trade_id"), maker, taker, side,
                check_decimal(m.get("size"), "size"), check_decimal(m.get("price"), "price"), product,
                nonnegative_int(m.get("sequence"), "sequence"), rfc3339(m.get("time")), received_us)

    # -- REST backfill ------------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """Trades from id `cursor` on: Coinbase pages backwards (`after` = older than), so ask for the
        1000 ids below cursor + 1000."""
        return f"/products/{native}/trades?limit=1000&after={int(cursor) + 1000}"

    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """GET /products/{id}/candles: at most 300 buckets between start and end (both ISO 8601)."""
        step = {"1m": 60, "1h": 3600, "1d": 86400}[interval]
        since = since_us // 1_000_000
        return (f"/products/{native}/candles?granularity={step}&start={_iso_s(since)}"
                f"&end={_iso_s(since + 300 * step - 1)}")

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        doc = candle_json(body, "coinbase candles")
        if isinstance(doc, dict):
            raise K2Error(f"coinbase candles: {str(doc.get('message', doc))[:200]}")
        if not isinstance(doc, list):
            raise FrameError("coinbase candles: not a list")
        pos = {"low": 1, "high": 2, "open": 3, "close": 4, "volume": 5}
        return sorted((candle_of(r, _int(r, 0) * 1_000_000, pos, "coinbase candles") for r in doc),
                      key=lambda c: c["start_us"])

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """[{"time","trade_id","price","size","side"}, ...] (newest first) -> bronze rows oldest first,
        and the next cursor (last id + 1). REST has no type, order ids or sequence: '' and 0."""
        doc = decode_frame(body)
        if not isinstance(doc, list):
            raise FrameError(f"coinbase REST trades: expected an array, got {type(doc).__name__}: {str(doc):.120}")
        rows = []
        for t in doc:
            if not isinstance(t, dict):
                raise FrameError("coinbase REST trades: a trade is not an object")
            rows.append(self._row({"product_id": native, "maker_order_id": "", "taker_order_id": "",
                                   "sequence": 0, **t}, "", received_us))
        rows.sort(key=lambda r: r[1])
        return rows, (rows[-1][1] + 1 if rows else None)

    def row_time_us(self, row: tuple) -> int:
        return rfc3339_us(row[9])

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return "/products"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        """GET /products -> [{id, base_currency, quote_currency}, ...]."""
        doc = _decode(body)
        return [Instrument(p["id"], p["base_currency"], p["quote_currency"])
                for p in (doc if isinstance(doc, list) else [])
                if isinstance(p, dict) and p.get("id") and p.get("base_currency") and p.get("quote_currency")]


def _error(msg: dict[str, Any]) -> Parsed:
    """{"type":"error","message":"Failed to subscribe","reason":"BTC-USDX is not a valid product"}"""
    message, reason = str(msg.get("message", "")), str(msg.get("reason", ""))
    detail = f"coinbase error: {message}" + (f" ({reason})" if reason else "")
    if "subscribe" in message.lower():
        symbol = reason.split(" ", 1)[0] if PRODUCT_ID(reason.split(" ", 1)[0]) else ""
        return Parsed(FrameKind.SUBSCRIBE_ERROR, symbol=symbol, detail=detail[:300])
    return Parsed(FrameKind.EXCHANGE_ERROR, detail=detail[:300])


ADAPTER = CoinbaseAdapter()


def _iso_s(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _int(row: Any, i: int) -> int:
    try:
        return int(row[i])
    except (IndexError, KeyError, TypeError, ValueError):
        raise FrameError(f"candle time missing or not an integer in {row!r:.100}") from None
