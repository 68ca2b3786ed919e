"""Bybit v5 spot: the `publicTrade.<symbol>` topic.

Wire facts (bybit-exchange/docs v5 websocket/public/trade.mdx, wss-authentication.mdx "Connect",
market/recent-trade.mdx; research section 5):
  subscribe {"req_id":"1","op":"subscribe","args":["publicTrade.BTCUSDT"]}     (spot: <= 10 args each)
  ack       {"success":true,"ret_msg":"subscribe","conn_id":"d30f...","req_id":"1","op":"subscribe"}
  failure   {"success":false,"ret_msg":"Invalid topic: publicTrade.FOOUSDT","conn_id":"...","op":"subscribe"}
  ping      {"req_id":"7","op":"ping"}   -> {"success":true,"ret_msg":"pong","conn_id":"...","op":"ping"}
  trade     {"topic":"publicTrade.BTCUSDT","ts":1784116800389,"type":"snapshot","data":[
             {"i":"2290000000861234568","T":1784116800387,"p":"97512.4","v":"0.04","S":"Buy","s":"BTCUSDT",
              "BT":false,"RPI":false,"seq":79432105533}]}
`S` is the TAKER side. `type` is always "snapshot", also for live pushes. `i` (execution id) is
unique but not sequential, so Bybit gives no id-based gap signal; `seq` is a cross sequence shared
by several trades (newer field, as is `RPI`: both optional here). `ts` is when the message was
generated, `T` the fill time (ms). Bybit sends no heartbeats: the client pings every 20 s and an
idle connection is cut after about 10 minutes.

Bronze column names spell out Bybit's one-letter keys (i -> exec_id, S -> side, s -> symbol);
vendor_data in silver keeps the keys as sent.

REST (backfill): GET /v5/market/recent-trade?category=spot&symbol=BTCUSDT&limit=60 (spot keeps only
the last 60: a longer outage cannot be backfilled) -> {"retCode":0,"result":{"category":"spot",
"list":[{"execId","symbol","price","size","side","time":"<ms>","isBlockTrade":false}]},"time":<ms>}.
Instruments: GET /v5/market/instruments-info?category=spot -> result.list[].{symbol, baseCoin, quoteCoin}.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal, Sequence

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import (
    OTHER,
    PONG,
    ExchangeAdapter,
    FrameKind,
    Instrument,
    Parsed,
    VenueCandles,
    candle_json,
    candle_of,
    check_decimal,
    decimal_column,
)
from k2.exchanges.coinbase import decode_frame

_SIDES = ("Buy", "Sell")  # tuples: `in` compares, never hashes (a list value is not a crash)
_TOPIC = "publicTrade."
SYMBOL = re.compile(r"[A-Z0-9]{2,30}", re.ASCII).fullmatch
_TOPIC_IN_TEXT = re.compile(r"publicTrade\.([A-Za-z0-9]+)", re.ASCII).search
ARGS_PER_REQUEST = 10

_FALLBACK = [
    ("BTC", "USDT"), ("ETH", "USDT"), ("SOL", "USDT"), ("XRP", "USDT"), ("DOGE", "USDT"), ("ADA", "USDT"),
    ("LTC", "USDT"), ("LINK", "USDT"), ("AVAX", "USDT"), ("DOT", "USDT"), ("BNB", "USDT"), ("TRX", "USDT"),
    ("PEPE", "USDT"), ("BTC", "USDC"), ("ETH", "USDC"), ("SOL", "USDC"), ("USDC", "USDT"), ("ETH", "BTC"),
    ("SOL", "BTC"), ("XRP", "BTC"), ("BTC", "EUR"), ("ETH", "EUR"), ("USDT", "EUR"),
]


class _Trade(msgspec.Struct, gc=False):
    """One trade of a `publicTrade` message, types checked in C (not tracked by the GC)."""

    i: str
    T: int
    p: str
    v: str
    S: Literal["Buy", "Sell"]
    s: str
    BT: bool = False
    RPI: bool | None = None
    seq: int = -1


class _TradeMessage(msgspec.Struct, gc=False):
    topic: str
    ts: int
    data: list[_Trade]
    type: str = ""


#: the usual frame: a typed decode, then the general path's checks per column (`_fast_trades`);
#: anything else takes the general path, which names the fault
_decode_trades = msgspec.json.Decoder(_TradeMessage).decode
_TRADES_PREFIX = b'{"topic":"publicTrade.'


def _fast_trades(frame: bytes, received_us: int) -> list[tuple] | None:
    """Bronze rows of a well-formed trade message, or None (the general path decides). The same
    checks as `_row`, made on whole columns: execution ids non-empty ASCII of at most 64, symbols
    SYMBOL, prices and sizes decimal strings (`decimal_column`)."""
    try:
        msg = _decode_trades(frame)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    data, topic = msg.data, msg.topic
    if not data or not topic.startswith(_TOPIC):
        return None
    mtype, ts = msg.type, msg.ts
    rows = [(topic, mtype, ts, t.i, t.T, t.p, t.v, t.S, t.s, t.BT, t.RPI, t.seq, received_us) for t in data]
    _, _, _, ids, _, prices, sizes, _, symbols, _, _, _, _ = zip(*rows)
    if (min(map(len, ids)) == 0 or max(map(len, ids)) > 64 or not "".join(ids).isascii()
            or not all(SYMBOL(s) for s in set(symbols)) or not decimal_column(prices) or not decimal_column(sizes)):
        return None
    return rows


def _int(value: Any, what: str) -> int:
    if type(value) is not int:  # noqa: E721 (a bool is not a time)
        raise FrameError(f"{what} is not an integer: {value!r:.40}")
    return value


class BybitAdapter(ExchangeAdapter):
    name = "bybit"
    bronze_table = "bronze_trades_bybit"
    columns = (
        "topic", "message_type", "message_ts_ms", "exec_id", "trade_time_ms", "price", "size", "side",
        "symbol", "is_block_trade", "is_rpi", "seq", "received_at",
    )
    column_types = (
        "String", "String", "Int64", "String", "Int64", "String", "String", "String",
        "String", "Bool", "Nullable(Bool)", "Int64", "Int64",
    )
    key_columns = ("symbol", "exec_id")
    symbol_index = 8
    trade_key_index = 3
    trade_order_index = 3  # the trade id: rises within a frame and from frame to frame
    ws_url = "wss://stream.bybit.com/v5/public/spot"
    rest_url = "https://api.bybit.com"
    max_symbols_per_connection = 200  # args of one connection <= 21,000 characters
    stale_after_s = 60.0  # no heartbeats; pongs every 20 s, quiet symbols may not trade for minutes
    ping_interval_s = 20.0  # Bybit's recommendation
    can_backfill = True  # by time, but only as far back as the last 60 trades (spot)
    rest_pages_from_cursor = False
    exchange_time = ("trade_time_ms", "ms")
    bronze_time_sql = "fromUnixTimestamp64Milli(trade_time_ms, 'UTC')"
    candles = VenueCandles(
        ("open", "high", "low", "close", "volume", "quote_volume"), ("1m", "1h", "1d"), 1000, 120.0,
        "600 requests per 5 s per IP (the HTTP-level limit)",
        "startTime: window start in ms, UTC; [start, open, high, low, close, volume, turnover], newest first")
    fallback_instruments = tuple(Instrument(b + q, b, q) for b, q in _FALLBACK)

    def native_symbol(self, symbol: str) -> str:
        s = symbol.strip().upper()
        if "/" in s:
            base, _, quote = s.partition("/")
            s = base + quote
        s = s.replace("-", "").replace("_", "")
        if not SYMBOL(s):
            raise ValueError(f"Bybit symbols are written BASEQUOTE, e.g. BTCUSDT (got {symbol!r})")
        return s

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        out = []
        for n, i in enumerate(range(0, len(native_symbols), ARGS_PER_REQUEST)):
            chunk = list(native_symbols[i:i + ARGS_PER_REQUEST])
            message = {"req_id": str(first_id + n), "op": "subscribe", "args": [_TOPIC + s for s in chunk]}
            out.append((first_id + n, chunk, json.dumps(message, separators=(",", ":"))))
        return out

    def ping_message(self, request_id: int) -> str:
        return json.dumps({"req_id": str(request_id), "op": "ping"}, separators=(",", ":"))

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        if type(frame) is bytes and frame.startswith(_TRADES_PREFIX):  # noqa: E721
            rows = _fast_trades(frame, received_us)
            if rows is not None:
                return Parsed(FrameKind.TRADES, rows)
        msg = decode_frame(frame)
        if not isinstance(msg, dict):
            raise FrameError(f"malformed frame: expected a JSON object, got {type(msg).__name__}")
        topic = msg.get("topic")
        if topic is not None:
            if type(topic) is str and topic.startswith(_TOPIC):  # noqa: E721
                return self._trades(msg, topic, received_us)
            if isinstance(topic, str):
                return OTHER
            raise FrameError(f"topic is not a string: {topic!r:.40}")
        op = msg.get("op")
        if op in ("ping", "pong"):
            return PONG
        if op in ("subscribe", "unsubscribe"):
            if msg.get("success") is True:
                return Parsed(FrameKind.SUBSCRIBED, detail=f"id={msg.get('req_id', '')}")
            text = str(msg.get("ret_msg", ""))
            found = _TOPIC_IN_TEXT(text)
            return Parsed(FrameKind.SUBSCRIBE_ERROR, symbol=found.group(1) if found else "",
                          detail=f"bybit: {text}"[:300])
        if msg.get("success") is False or "retCode" in msg:
            return Parsed(FrameKind.EXCHANGE_ERROR, detail=f"bybit error: {msg.get('ret_msg') or msg.get('retMsg')}"[:300])
        if isinstance(op, str):
            return OTHER
        raise FrameError("malformed frame: not a Bybit topic message, op reply or error")

    def _trades(self, msg: dict[str, Any], topic: str, received_us: int) -> Parsed:
        data = msg.get("data")
        if not isinstance(data, list) or not data:
            raise FrameError("malformed frame: trade data missing or empty")
        message_type = msg.get("type", "")
        if type(message_type) is not str:  # noqa: E721
            raise FrameError(f"type is not a string: {message_type!r:.40}")
        ts = _int(msg.get("ts"), "ts")
        return Parsed(FrameKind.TRADES, [_row(t, topic, message_type, ts, received_us) for t in data])

    # -- REST backfill ------------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """The last 60 trades (spot's maximum; there is no cursor: `cursor` is not used)."""
        return f"/v5/market/recent-trade?category=spot&symbol={native}&limit=60"

    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """GET /v5/market/kline?category=spot: windows with start <= startTime <= end, 1000 a page."""
        code = {"1m": "1", "1h": "60", "1d": "D"}[interval]
        step_ms = {"1m": 60_000, "1h": 3_600_000, "1d": 86_400_000}[interval]
        since_ms = since_us // 1000
        return (f"/v5/market/kline?category=spot&symbol={native}&interval={code}&start={since_ms}"
                f"&end={since_ms + 1000 * step_ms - 1}&limit=1000")

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        doc = candle_json(body, "bybit kline")
        if not isinstance(doc, dict):
            raise FrameError("bybit kline: not an object")
        if str(doc.get("retCode")) != "0":
            raise K2Error(f"bybit kline: {doc.get('retCode')} {str(doc.get('retMsg'))[:200]}")
        rows = (doc.get("result") or {}).get("list")
        if not isinstance(rows, list):
            raise FrameError("bybit kline: no result list")
        pos = {"open": 1, "high": 2, "low": 3, "close": 4, "volume": 5, "quote_volume": 6}
        return sorted((candle_of(r, int(r[0]) * 1000, pos, "bybit kline") for r in rows), key=lambda c: c["start_us"])

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """recent-trade -> bronze rows oldest first, and no next page. REST has no topic, type, seq or
        RPI; the response's `time` stands in for the message time `ts`."""
        doc = decode_frame(body)
        if not isinstance(doc, dict) or doc.get("retCode") != 0:
            raise FrameError(f"bybit REST error: {str(doc):.160}")
        result = doc.get("result")
        items = result.get("list") if isinstance(result, dict) else None
        if not isinstance(items, list):
            raise FrameError("bybit REST: result.list missing")
        ts = doc.get("time", 0) if type(doc.get("time", 0)) is int else 0  # noqa: E721
        rows = []
        for t in items:
            if not isinstance(t, dict):
                raise FrameError("bybit REST: a trade is not an object")
            when = t.get("time")
            if type(when) is not str or not when.isascii() or not when.isdigit() or len(when) > 16:  # noqa: E721
                raise FrameError(f"bybit REST: time is not a ms string: {when!r:.40}")
            wire = {"i": t.get("execId"), "T": int(when), "p": t.get("price"), "v": t.get("size"),
                    "S": t.get("side"), "s": t.get("symbol", native), "BT": t.get("isBlockTrade", False)}
            if "isRPITrade" in t:
                wire["RPI"] = t["isRPITrade"]
            rows.append(_row(wire, "", "", ts, received_us))
        rows.sort(key=lambda r: (r[4], len(r[3]), r[3]))
        return rows, None

    def row_time_us(self, row: tuple) -> int:
        return row[4] * 1000

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return "/v5/market/instruments-info?category=spot"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        doc = decode_frame(body)
        result = doc.get("result") if isinstance(doc, dict) else None
        items = result.get("list") if isinstance(result, dict) else None
        return [Instrument(i["symbol"], i["baseCoin"], i["quoteCoin"])
                for i in (items if isinstance(items, list) else [])
                if isinstance(i, dict) and i.get("symbol") and i.get("baseCoin") and i.get("quoteCoin")]


def _row(t: Any, topic: str, message_type: str, ts: int, received_us: int) -> tuple:
    if not isinstance(t, dict):
        raise FrameError("malformed frame: a trade is not an object")
    exec_id, side, symbol = t.get("i"), t.get("S"), t.get("s")
    if type(exec_id) is not str or not exec_id or len(exec_id) > 64 or not exec_id.isascii():  # noqa: E721
        raise FrameError(f"i (execution id) is not a string: {exec_id!r:.40}")
    if side not in _SIDES:
        raise FrameError(f"S (side) is not Buy or Sell: {side!r:.20}")
    if type(symbol) is not str or not SYMBOL(symbol):  # noqa: E721
        raise FrameError(f"s (symbol) is not a Bybit symbol: {symbol!r:.40}")
    block, rpi, seq = t.get("BT", False), t.get("RPI"), t.get("seq", -1)
    if type(block) is not bool or (rpi is not None and type(rpi) is not bool):  # noqa: E721
        raise FrameError(f"BT / RPI are not booleans: {block!r:.10} {rpi!r:.10}")
    if type(seq) is not int:  # noqa: E721
        raise FrameError(f"seq is not an integer: {seq!r:.40}")
    return (topic, message_type, ts, exec_id, _int(t.get("T"), "T"), check_decimal(t.get("p"), "p (price)"),
            check_decimal(t.get("v"), "v (size)"), side, symbol, block, rpi, seq, received_us)


ADAPTER = BybitAdapter()
