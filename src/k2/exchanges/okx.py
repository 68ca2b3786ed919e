"""OKX v5: the public `trades` channel.

Wire facts (OKX v5 docs as quoted by nautilus_trader test data ws_trades.json / http_get_trades.json,
cryptofeed OKX.ws.1.0 capture, tardis-node; research section 6):
  subscribe {"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}
  ack       {"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"c7f0ba8e"}  (per arg)
  error     {"event":"error","code":"60018","msg":"Wrong URL or channel:trades,instId:FOO-USDT doesn't exist.
             ...","connId":"..."}   (60012 invalid request; exact texts UNCONFIRMED)
  notice    {"event":"notice","code":"64008","msg":"The connection will soon be closed for a service
             upgrade..."}  -> reconnect (UNCONFIRMED)
  trade     {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1051102135",
             "px":"97512.4","sz":"0.3","side":"buy","ts":"1784116800387","count":"3","source":"0",
             "seqId":80559459961}]}
  keepalive the TEXT frame `ping` -> `pong` (not JSON); the server drops a connection that receives
            nothing for 30 s, so K2 pings every 20 s.
Everything in a trade is a string except `seqId` (newer, semantics UNCONFIRMED): `ts` is ms as a
string, kept as sent. `side` is the TAKER side. On `trades` one taker order's fills at one price
are aggregated (`count` of them) and the aggregate carries one tradeId, so tradeId jumps are normal;
`trades-all` (business endpoint) has no `count`. Absent fields are stored as '' (count, source)
and -1 (seq_id); OKX's `source` goes to column trade_source (`source` is K2's ingestion path).

REST (backfill): GET /api/v5/market/history-trades?instId=BTC-USDT&type=2&before=<ts ms>&limit=100
(type=2 pages by time; `before` = newer than, `after` = older than; newest first; about 3 months kept;
the exact paging semantics are UNCONFIRMED) and /api/v5/market/trades?instId=..&limit=500 (recent)
-> {"code":"0","msg":"","data":[{"instId","side","sz","px","tradeId","ts"(,"source")}]}.
Instruments: GET /api/v5/public/instruments?instType=SPOT -> data[].{instId, baseCcy, quoteCcy}.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Sequence

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import (
    OTHER,
    PONG,
    ExchangeAdapter,
    FrameKind,
    Instrument,
    Parsed,
    RestHistory,
    VenueCandles,
    candle_json,
    candle_of,
    check_decimal,
    decimal_column,
)
from k2.exchanges.coinbase import decode_frame

_SIDES = ("buy", "sell")  # tuples: `in` compares, never hashes (a list value is not a crash)
_CHANNELS = ("trades", "trades-all")
INST_ID = re.compile(r"[A-Z0-9]{1,20}-[A-Z0-9]{1,20}", re.ASCII).fullmatch
_INST_IN_TEXT = re.compile(r"instId:\s*([A-Za-z0-9-]+)", re.ASCII).search
_PONG = b"pong"

_FALLBACK = [
    ("BTC", "USDT"), ("ETH", "USDT"), ("SOL", "USDT"), ("XRP", "USDT"), ("DOGE", "USDT"), ("ADA", "USDT"),
    ("LTC", "USDT"), ("LINK", "USDT"), ("AVAX", "USDT"), ("DOT", "USDT"), ("TRX", "USDT"), ("PEPE", "USDT"),
    ("BTC", "USDC"), ("ETH", "USDC"), ("SOL", "USDC"), ("USDC", "USDT"), ("ETH", "BTC"), ("SOL", "BTC"),
    ("XRP", "BTC"), ("LTC", "BTC"), ("BTC", "EUR"), ("ETH", "EUR"),
]


class _Trade(msgspec.Struct, gc=False):
    """One trade of a `trades` push, types checked in C (not tracked by the GC)."""

    instId: str
    tradeId: str
    px: str
    sz: str
    side: Literal["buy", "sell"]
    ts: str
    count: str = ""
    source: str = ""
    seqId: int = -1


class _Arg(msgspec.Struct, gc=False):
    channel: str


class _Push(msgspec.Struct, gc=False):
    arg: _Arg
    data: Annotated[list[_Trade], msgspec.Meta(min_length=1)]
    event: None = None  # a push has none; anything else is for the general path


#: the usual frame: a typed decode, then the general path's checks per column (`_fast_trades`);
#: anything else takes the general path, which names the fault
_decode_push = msgspec.json.Decoder(_Push).decode
_PUSH_PREFIX = b'{"arg":'


def _digit_column(values: Sequence[str], max_len: int, empty_ok: bool = False) -> bool:
    """`_digits` for every value at once (or "" for each, when `empty_ok`)."""
    joined = "".join(values)
    if empty_ok and not joined:
        return True
    return (joined.isdigit() and joined.isascii() and max(map(len, values)) <= max_len
            and (empty_ok or min(map(len, values)) > 0))


def _fast_trades(frame: bytes, received_us: int) -> list[tuple] | None:
    """Bronze rows of a well-formed trades push, or None (the general path decides). The same
    checks as `_row`, made on whole columns."""
    try:
        msg = _decode_push(frame)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    channel = msg.arg.channel
    if channel not in _CHANNELS:
        return None
    rows = [(channel, t.instId, t.tradeId, t.px, t.sz, t.side, t.ts, t.count, t.source, t.seqId, received_us)
            for t in msg.data]
    _, insts, ids, prices, sizes, _, times, counts, sources, _, _ = zip(*rows)
    if not (all(INST_ID(i) for i in set(insts)) and _digit_column(ids, 20) and _digit_column(times, 16)
            and _digit_column(counts, 20, empty_ok=True) and max(map(len, sources)) <= 20
            and decimal_column(prices) and decimal_column(sizes)):
        return None
    return rows


def _digits(value: Any, what: str, max_len: int = 20) -> str:
    if type(value) is not str or not value.isascii() or not value.isdigit() or len(value) > max_len:  # noqa: E721
        raise FrameError(f"{what} is not a numeric string: {value!r:.40}")
    return value


class OkxAdapter(ExchangeAdapter):
    name = "okx"
    bronze_table = "bronze_trades_okx"
    columns = ("channel", "inst_id", "trade_id", "px", "sz", "side", "ts", "count", "trade_source", "seq_id",
               "received_at")
    column_types = ("String", "String", "String", "String", "String", "String", "String", "String", "String",
                    "Int64", "Int64")
    key_columns = ("inst_id", "trade_id")
    symbol_index = 1
    trade_key_index = 2
    trade_order_index = 2  # the trade id: rises within a frame and from frame to frame
    ws_url = "wss://ws.okx.com:8443/ws/v5/public"
    rest_url = "https://www.okx.com"
    max_symbols_per_connection = 100  # 480 (un)subscribe ops per hour, request <= 64 KB (UNCONFIRMED)
    stale_after_s = 45.0  # pongs every 20 s keep even a quiet connection talking
    ping_interval_s = 20.0  # must be under 30 s
    can_backfill = True  # by time (tradeIds skip aggregated fills, so ids cannot show gaps)
    rest_history = RestHistory(
        "time", 5.0, "history-trades: 10 requests per 2 s per IP",
        "the last three months only (OKX keeps no longer REST history), 100 per page")
    exchange_time = ("ts", "ms")  # a string of digits: the metric converts it
    bronze_time_sql = "fromUnixTimestamp64Milli(toInt64OrZero(ts), 'UTC')"
    candles = VenueCandles(
        ("open", "high", "low", "close", "volume", "quote_volume"), ("1m", "1h", "1d"), 100, 10.0,
        "history-candles: 20 requests per 2 s per IP",
        "ts: window start in ms, UTC for 1m and 1H; 1D is Hong Kong time (UTC+8) unless asked as 1Dutc "
        "(K2 asks 1Dutc); newest first; confirm 0 = the current window")
    fallback_instruments = tuple(Instrument(f"{b}-{q}", b, q) for b, q in _FALLBACK)

    def native_symbol(self, symbol: str) -> str:
        s = symbol.strip().upper().replace("/", "-").replace("_", "-")
        if not INST_ID(s):
            raise ValueError(f"OKX spot instruments are written BASE-QUOTE, e.g. BTC-USDT (got {symbol!r})")
        return s

    def canonical_symbol(self, native: str) -> str | None:
        base, sep, quote = native.partition("-")
        return f"{base}/{quote}" if sep and base and quote and "-" not in quote else None

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        message = {"op": "subscribe", "args": [{"channel": "trades", "instId": s} for s in native_symbols]}
        return [(first_id, list(native_symbols), json.dumps(message, separators=(",", ":")))]

    def ping_message(self, request_id: int) -> str:
        return "ping"

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        if frame == _PONG or frame == "pong":
            return PONG
        if type(frame) is bytes and frame.startswith(_PUSH_PREFIX):  # noqa: E721
            rows = _fast_trades(frame, received_us)
            if rows is not None:
                return Parsed(FrameKind.TRADES, rows)
        msg = decode_frame(frame)
        if not isinstance(msg, dict):
            raise FrameError(f"malformed frame: expected a JSON object, got {type(msg).__name__}")
        arg, event = msg.get("arg"), msg.get("event")
        if event is None and isinstance(arg, dict) and "data" in msg:
            channel = arg.get("channel")
            if channel in _CHANNELS:
                return self._trades(msg["data"], channel, received_us)
            if isinstance(channel, str):
                return OTHER
            raise FrameError(f"arg.channel is not a string: {channel!r:.40}")
        if event == "subscribe":
            inst = arg.get("instId", "") if isinstance(arg, dict) else ""
            return Parsed(FrameKind.SUBSCRIBED, symbol=str(inst))
        if event == "error":
            text = f"okx error {msg.get('code')}: {msg.get('msg', '')}"[:300]
            found = _INST_IN_TEXT(str(msg.get("msg", "")))
            if found:
                return Parsed(FrameKind.SUBSCRIBE_ERROR, symbol=found.group(1).rstrip("-"), detail=text)
            return Parsed(FrameKind.EXCHANGE_ERROR, detail=text)
        if event == "notice":
            if str(msg.get("code")) == "64008":
                return Parsed(FrameKind.SHUTDOWN, detail=str(msg.get("msg", "service upgrade"))[:300])
            return Parsed(FrameKind.STATUS, detail=f"okx notice {msg.get('code')}: {msg.get('msg', '')}"[:300])
        if isinstance(event, str):
            return OTHER  # unsubscribe, channel-conn-count...
        raise FrameError("malformed frame: not an OKX push, event or pong")

    def _trades(self, data: Any, channel: str, received_us: int) -> Parsed:
        if not isinstance(data, list) or not data:
            raise FrameError("malformed frame: trade data missing or empty")
        return Parsed(FrameKind.TRADES, [_row(t, channel, received_us) for t in data])

    # -- REST backfill ------------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """Up to 100 trades newer than one millisecond before `cursor` (µs), by time (type=2)."""
        return f"/api/v5/market/history-trades?instId={native}&type=2&before={int(cursor) // 1000 - 1}&limit=100"

    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """GET /api/v5/market/history-candles: windows with before < ts < after, newest first, 100 a page."""
        bar = {"1m": "1m", "1h": "1H", "1d": "1Dutc"}[interval]
        step_ms = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}[interval]
        since_ms = since_us // 1000
        return (f"/api/v5/market/history-candles?instId={native}&bar={bar}&before={since_ms - 1}"
                f"&after={since_ms + 100 * step_ms}&limit=100")

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        doc = candle_json(body, "okx candles")
        if not isinstance(doc, dict) or not isinstance(doc.get("data"), list):
            raise FrameError("okx candles: no data list")
        if str(doc.get("code")) != "0":
            raise K2Error(f"okx candles: {doc.get('code')} {str(doc.get('msg'))[:200]}")
        pos = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 7}
        return sorted((candle_of(r, int(r[0]) * 1000, pos, "okx candles") for r in doc["data"]
                       if isinstance(r, list) and len(r) > 8 and r[8] == "1"), key=lambda c: c["start_us"])

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """history-trades / trades -> bronze rows oldest first (channel '', no count or seqId), and the
        next cursor: the last trade's time (the next page repeats that millisecond; the feed's
        recent-trades window drops the repeats)."""
        doc = decode_frame(body)
        if not isinstance(doc, dict) or str(doc.get("code")) != "0" or not isinstance(doc.get("data"), list):
            raise FrameError(f"okx REST error: {str(doc):.160}")
        rows = [_row(t, "", received_us) for t in doc["data"]]
        rows.sort(key=lambda r: (int(r[6]), len(r[2]), r[2]))
        return rows, (self.row_time_us(rows[-1]) if rows else None)

    def row_time_us(self, row: tuple) -> int:
        return int(row[6]) * 1000

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return "/api/v5/public/instruments?instType=SPOT"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        doc = decode_frame(body)
        data = doc.get("data") if isinstance(doc, dict) else None
        return [Instrument(i["instId"], i["baseCcy"], i["quoteCcy"])
                for i in (data if isinstance(data, list) else [])
                if isinstance(i, dict) and i.get("instId") and i.get("baseCcy") and i.get("quoteCcy")]


def _row(t: Any, channel: str, received_us: int) -> tuple:
    if not isinstance(t, dict):
        raise FrameError("malformed frame: a trade is not an object")
    inst, side = t.get("instId"), t.get("side")
    if type(inst) is not str or not INST_ID(inst):  # noqa: E721
        raise FrameError(f"instId is not a spot BASE-QUOTE instrument: {inst!r:.40}")
    if side not in _SIDES:
        raise FrameError(f"side is not buy or sell: {side!r:.20}")
    count, source, seq_id = t.get("count", ""), t.get("source", ""), t.get("seqId", -1)
    if count != "":
        _digits(count, "count")
    if type(source) is not str or len(source) > 20:  # noqa: E721
        raise FrameError(f"source is not a string: {source!r:.40}")
    if type(seq_id) is not int:  # noqa: E721
        raise FrameError(f"seqId is not an integer: {seq_id!r:.40}")
    return (channel, inst, _digits(t.get("tradeId"), "tradeId"), check_decimal(t.get("px"), "px (price)"),
            check_decimal(t.get("sz"), "sz (size)"), side, _digits(t.get("ts"), "ts", 16), count, source, seq_id,
            received_us)


ADAPTER = OkxAdapter()
