"""Gemini market data v2: trades from the `l2` subscription.

Wire facts (docs.gemini.com websocket/market-data/v2, developer.gemini.com websocket/archived/v2;
cryptofeed capture GEMINI.ws.1.0; research section 8):
  subscribe {"type":"subscribe","subscriptions":[{"name":"l2","symbols":["BTCUSD","ETHUSD"]}]}
  first     {"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","97510.01","0.25"],...],
             "trades":[{"type":"trade","symbol":"BTCUSD","event_id":291838475601,"timestamp":1784116795123,
             "price":"97510.01","quantity":"0.012","side":"sell","tid":2840140800042677}, ...]}
             the whole book plus the last 50 trades: Gemini sends no other acknowledgement
  trade     {"type":"trade","symbol":"BTCUSD","event_id":291838476011,"timestamp":1784116800122,
             "price":"97512.40","quantity":"0.04","side":"buy","tid":2840140800042679}
  book      {"type":"l2_updates","symbol":"BTCUSD","changes":[["sell","97512.40","0.31"]]}   (ignored)
  heartbeat {"type":"heartbeat","timestamp":1784116800001}     about every 5 s
  error     {"result":"error","reason":"InvalidSymbol","message":"..."}   (shape UNCONFIRMED; K2's
             simulator adds the "symbol" it refers to)
`side` is the TAKER side; `timestamp` is ms; `tid` is the trade id (present in the current docs,
absent from the 2021 capture: a trade without one is rejected, K2 needs an id). The first message's
trades are marked `is_snapshot`; they repeat after every reconnect and are deduplicated on tid.
Gemini now calls v2 "archived" (a new Binance-style API exists; its trade payload is UNCONFIRMED).

REST (backfill): GET /v1/trades/BTCUSD?timestamp=<ms>&limit_trades=500 (trades at or after that time;
`since_tid` is the id-based alternative; UNCONFIRMED which end of a longer span a page holds) -> newest first,
[{"timestamp":<s>,"timestampms":<ms>,"tid":..,"price":"..","amount":"..","exchange":"gemini","type":"buy"}]
(`type` is the taker side; auction/block trades have no taker and are skipped; 7 days kept).
Instruments: GET /v1/symbols -> ["btcusd","ethbtc",...]; split on the known quote currencies
(QUOTES) since /v1/symbols/details/<symbol> answers one symbol per request.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import (
    HEARTBEAT, OTHER, ExchangeAdapter, FrameKind, Instrument, Parsed, check_decimal, is_decimal_string,
)
from k2.exchanges.base import VenueCandles, candle_json, candle_of
from k2.exchanges.coinbase import decode_frame, nonnegative_int

_SIDES = ("buy", "sell")  # tuples: `in` compares, never hashes (a list value is not a crash)
SYMBOL = re.compile(r"[A-Z0-9]{4,24}", re.ASCII).fullmatch
#: Gemini's quote currencies, longest first (GUSD before USD)
QUOTES = ("GUSD", "USDT", "USDC", "RLUSD", "DAI", "USD", "BTC", "ETH", "EUR", "GBP", "SGD")



class TradeMessage(msgspec.Struct):
    """A live trade message as the v2 feed sends it (also in `l2_updates`' trades), for the fast
    path's typed decode: any other shape (a missing tid, a float id, a null...) fails to decode and
    takes the general path, which gives the same row or names what is wrong. The simulator reads
    its own messages with it too."""

    type: str
    symbol: str
    event_id: int
    timestamp: int
    price: str
    quantity: str
    side: str
    tid: int


_decode_trade = msgspec.json.Decoder(TradeMessage).decode
_TRADE_PREFIX = b'{"type":"trade"'
_SYMBOLS_SEEN: set[str] = set()  # symbols that passed SYMBOL (bounded below)


def _trade_row(frame: bytes, received_us: int) -> tuple | None:
    """The bronze row of a plain trade message in one typed decode, or None (the general path
    then decides). One trade per frame at 10,000 frames/s made Gemini K2's dearest venue per trade:
    a generic decode to a dict and a check per field cost ~2 µs of its ~9."""
    try:
        t = _decode_trade(frame)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    symbol, price, quantity, side = t.symbol, t.price, t.quantity, t.side
    if (t.type != "trade" or side not in _SIDES or t.event_id < 0 or t.tid < 0
            or not (is_decimal_string(price) and is_decimal_string(quantity))):
        return None
    if symbol not in _SYMBOLS_SEEN:
        if not SYMBOL(symbol):
            return None
        if len(_SYMBOLS_SEEN) < 10_000:
            _SYMBOLS_SEEN.add(symbol)
    return (symbol, t.event_id, t.timestamp, price, quantity, side, t.tid, False, "tid", received_us)


_FALLBACK = [
    ("BTC", "USD"), ("ETH", "USD"), ("SOL", "USD"), ("XRP", "USD"), ("DOGE", "USD"), ("LTC", "USD"),
    ("LINK", "USD"), ("AVAX", "USD"), ("DOT", "USD"), ("BCH", "USD"), ("SHIB", "USD"), ("PEPE", "USD"),
    ("USDT", "USD"), ("BTC", "GUSD"), ("ETH", "GUSD"), ("BTC", "USDT"), ("BTC", "EUR"), ("ETH", "EUR"),
    ("BTC", "GBP"), ("BTC", "SGD"), ("ETH", "BTC"), ("SOL", "BTC"), ("LTC", "BTC"),
]


def split_symbol(native: str) -> tuple[str, str] | None:
    for quote in QUOTES:
        if native.endswith(quote) and len(native) > len(quote):
            return native[: -len(quote)], quote
    return None


class GeminiAdapter(ExchangeAdapter):
    name = "gemini"
    bronze_table = "bronze_trades_gemini"
    columns = ("symbol", "event_id", "timestamp", "price", "quantity", "side", "tid", "is_snapshot", "id_field",
               "received_at")
    column_types = ("String", "UInt64", "Int64", "String", "String", "String", "UInt64", "Bool", "String", "Int64")
    #: a Kafka record written before `id_field` existed named its trade by tid
    column_defaults = {"id_field": "tid"}
    key_columns = ("symbol", "tid")
    symbol_index = 0
    trade_key_index = 6
    ws_url = "wss://api.gemini.com/v2/marketdata"
    rest_url = "https://api.gemini.com"
    max_symbols_per_connection = 50  # no documented limit (UNCONFIRMED)
    stale_after_s = 20.0  # heartbeats about every 5 s
    can_backfill = True  # by time: tids rise but are shared by all symbols, so not consecutive
    exchange_time = ("timestamp", "ms")
    bronze_time_sql = "fromUnixTimestamp64Milli(timestamp, 'UTC')"
    candles = VenueCandles(
        ("open", "high", "low", "close", "volume"), ("1m", "1h", "1d"), 1440, 2.0,
        "public endpoints: 120 requests a minute per IP",
        "time: window start in ms, UTC; [time, open, high, low, close, volume], newest first; no range "
        "parameters: only the newest candles", reaches_back_windows=1440, floats=True)
    fallback_instruments = tuple(Instrument(b + q, b, q) for b, q in _FALLBACK)

    def native_symbol(self, symbol: str) -> str:
        s = symbol.strip().upper().replace("/", "").replace("-", "").replace("_", "")
        if not SYMBOL(s):
            raise ValueError(f"Gemini symbols are written BASEQUOTE, e.g. BTCUSD (got {symbol!r})")
        return s

    def canonical_symbol(self, native: str) -> str | None:
        known = super().canonical_symbol(native)
        if known:
            return known
        parts = split_symbol(native)
        return f"{parts[0]}/{parts[1]}" if parts else None

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        message = {"type": "subscribe", "subscriptions": [{"name": "l2", "symbols": list(native_symbols)}]}
        return [(first_id, list(native_symbols), json.dumps(message, separators=(",", ":")))]

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        if type(frame) is bytes and frame.startswith(_TRADE_PREFIX):  # the live feed's usual frame
            row = _trade_row(frame, received_us)
            if row is not None:
                return Parsed(FrameKind.TRADES, [row])
        msg = decode_frame(frame)
        if not isinstance(msg, dict):
            raise FrameError(f"malformed frame: expected a JSON object, got {type(msg).__name__}")
        kind = msg.get("type")
        if kind == "trade":
            return Parsed(FrameKind.TRADES, [_row(msg, False, received_us)])
        if kind == "heartbeat":
            return HEARTBEAT
        if kind == "l2_updates":
            trades = msg.get("trades")
            if trades is None:
                return OTHER  # book changes
            if not isinstance(trades, list):
                raise FrameError("malformed frame: l2_updates `trades` is not an array")
            if not trades:  # the first message of a symbol that has not traded: the subscription worked
                return Parsed(FrameKind.SUBSCRIBED, symbol=str(msg.get("symbol", "")))
            return Parsed(FrameKind.TRADES, [_row(t, True, received_us) for t in trades])
        if msg.get("result") == "error":
            text = f"gemini error {msg.get('reason', '')}: {msg.get('message', '')}"[:300]
            return Parsed(FrameKind.SUBSCRIBE_ERROR, symbol=str(msg.get("symbol", "")), detail=text)
        if isinstance(kind, str):
            return OTHER  # candles, auction events...
        raise FrameError("malformed frame: object without a `type`")

    # -- REST backfill ------------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """Up to 500 trades from time `cursor` (µs) on."""
        return f"/v1/trades/{native}?timestamp={int(cursor) // 1000}&limit_trades=500"

    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """GET /v2/candles/{symbol}/{time_frame}: the newest candles (no paging)."""
        frame = {"1m": "1m", "1h": "1hr", "1d": "1day"}[interval]
        return f"/v2/candles/{native.lower()}/{frame}"

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        doc = candle_json(body, "gemini candles")
        if isinstance(doc, dict):
            raise K2Error(f"gemini candles: {str(doc.get('message') or doc.get('reason') or doc)[:200]}")
        if not isinstance(doc, list):
            raise FrameError("gemini candles: not a list")
        pos = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}
        return sorted((candle_of(r, int(r[0]) * 1000, pos, "gemini candles") for r in doc), key=lambda c: c["start_us"])

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """/v1/trades/<symbol> -> bronze rows (event_id 0: REST has none) oldest first, and the next
        cursor: the last trade's time."""
        doc = decode_frame(body)
        if not isinstance(doc, list):
            raise FrameError(f"gemini REST: expected an array of trades: {str(doc):.120}")
        rows = []
        for t in doc:
            if not isinstance(t, dict):
                raise FrameError("gemini REST: a trade is not an object")
            if t.get("type") not in _SIDES:
                continue  # auction and block trades: no taker side
            rows.append(_row({"symbol": native, "event_id": 0, "timestamp": t.get("timestampms"),
                              "price": t.get("price"), "quantity": t.get("amount"), "side": t.get("type"),
                              "tid": t.get("tid")}, False, received_us))
        rows.sort(key=lambda r: (r[2], r[6]))
        return rows, (rows[-1][2] * 1000 if rows else None)

    def row_time_us(self, row: tuple) -> int:
        return row[2] * 1000

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return "/v1/symbols"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        doc = decode_frame(body)
        out = []
        for s in doc if isinstance(doc, list) else []:
            if not isinstance(s, str):
                continue
            native = s.upper()
            canonical = self.canonical_symbol(native) if SYMBOL(native) else None
            if canonical:
                base, quote = canonical.split("/")
                out.append(Instrument(native, base, quote))
        return out


def _row(t: Any, snapshot: bool, received_us: int) -> tuple:
    if not isinstance(t, dict):
        raise FrameError("malformed frame: a trade is not an object")
    symbol, side, ts = t.get("symbol"), t.get("side"), t.get("timestamp")
    if type(symbol) is not str or not SYMBOL(symbol):  # noqa: E721
        raise FrameError(f"symbol is not a Gemini symbol: {symbol!r:.40}")
    if side not in _SIDES:
        raise FrameError(f"side is not buy or sell: {side!r:.20}")
    if type(ts) is not int:  # noqa: E721
        raise FrameError(f"timestamp is not an integer (ms): {ts!r:.40}")
    event_id, tid = nonnegative_int(t.get("event_id"), "event_id"), t.get("tid")
    if tid is None and "tid" not in t and event_id:
        # a trade event without tid (captures cryptofeed keys on event_id): the venue's other id
        # names the trade, and bronze says which (id_field); no trade is lost for a missing field
        tid, id_field = event_id, "event_id"
    else:
        tid, id_field = nonnegative_int(tid, "tid"), "tid"
    return (symbol, event_id, ts, check_decimal(t.get("price"), "price"), check_decimal(t.get("quantity"), "quantity"),
            side, tid, snapshot, id_field, received_us)


ADAPTER = GeminiAdapter()
