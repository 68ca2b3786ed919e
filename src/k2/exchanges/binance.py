"""Binance spot: the `<symbol>@trade` stream.

Wire facts (docs: binance-spot-api-docs, web-socket-streams.md):
  raw      {"e":"trade","E":1784116800123,"s":"BTCUSDT","t":5123456789,"p":"97512.34000000",
            "q":"0.00120000","T":1784116800122,"m":true,"M":true}
  combined {"stream":"btcusdt@trade","data":{...the same object...}}
  ack      {"result":null,"id":1}           error {"code":2,"msg":"Invalid request: ...","id":1}
  shutdown {"e":"serverShutdown","E":1784200000000}   (reconnect at once)
One trade per message. `m` = the buyer was the maker, i.e. the taker SOLD. `t` increases by one per
trade and symbol. The server sends a ping frame every 20 s (answered by the WebSocket layer),
drops every connection after 24 h, and allows 1024 streams per connection. Binance acks
subscriptions to unknown symbols without complaint, so K2 checks symbols against the instrument
list before subscribing.
"""

from __future__ import annotations

from typing import Any, Sequence

import msgspec

from k2.errors import FrameError
from k2.exchanges.base import (
    RestHistory,
    OTHER,
    ExchangeAdapter,
    FrameKind,
    Instrument,
    Parsed,
    VenueCandles,
    check_decimal,
    describe_decode_error,
)


class _Trade(msgspec.Struct):
    e: str
    E: int
    s: str
    t: int
    p: str
    q: str
    T: int
    m: bool
    M: bool | None = None


class _RestTrade(msgspec.Struct):
    """GET /api/v3/historicalTrades element."""

    id: int
    price: str
    qty: str
    time: int
    isBuyerMaker: bool
    isBestMatch: bool | None = None


class _Combined(msgspec.Struct):
    stream: str
    data: msgspec.Raw


class _CombinedTrade(msgspec.Struct):
    """A combined-stream envelope decoded together with its trade (k2 load's fast path)."""

    stream: str
    data: _Trade


_decode_trade = msgspec.json.Decoder(_Trade).decode
_decode_combined_trade = msgspec.json.Decoder(_CombinedTrade).decode
_decode_combined = msgspec.json.Decoder(_Combined).decode
_decode_any = msgspec.json.Decoder().decode
_decode_rest_trades = msgspec.json.Decoder(list[_RestTrade]).decode
_TRADE_PREFIX = b'{"e":"trade"'
#: symbols that already passed the symbol check (a set lookup instead of four str methods per trade)
_CHECKED_SYMBOLS: set[str] = set()
_COMBINED_PREFIX = b'{"stream"'
_TRADES = FrameKind.TRADES


def _i(base: str, quote: str) -> Instrument:
    return Instrument(base + quote, base, quote)


class BinanceAdapter(ExchangeAdapter):
    name = "binance"
    bronze_table = "bronze_trades_binance"
    columns = (
        "event_type", "event_time_ms", "symbol", "trade_id", "price", "quantity",
        "trade_time_ms", "is_buyer_maker", "is_best_match", "received_at",
    )
    column_types = (
        "String", "Int64", "String", "UInt64", "String", "String",
        "Int64", "Bool", "Nullable(Bool)", "Int64",
    )
    key_columns = ("symbol", "trade_id")
    symbol_index = 2
    trade_key_index = 3  # t
    exchange_time = ("trade_time_ms", "ms")
    ws_url = "wss://stream.binance.com:9443/stream"
    rest_url = "https://api.binance.com"
    max_symbols_per_connection = 1024
    stale_after_s = 60.0  # pings every 20 s; a quiet symbol may trade rarely
    max_connection_age_s = 23.5 * 3600  # Binance drops connections at 24 h
    bronze_time_sql = "fromUnixTimestamp64Milli(trade_time_ms, 'UTC')"
    sequential_id_index = 3  # t increases by one per trade and symbol
    can_backfill = True
    archive_tables = ("bronze_archive_binance_trades",)
    rest_history = RestHistory(
        "id", 6000 / 60 / 25, "6000 request weight a minute per IP; historicalTrades weighs 25 (4 pages/s)",
        "every trade since the symbol listed (ids from 0; the public archive is faster for whole days)",
        "/api/v3/trades?symbol={native}&limit=1")
    candles = VenueCandles(
        ("open", "high", "low", "close", "volume", "quote_volume", "trade_count", "buy_volume"),
        ("1m", "1h", "1d"), 1000, 6000 / 60 / 2,
        "6000 request weight a minute per IP; klines weigh 2 (50 pages/s)",
        "openTime: window start in ms since the epoch, UTC (closeTime = start + interval - 1 ms)",
        rounding="quote volume printed with 8 decimals")
    fallback_instruments = tuple(
        _i(b, q)
        for b, q in [
            ("BTC", "USDT"), ("ETH", "USDT"), ("BNB", "USDT"), ("SOL", "USDT"), ("XRP", "USDT"),
            ("DOGE", "USDT"), ("ADA", "USDT"), ("TRX", "USDT"), ("AVAX", "USDT"), ("LINK", "USDT"),
            ("DOT", "USDT"), ("LTC", "USDT"), ("BCH", "USDT"), ("SHIB", "USDT"), ("PEPE", "USDT"),
            ("BTC", "USDC"), ("ETH", "USDC"), ("SOL", "USDC"), ("USDC", "USDT"), ("BTC", "FDUSD"),
            ("ETH", "BTC"), ("BNB", "BTC"), ("SOL", "BTC"), ("XRP", "BTC"), ("ADA", "BTC"),
            ("LTC", "BTC"), ("DOGE", "BTC"), ("LINK", "BTC"), ("DOT", "BTC"), ("BNB", "ETH"),
            ("BTC", "EUR"), ("ETH", "EUR"), ("BTC", "TRY"), ("ETH", "TRY"), ("BTC", "BRL"),
            ("BTC", "JPY"), ("EUR", "USDT"), ("BTC", "DAI"), ("ETH", "DAI"), ("WBTC", "BTC"),
        ]
    )

    def native_symbol(self, symbol: str) -> str:
        s = symbol.strip().upper()
        if "/" in s:
            base, _, quote = s.partition("/")
            return base + quote
        return s.replace("-", "").replace("_", "")

    def stream_name(self, native: str) -> str:
        return f"{native.lower()}@trade"

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        """One SUBSCRIBE per 200 streams: Binance allows 5 control messages per second."""
        out = []
        for n, i in enumerate(range(0, len(native_symbols), 200)):
            chunk = list(native_symbols[i : i + 200])
            message = {"method": "SUBSCRIBE", "params": [self.stream_name(s) for s in chunk], "id": first_id + n}
            out.append((first_id + n, chunk, msgspec.json.encode(message).decode()))
        return out

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        if type(frame) is not bytes:
            frame = bytes(frame, "utf-8") if isinstance(frame, str) else bytes(frame)
        try:
            if frame.startswith(_COMBINED_PREFIX):
                try:  # the live feed's usual frame: envelope and trade in one decode
                    return Parsed(_TRADES, [_row(_decode_combined_trade(frame).data, received_us)])
                except (msgspec.DecodeError, msgspec.ValidationError, FrameError):
                    pass  # an ack, another event or a bad trade: the steps below tell which
                env = _decode_combined(frame)
                data = bytes(env.data)
                if data.startswith(_TRADE_PREFIX):
                    return Parsed(_TRADES, [_row(_decode_trade(data), received_us)])
                return self._classify(_decode_any(data), received_us)
            if frame.startswith(_TRADE_PREFIX):
                return Parsed(_TRADES, [_row(_decode_trade(frame), received_us)])
            return self._classify(_decode_any(frame), received_us)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError) as exc:
            # invalid UTF-8 inside a string and absurdly deep nesting are malformed frames too
            raise FrameError(describe_decode_error(exc)) from None

    def parse_trade_frames(self, frames: list[bytes], received_us: int) -> list[tuple] | None:
        """Raw trade events, or all of them in the combined-stream envelope (`{"stream":..,"data":
        {"e":"trade",..}}`); a mixed run, or anything else, is declined."""
        row = self._row
        try:  # the first frame picks the form; any other frame fails to decode or is not a trade
            if not frames:
                return []
            if frames[0].startswith(_COMBINED_PREFIX):
                return [row(_decode_combined_trade(f).data, received_us) for f in frames]
            return [row(_decode_trade(f), received_us) for f in frames]
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError, FrameError):
            return None

    @staticmethod
    def _row(t: _Trade, received_us: int) -> tuple:
        p, q = t.p, t.q
        # is_decimal_string() inlined for both values: this is the per-trade hot path
        if not (
            p.replace(".", "", 1).isdigit() and q.replace(".", "", 1).isdigit()
            and p.isascii() and q.isascii()
            and p[0] != "." and p[-1] != "." and q[0] != "." and q[-1] != "."
            and len(p) <= 64 and len(q) <= 64
        ):
            check_decimal(p, "price")
            check_decimal(q, "quantity")
        s = t.s
        if s not in _CHECKED_SYMBOLS:
            if not (s.isalnum() and s.isupper() and s.isascii() and len(s) <= 32):
                raise FrameError(f"not a valid trade: symbol {s!r:.40}")
            if len(_CHECKED_SYMBOLS) < 100_000:
                _CHECKED_SYMBOLS.add(s)
        if t.e != "trade" or t.t < 0:
            raise FrameError(f"not a valid trade: event {t.e!r:.40}, trade id {t.t}")
        return (t.e, t.E, s, t.t, p, q, t.T, t.m, t.M, received_us)

    def _classify(self, msg: Any, received_us: int) -> Parsed:
        if not isinstance(msg, dict):
            raise FrameError(f"malformed frame: expected a JSON object, got {type(msg).__name__}")
        if "stream" in msg and "data" in msg:  # combined envelope with keys in another order
            return self._classify(msg["data"], received_us)
        event = msg.get("e")
        if event == "trade":
            try:
                return Parsed(FrameKind.TRADES, [self._row(msgspec.convert(msg, _Trade), received_us)])
            except msgspec.ValidationError as exc:
                raise FrameError(describe_decode_error(exc)) from None
        if event == "serverShutdown":
            return Parsed(FrameKind.SHUTDOWN, detail="serverShutdown")
        if event is not None:
            return OTHER  # aggTrade and other events we did not subscribe to
        if "result" in msg and "id" in msg:
            return Parsed(FrameKind.SUBSCRIBED, detail=f"id={msg['id']}")
        error = msg.get("error") if isinstance(msg.get("error"), dict) else msg
        if "code" in error and "msg" in error:
            return Parsed(
                FrameKind.EXCHANGE_ERROR, detail=f"binance error {error['code']}: {error['msg']}"
            )
        raise FrameError("malformed frame: not a Binance trade, ack, error or event")

    # -- REST backfill -----------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """Trades by id (GET /api/v3/historicalTrades, public, weight 25)."""
        return f"/api/v3/historicalTrades?symbol={native}&fromId={int(cursor)}&limit=1000"

    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """GET /api/v3/klines: windows with openTime in [startTime, endTime], oldest first, 1000 a page."""
        return (f"/api/v3/klines?symbol={native}&interval={interval}&startTime={since_us // 1000}"
                f"&endTime={until_us // 1000 - 1}&limit=1000")

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        try:
            rows = msgspec.json.decode(body, type=list[tuple[int, str, str, str, str, str, int, str, int, str, str, str]])
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise FrameError(f"klines: {str(exc)[:200]}") from None
        return [{"start_us": r[0] * 1000, "open": check_decimal(r[1], "open"), "high": check_decimal(r[2], "high"),
                 "low": check_decimal(r[3], "low"), "close": check_decimal(r[4], "close"),
                 "volume": check_decimal(r[5], "volume"), "quote_volume": check_decimal(r[7], "quote volume"),
                 "trade_count": str(r[8]), "buy_volume": check_decimal(r[9], "taker buy volume"),
                 "buy_quote_volume": check_decimal(r[10], "taker buy quote volume")} for r in rows]

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """[{"id":..,"price":"..","qty":"..","quoteQty":"..","time":..,"isBuyerMaker":..,"isBestMatch":..}]
        -> bronze rows. REST has no event time; the trade time stands in for it."""
        try:
            trades = _decode_rest_trades(body)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError) as exc:
            raise FrameError(describe_decode_error(exc)) from None
        rows = [("trade", t.time, native, t.id, check_decimal(t.price, "price"), check_decimal(t.qty, "qty"),
                 t.time, t.isBuyerMaker, t.isBestMatch, received_us) for t in trades]
        return rows, (rows[-1][3] + 1 if rows else None)

    def row_time_us(self, row: tuple) -> int:
        return row[6] * 1000

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        symbols = msgspec.json.encode(sorted(set(native_symbols))).decode()
        return f"/api/v3/exchangeInfo?symbols={symbols}"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        """GET /api/v3/exchangeInfo -> symbols[].{symbol, baseAsset, quoteAsset}."""
        doc = _decode_any(body)
        return [
            Instrument(s["symbol"], s["baseAsset"], s["quoteAsset"])
            for s in doc.get("symbols", [])
            if s.get("symbol") and s.get("baseAsset") and s.get("quoteAsset")
        ]


_row = BinanceAdapter._row  # a plain function: the per-frame call skips the descriptor lookup
ADAPTER = BinanceAdapter()
