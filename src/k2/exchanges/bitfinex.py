"""Bitfinex v2 public WebSocket: the `trades` channel of trading pairs (tBTCUSD).

Wire facts (docs.bitfinex.com ws-general / ws-public-trades; cryptofeed capture BITFINEX.ws.11.0;
research section 7):
  on connect {"event":"info","version":2,"serverId":"083b...","platform":{"status":1}}
             later {"event":"info","code":20051,...} restart -> reconnect; 20060/20061 maintenance start/end
  subscribe  {"event":"subscribe","channel":"trades","symbol":"tBTCUSD"}
  ack        {"event":"subscribed","channel":"trades","chanId":17470,"symbol":"tBTCUSD","pair":"BTCUSD"}
  error      {"event":"error","msg":"symbol: invalid","code":10300,"channel":"trades","symbol":"tFOOUSD"}
             (10300 subscription failed, 10301 already subscribed, 10302 unknown channel, 10305 limit;
             whether the request is echoed back is UNCONFIRMED)
  snapshot   [17470,[[1773456791,1784116799512,0.0021,97512],[ID,MTS,AMOUNT,PRICE],...]]  newest first
  trade      [17470,"te",[1773456795,1784116800122,-0.0012,97508]]     at execution
             [17470,"tu",[1773456795,1784116800122,-0.0012,97508]]     the same trade again, shortly after
  heartbeat  [17470,"hb"]   per channel after 15 s without trades
  ping/pong  {"event":"ping","cid":1234} -> {"event":"pong","ts":1784116805001,"cid":1234}
A trade frame names only its channel number, which is per CONNECTION: the adapter learns
chanId -> symbol from the `subscribed` events, so the runtime gives every connection its own
parser (`session()`); `k2 load` does the same per file. K2 processes `te` (the earliest) and
ignores `tu`, which repeats it; the ID deduplicates snapshot overlaps. AMOUNT's sign is the
TAKER side (> 0 bought, < 0 sold) and |AMOUNT| the size. Prices and amounts are JSON numbers:
decoded as their exact text (never a float), kept as sent, signed amount included. Array
lengths are never assumed beyond the four documented fields (flags may append more).

Symbols: `t` + pair; six-letter pairs are concatenated (tBTCUSD), longer codes use a colon
(tDOGE:USD, tTESTBTC:TESTUSD). Bitfinex's currency codes differ from the common ones in places:
UST is Tether (USDT), UDC is USDC, ... (CURRENCY_ALIASES, after ccxt's commonCurrencies and
Bitfinex's pub:map:currency:sym; UNCONFIRMED here). So tBTCUST is BTC/USDT, not BTC/USD.

REST (backfill): GET /v2/trades/tBTCUSD/hist?limit=10000&start=<ms>&end=<ms>&sort=1 -> [[ID,MTS,AMOUNT,PRICE],...]
Instruments: GET /v2/conf/pub:list:pair:exchange,pub:map:currency:sym
  -> [["BTCUSD","ETHUST","DOGE:USD",...],[["UST","USDt"],["UDC","USDC"],...]]
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import (
    RestHistory,
    HEARTBEAT, OTHER, PONG, ExchangeAdapter, FrameKind, Instrument, JsonFloat, Parsed, describe_decode_error,
    json_number_text, symbol_rule,
)
from k2.exchanges.base import VenueCandles, candle_json, candle_of


_decode = msgspec.json.Decoder(float_hook=JsonFloat).decode  # numbers keep their exact text
_AMOUNT = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII).fullmatch
_PAIR_FORM = r"t[A-Z0-9]{6}|t[A-Z0-9]{2,20}:[A-Z0-9]{2,20}"
_PAIR = re.compile(_PAIR_FORM, re.ASCII).fullmatch
#: the symbol a `subscribed` event names, stored in bronze with every trade of its channel
PAIR = symbol_rule(_PAIR_FORM, "symbol", "a trading pair tBASEQUOTE or tBASE:QUOTE")
#: Bitfinex currency code -> common code (ccxt commonCurrencies; Bitfinex pub:map:currency:sym)
CURRENCY_ALIASES = {
    "UST": "USDT", "UDC": "USDC", "TSD": "TUSD", "EUT": "EURT", "DSH": "DASH", "IOT": "IOTA", "QTM": "QTUM",
    "ALG": "ALGO", "MNA": "MANA", "ATO": "ATOM", "DAT": "DATA", "STJ": "STORJ", "WBT": "WBTC",
}
_NATIVE_CODES = {v: k for k, v in CURRENCY_ALIASES.items()}
#: codes that mean 'shutting down / restarting: reconnect' (20061: maintenance over, resubscribe)
_RECONNECT_CODES = (20051, 20061)


def split_pair(native: str, aliases: dict[str, str] = CURRENCY_ALIASES) -> tuple[str, str] | None:
    """tBTCUSD -> (BTC, USD); tDOGE:USD -> (DOGE, USD); tBTCUST -> (BTC, USDT)."""
    if not native.startswith("t"):
        return None
    pair = native[1:]
    if ":" in pair:
        base, _, quote = pair.partition(":")
    elif len(pair) == 6:
        base, quote = pair[:3], pair[3:]
    else:
        return None
    if not base or not quote:
        return None
    return aliases.get(base, base), aliases.get(quote, quote)


def pair_symbol(base: str, quote: str) -> str:
    """(BTC, USDT) -> tBTCUST; (DOGE, USD) -> tDOGE:USD."""
    b, q = _NATIVE_CODES.get(base, base), _NATIVE_CODES.get(quote, quote)
    return f"t{b}{q}" if len(b) == 3 and len(q) == 3 else f"t{b}:{q}"


_PRICE = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII).fullmatch


def _number_text(value: Any, what: str, signed: bool = False) -> str:
    """A JSON number's text ("-0.0012", "97512", "1e-8"); a quoted string is not a number."""
    return json_number_text(value, what if signed else f"{what} (>= 0)", _AMOUNT if signed else _PRICE)


_FALLBACK = [
    ("BTC", "USD"), ("ETH", "USD"), ("SOL", "USD"), ("XRP", "USD"), ("DOGE", "USD"), ("ADA", "USD"),
    ("LTC", "USD"), ("LINK", "USD"), ("AVAX", "USD"), ("DOT", "USD"), ("USDT", "USD"), ("BTC", "USDT"),
    ("ETH", "USDT"), ("SOL", "USDT"), ("BTC", "EUR"), ("ETH", "EUR"), ("BTC", "GBP"), ("ETH", "BTC"),
    ("XRP", "BTC"), ("LTC", "BTC"),
]


class BitfinexAdapter(ExchangeAdapter):
    name = "bitfinex"
    bronze_table = "bronze_trades_bitfinex"
    columns = ("chan_id", "symbol", "msg_type", "id", "mts", "amount", "price", "received_at")
    column_types = ("UInt64", "String", "String", "UInt64", "Int64", "String", "String", "Int64")
    key_columns = ("symbol", "id")
    symbol_index = 1
    trade_key_index = 3
    ws_url = "wss://api-pub.bitfinex.com/ws/2"
    rest_url = "https://api-pub.bitfinex.com"
    max_symbols_per_connection = 25  # 30 public channels per connection (older docs: 25)
    stale_after_s = 40.0  # heartbeats per channel after 15 s without trades
    can_backfill = True  # by time: IDs are unique but not consecutive per pair
    rest_history = RestHistory(
        "time", 0.25, "trades/hist: 15 requests a minute per IP (then a 60 s block)",
        "every trade since the pair listed, 10000 per page by `start`")
    exchange_time = ("mts", "ms")
    bronze_time_sql = "fromUnixTimestamp64Milli(mts, 'UTC')"
    candles = VenueCandles(
        ("open", "high", "low", "close", "volume"), ("1m", "1h", "1d"), 10000, 0.5,
        "candles: 30 requests a minute per IP (then a 60 s block)",
        "MTS: window start in ms, UTC; [MTS, OPEN, CLOSE, HIGH, LOW, VOLUME] (close before high); sort=1 "
        "oldest first", floats=True)
    fallback_instruments = tuple(Instrument(pair_symbol(b, q), b, q) for b, q in _FALLBACK)

    def __init__(self) -> None:
        #: chanId -> symbol, learned from `subscribed` events (per connection: see session())
        self.channels: dict[int, str] = {}
        #: chanId -> channel name of the other channels a connection (or recording) subscribed to:
        #: their frames (book, ticker, candles...) are not trades and not errors
        self.other_channels: dict[int, str] = {}

    def session(self) -> "BitfinexAdapter":
        return BitfinexAdapter()

    # -- symbols -------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        s = symbol.strip()
        if "/" in s:
            base, _, quote = s.upper().partition("/")
            s = pair_symbol(base, quote)
        elif not s.startswith("t"):
            s = "t" + s.upper()
        if not _PAIR(s):
            raise ValueError(f"Bitfinex trading pairs are written tBTCUSD or tDOGE:USD (got {symbol!r})")
        return s

    def canonical_symbol(self, native: str) -> str | None:
        parts = split_pair(native)
        return f"{parts[0]}/{parts[1]}" if parts else None

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        """One message per symbol (Bitfinex subscribes one channel at a time)."""
        return [(first_id + n, [s], json.dumps({"event": "subscribe", "channel": "trades", "symbol": s},
                                               separators=(",", ":")))
                for n, s in enumerate(native_symbols)]

    def ping_message(self, request_id: int) -> str:
        return json.dumps({"event": "ping", "cid": request_id}, separators=(",", ":"))

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        try:
            msg = _decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise FrameError(describe_decode_error(exc)) from None
        if isinstance(msg, list):
            return self._channel(msg, received_us)
        if isinstance(msg, dict):
            return self._event(msg)
        raise FrameError(f"malformed frame: expected an array or object, got {type(msg).__name__}")

    def _channel(self, msg: list, received_us: int) -> Parsed:
        if len(msg) < 2 or type(msg[0]) is not int or msg[0] < 0:  # noqa: E721
            raise FrameError("malformed frame: channel message is not [chanId, ...]")
        chan_id, body = msg[0], msg[1]
        if body == "hb":
            return HEARTBEAT
        if chan_id in self.other_channels:
            return OTHER
        if isinstance(body, str):
            if body != "te":
                return OTHER  # tu repeats te; fte/ftu are funding trades
            if len(msg) < 3 or not isinstance(msg[2], list):
                raise FrameError("malformed frame: te without a trade array")
            symbol = self._symbol(chan_id)
            return Parsed(FrameKind.TRADES, [_row(msg[2], chan_id, symbol, "te", received_us)])
        if isinstance(body, list):  # the snapshot after subscribing
            if not body:
                return OTHER
            symbol = self._symbol(chan_id)
            return Parsed(FrameKind.TRADES, [_row(t, chan_id, symbol, "snapshot", received_us) for t in body])
        raise FrameError(f"malformed frame: unexpected channel payload {body!r:.40}")

    def _symbol(self, chan_id: int) -> str:
        symbol = self.channels.get(chan_id)
        if symbol is None:
            raise FrameError(f"trades on channel {chan_id}, which no `subscribed` event of this connection named")
        return symbol

    def _event(self, msg: dict[str, Any]) -> Parsed:
        event = msg.get("event")
        if event == "subscribed":
            chan_id, symbol = msg.get("chanId"), msg.get("symbol")
            channel = msg.get("channel")
            if type(chan_id) is not int or (channel == "trades" and not isinstance(symbol, str)):  # noqa: E721
                raise FrameError("malformed frame: subscribed without chanId / symbol")
            if channel == "trades" and not (symbol.startswith("f") and symbol[1:].isalnum()):
                self.channels[chan_id] = PAIR(symbol)
                self.other_channels.pop(chan_id, None)
            else:  # book, ticker, candles, funding trades (fUSD): their frames are known, and not ours
                self.other_channels[chan_id] = str(channel)
                self.channels.pop(chan_id, None)
            return Parsed(FrameKind.SUBSCRIBED, symbol=str(symbol or ""), detail=f"chanId={chan_id}")
        if event == "unsubscribed":
            chan_id = msg.get("chanId")
            if type(chan_id) is int:  # noqa: E721
                self.channels.pop(chan_id, None)
                self.other_channels.pop(chan_id, None)
            return OTHER
        if event == "pong":
            return PONG
        if event == "info":
            code = msg.get("code")
            if code in _RECONNECT_CODES:
                return Parsed(FrameKind.SHUTDOWN, detail=f"bitfinex info {code}: {msg.get('msg', '')}"[:300])
            if code is not None:
                return Parsed(FrameKind.STATUS, detail=f"bitfinex info {code}: {msg.get('msg', '')}"[:300])
            platform = msg.get("platform") if isinstance(msg.get("platform"), dict) else {}
            status = "operative" if platform.get("status") == 1 else "maintenance"
            return Parsed(FrameKind.STATUS, detail=f"bitfinex v{msg.get('version')} platform {status}")
        if event == "error":
            text = f"bitfinex error {msg.get('code')}: {msg.get('msg', '')}"[:300]
            if "symbol" in msg or msg.get("channel") or msg.get("code") in (10300, 10301, 10302, 10305, 10001):
                return Parsed(FrameKind.SUBSCRIBE_ERROR, symbol=str(msg.get("symbol", "")), detail=text)
            return Parsed(FrameKind.EXCHANGE_ERROR, detail=text)
        if isinstance(event, str):
            return OTHER  # conf, auth...
        raise FrameError("malformed frame: object without an `event`")

    # -- REST backfill ------------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """Up to 10000 trades from time `cursor` (µs) on, oldest first (sort=1)."""
        return f"/v2/trades/{native}/hist?limit=10000&sort=1&start={int(cursor) // 1000}"

    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """GET /v2/candles/trade:1m:tBTCUSD/hist: windows with start <= MTS <= end, 10000 a page."""
        frame = {"1m": "1m", "1h": "1h", "1d": "1D"}[interval]
        step_ms = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}[interval]
        since_ms = since_us // 1000
        return (f"/v2/candles/trade:{frame}:{native}/hist?start={since_ms}&end={since_ms + 10000 * step_ms - 1}"
                "&limit=10000&sort=1")

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        doc = candle_json(body, "bitfinex candles")
        if isinstance(doc, list) and doc[:1] == ["error"]:
            raise K2Error(f"bitfinex candles: {' '.join(map(str, doc[1:]))[:200]}")
        if not isinstance(doc, list):
            raise FrameError("bitfinex candles: not a list")
        pos = {"open": 1, "close": 2, "high": 3, "low": 4, "volume": 5}
        return sorted((candle_of(r, int(r[0]) * 1000, pos, "bitfinex candles") for r in doc),
                      key=lambda c: c["start_us"])

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """[[ID, MTS, AMOUNT, PRICE], ...] -> bronze rows (chan_id 0, msg_type 'hist') oldest first, and
        the next cursor: the last trade's time (start is inclusive; repeats are dropped by the feed)."""
        try:
            doc = _decode(body)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise FrameError(describe_decode_error(exc)) from None
        if not isinstance(doc, list):
            raise FrameError(f"bitfinex REST: expected an array of trades: {str(doc):.120}")
        if doc and doc[0] == "error":
            raise FrameError(f"bitfinex REST error: {str(doc):.160}")
        rows = [_row(t, 0, native, "hist", received_us) for t in doc]
        rows.sort(key=lambda r: (r[4], r[3]))
        return rows, (rows[-1][4] * 1000 if rows else None)

    def row_time_us(self, row: tuple) -> int:
        return row[4] * 1000

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return "/v2/conf/pub:list:pair:exchange,pub:map:currency:sym"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        """[[pairs...]] or [[pairs...], [[code, common], ...]] (the currency map is optional)."""
        doc = _decode(body)
        if not isinstance(doc, list) or not doc or not isinstance(doc[0], list):
            return []
        aliases = dict(CURRENCY_ALIASES)
        if len(doc) > 1 and isinstance(doc[1], list):
            for entry in doc[1]:
                if isinstance(entry, list) and len(entry) == 2 and all(isinstance(x, str) for x in entry):
                    aliases[entry[0].upper()] = entry[1].upper()
        out = []
        for pair in doc[0]:
            if isinstance(pair, str) and _PAIR("t" + pair):
                parts = split_pair("t" + pair, aliases)
                if parts:
                    out.append(Instrument("t" + pair, parts[0], parts[1]))
        return out


def _row(t: Any, chan_id: int, symbol: str, msg_type: str, received_us: int) -> tuple:
    if not isinstance(t, list) or len(t) < 4:
        raise FrameError("malformed frame: a trade is not [ID, MTS, AMOUNT, PRICE]")
    trade_id, mts = t[0], t[1]
    if type(trade_id) is not int or trade_id < 0:  # noqa: E721
        raise FrameError(f"ID is not a non-negative integer: {trade_id!r:.40}")
    if type(mts) is not int:  # noqa: E721
        raise FrameError(f"MTS is not an integer (ms): {mts!r:.40}")
    return (chan_id, symbol, msg_type, trade_id, mts, _number_text(t[2], "AMOUNT", signed=True),
            _number_text(t[3], "PRICE"), received_us)


ADAPTER = BitfinexAdapter()
