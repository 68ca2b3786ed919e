"""Kraken spot WebSocket v1: the `trade` channel (the seed's array protocol).

Wire facts (docs.kraken.com spot-websocket-v1; cryptofeed capture KRAKEN.ws.48.0):
  on connect  {"connectionID":18239578009413566319,"event":"systemStatus","status":"online","version":"1.9.1"}
  subscribe   {"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"trade"}}
  ack (per pair) {"channelID":119930881,"channelName":"trade","event":"subscriptionStatus",
               "pair":"XBT/USD","status":"subscribed","subscription":{"name":"trade"}}
  bad pair    {"errorMessage":"Currency pair not supported XBT/USDX","event":"subscriptionStatus",
               "pair":"XBT/USDX","status":"error","subscription":{"name":"trade"}}
  trade       [119930881,[["97512.30000","0.00150000","1784116800.412345","b","m",""]],"trade","XBT/USD"]
              = [channelID, [[price, volume, time, side, orderType, misc], ...], "trade", pair]
  heartbeat   {"event":"heartbeat"}  about once a second when nothing else is sent
  ping/pong   {"event":"ping","reqid":42} -> {"event":"pong","reqid":42}
Side b/s and order type l/m are the taker's. There is no trade id; silver derives one. Pairs use
Kraken's legacy asset codes (XBT, XDG); silver maps them to BTC and DOGE.
"""

from __future__ import annotations

import json
import re
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from itertools import repeat
from operator import itemgetter
from typing import Annotated, Any, Literal, Sequence

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import (
    RestHistory,
    TradeKeys,
    HEARTBEAT,
    OTHER,
    PONG,
    ExchangeAdapter,
    FrameKind,
    Instrument,
    MAX_FREE_TEXT,
    Parsed,
    VenueCandles,
    check_decimal,
    check_free_text,
    decimal_column,
    describe_decode_error,
    symbol_rule,
)



#: one element of a trade frame's list: [price, volume, time, side, orderType, misc]. Tuples, not
#: structs: a frame's columns are then one C transposition away (`zip(*trades)`), which costs
#: fewer instructions than reading six attributes per trade (callgrind)
_Trade = tuple[str, str, str, Literal["b", "s"], Literal["l", "m"],
               Annotated[str, msgspec.Meta(max_length=MAX_FREE_TEXT)]]  # longer: the general path rejects it


#: a well-formed trade frame, types checked in C; anything else takes the general path below,
#: which says exactly what is wrong. A frame's columns are then checked and its rows built by C
#: loops (zip), not per trade in Python
_decode_trade_frame = msgspec.json.Decoder(
    tuple[Annotated[int, msgspec.Meta(ge=0)], Annotated[list[_Trade], msgspec.Meta(min_length=1)],
          Literal["trade"], str]).decode
_decode_any = msgspec.json.Decoder().decode
_decode_exact = msgspec.json.Decoder(float_hook=str).decode  # REST times are JSON numbers: keep the text
_TIMESTAMP = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}", re.ASCII).fullmatch
#: a Kraken pair as its WebSocket API writes it: BASE/QUOTE in capitals, digits and dots (XBT/USD,
#: ETH2.S/ETH) -- no lowercase, spaces, or invisible or look-alike Unicode
PAIR = symbol_rule(r"[A-Z0-9][A-Z0-9.]{0,19}/[A-Z0-9][A-Z0-9.]{0,19}", "pair", "BASE/QUOTE")
_PAIRS_SEEN = PAIR.seen
_SIDES = frozenset(("b", "s"))
_ORDER_TYPES = frozenset(("l", "m"))
#: Kraken's legacy asset codes and the common ones (the same map silver applies in SQL)
ASSET_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_NATIVE_ASSETS = {v: k for k, v in ASSET_ALIASES.items()}


def _i(base: str, quote: str) -> Instrument:
    native = f"{_NATIVE_ASSETS.get(base, base)}/{_NATIVE_ASSETS.get(quote, quote)}"
    return Instrument(native, base, quote)


class KrakenAdapter(ExchangeAdapter):
    name = "kraken"
    bronze_table = "bronze_trades_kraken"
    columns = (
        "channel_id", "pair", "price", "volume", "timestamp", "side", "order_type", "misc",
        "occurrence", "received_at",
    )
    column_types = (
        "UInt64", "String", "String", "String", "String", "String", "String", "String",
        "UInt16", "Int64",
    )
    key_columns = (
        "pair", "timestamp", "price", "volume", "side", "order_type", "misc", "occurrence",
    )
    symbol_index = 1
    trade_key_index = slice(2, 9)  # price .. occurrence: the whole trade
    # trade_keys: _TRADE_KEYS, set below the class (string keys for the recent-trades window)
    trade_order_index = 4  # the time: rises within a frame and from frame to frame
    exchange_time = ("timestamp", "s")
    ws_url = "wss://ws.kraken.com"
    rest_url = "https://api.kraken.com"
    max_symbols_per_connection = 50
    stale_after_s = 10.0  # heartbeats arrive about every second
    bronze_time_sql = "toDateTime64(toUInt32OrZero(splitByChar('.', timestamp)[1]), 0, 'UTC')"
    can_backfill = True  # by time: v1 trades have no id
    rest_history = RestHistory(
        "time", 1.0, "public calls: about one a second per IP",
        "every trade since the pair listed (XBT/USD: 2013), 1000 per page by `since`")
    candles = VenueCandles(
        ("open", "high", "low", "close", "vwap", "volume", "trade_count"), ("1m", "1h", "1d"), 720, 1.0,
        "public calls: about one a second per IP",
        "time: window start in s since the epoch, UTC; the last entry is the current, uncommitted window",
        reaches_back_windows=720, rounding="vwap printed with the pair's price decimals")
    fallback_instruments = tuple(
        _i(b, q)
        for b, q in [
            ("BTC", "USD"), ("ETH", "USD"), ("SOL", "USD"), ("XRP", "USD"), ("DOGE", "USD"),
            ("ADA", "USD"), ("LTC", "USD"), ("DOT", "USD"), ("LINK", "USD"), ("AVAX", "USD"),
            ("USDT", "USD"), ("USDC", "USD"), ("BTC", "EUR"), ("ETH", "EUR"), ("SOL", "EUR"),
            ("BTC", "GBP"), ("BTC", "USDT"), ("ETH", "USDT"), ("ETH", "BTC"), ("ADA", "BTC"),
            ("SOL", "BTC"), ("XRP", "BTC"), ("LTC", "BTC"), ("DOGE", "BTC"), ("DOT", "BTC"),
        ]
    )

    def native_symbol(self, symbol: str) -> str:
        s = symbol.strip().upper()
        base, sep, quote = s.partition("/")
        if not sep:
            raise ValueError(f"Kraken pairs are written BASE/QUOTE, e.g. XBT/USD (got {symbol!r})")
        return f"{_NATIVE_ASSETS.get(base, base)}/{_NATIVE_ASSETS.get(quote, quote)}"

    def canonical_symbol(self, native: str) -> str | None:
        base, sep, quote = native.partition("/")
        if not sep or not base or not quote:
            return None
        return f"{ASSET_ALIASES.get(base, base)}/{ASSET_ALIASES.get(quote, quote)}"

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        message = {"event": "subscribe", "pair": list(native_symbols), "reqid": first_id,
                   "subscription": {"name": "trade"}}
        return [(first_id, list(native_symbols), json.dumps(message))]

    def ping_message(self, request_id: int) -> str:
        return json.dumps({"event": "ping", "reqid": request_id})

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        if frame[:1] in _ARRAY_START:  # the usual frame: a trade list
            try:
                channel_id, trades, _, pair = _decode_trade_frame(frame)
            except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
                pass  # another channel or a bad frame: the general path tells which
            else:
                rows = _trade_rows(channel_id, trades, pair, received_us)
                if rows is not None:
                    return rows
        try:
            msg = _decode_any(frame)
        except msgspec.DecodeError as exc:
            if "out of range" in str(exc):  # connectionID beyond 64 bits: fall back to exact ints
                try:
                    msg = json.loads(frame)
                except ValueError:
                    raise FrameError(describe_decode_error(exc)) from None
            else:
                raise FrameError(describe_decode_error(exc)) from None
        except (UnicodeDecodeError, RecursionError) as exc:  # invalid UTF-8 in a string, absurd nesting
            raise FrameError(describe_decode_error(exc)) from None
        if isinstance(msg, list):
            return self._array(msg, received_us)
        if isinstance(msg, dict):
            return self._event(msg)
        raise FrameError(f"malformed frame: expected an array or object, got {type(msg).__name__}")

    def _array(self, msg: list, received_us: int) -> Parsed:
        if len(msg) < 4 or not isinstance(msg[-1], str) or not isinstance(msg[-2], str):
            raise FrameError("malformed frame: channel message is not [channelID, data, name, pair]")
        if msg[-2] != "trade":
            return OTHER  # book, ticker... channels we did not ask for
        channel_id, trades, pair = msg[0], msg[1], msg[-1]
        if type(channel_id) is not int or channel_id < 0:
            raise FrameError(f"malformed frame: channelID {channel_id!r:.40} is not an integer")
        if not isinstance(trades, list) or not trades:
            raise FrameError("malformed frame: trade list missing or empty")
        PAIR(pair)
        rows = []
        for t in trades:
            if not isinstance(t, list) or len(t) < 6:
                raise FrameError("malformed frame: a trade is not [price, volume, time, side, orderType, misc]")
            price, volume, ts, side, order_type, misc = t[0], t[1], t[2], t[3], t[4], t[5]
            check_decimal(price, "price")  # this path is cold now: trade frames take _trade_rows
            check_decimal(volume, "volume")
            if type(ts) is not str or not _TIMESTAMP(ts):
                raise FrameError(f"time is not a seconds.microseconds string: {ts!r:.40}")
            if type(side) is not str or side not in _SIDES:
                raise FrameError(f"side is not b or s: {side!r:.20}")
            if type(order_type) is not str or order_type not in _ORDER_TYPES:
                raise FrameError(f"order type is not l or m: {order_type!r:.20}")
            check_free_text(misc, "misc")
            rows.append((channel_id, pair, price, volume, ts, side, order_type, misc, 0, received_us))
        if len(rows) > 1:
            rows = _number_repeats(rows)
        return Parsed(FrameKind.TRADES, rows)

    def _event(self, msg: dict[str, Any]) -> Parsed:
        event = msg.get("event")
        if event == "heartbeat":
            return HEARTBEAT
        if event == "pong":
            return PONG
        if event == "subscriptionStatus":
            pair = str(msg.get("pair", ""))
            status = msg.get("status")
            if status == "subscribed":
                return Parsed(FrameKind.SUBSCRIBED, symbol=pair, detail=f"channelID={msg.get('channelID')}")
            if status == "error":
                return Parsed(FrameKind.SUBSCRIBE_ERROR, symbol=pair,
                              detail=str(msg.get("errorMessage", "subscription error")))
            return Parsed(FrameKind.STATUS, symbol=pair, detail=f"subscription {status}")
        if event == "systemStatus":
            return Parsed(FrameKind.STATUS, detail=f"system {msg.get('status')} (version {msg.get('version')})")
        if event == "error":
            return Parsed(FrameKind.EXCHANGE_ERROR, detail=f"kraken error: {msg.get('errorMessage', '')}")
        if isinstance(event, str):
            return OTHER
        raise FrameError("malformed frame: object without an `event`")

    # -- REST backfill -----------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """GET /0/public/Trades?pair=XBTUSD&since=<ns>: up to 1000 trades strictly after `since`; since is
        one nanosecond before `cursor`, so trades sharing the cursor's microsecond are not skipped."""
        return f"/0/public/Trades?pair={native.replace('/', '')}&since={int(cursor) * 1000 - 1}"

    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """GET /0/public/OHLC: the windows after `since` (seconds), of the 720 newest only."""
        minutes = {"1m": 1, "1h": 60, "1d": 1440}[interval]
        return f"/0/public/OHLC?pair={native.replace('/', '')}&interval={minutes}&since={since_us // 1_000_000 - 1}"

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        try:
            doc = msgspec.json.decode(body)
            if doc.get("error"):
                raise K2Error(f"kraken OHLC: {', '.join(map(str, doc['error']))[:200]}")
            result = doc["result"]
            rows = next(v for k, v in result.items() if k != "last")
            out = []
            for r in rows:
                t, o, h, lo, c, vwap, vol, n = r
                if type(t) is not int or type(n) is not int:
                    raise FrameError(f"OHLC entry {r!r:.80}: time and count must be integers")
                out.append({"start_us": t * 1_000_000, "open": check_decimal(o, "open"), "high": check_decimal(h, "high"),
                            "low": check_decimal(lo, "low"), "close": check_decimal(c, "close"),
                            "vwap": check_decimal(vwap, "vwap"), "volume": check_decimal(vol, "volume"),
                            "trade_count": str(n)})
            return out
        except (msgspec.DecodeError, AttributeError, KeyError, StopIteration, TypeError, ValueError) as exc:
            raise FrameError(f"OHLC answer not understood: {str(exc)[:200]}") from None

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """{"error":[],"result":{"XXBTZUSD":[[price, volume, time, side, ordType, misc, trade_id],...],
        "last":"<ns>"}} -> bronze rows. REST gives the time as a JSON number; it is written as the
        WebSocket's "seconds.microseconds" string (6 decimals), so a trade seen both ways has
        one identity."""
        try:
            doc = _decode_exact(body)
        except (msgspec.DecodeError, UnicodeDecodeError) as exc:
            raise FrameError(describe_decode_error(exc)) from None
        if not isinstance(doc, dict) or doc.get("error"):
            raise FrameError(f"kraken REST error: {doc.get('error') if isinstance(doc, dict) else doc!r:.200}")
        result = doc.get("result") or {}
        trades = next((v for k, v in result.items() if k != "last"), [])
        rows = []
        for t in trades if isinstance(trades, list) else []:
            if not isinstance(t, list) or len(t) < 6:
                raise FrameError("kraken REST trade is not [price, volume, time, side, ordType, misc, id]")
            ts = _six_decimals(t[2])
            rows.append((0, native, check_decimal(t[0], "price"), check_decimal(t[1], "volume"), ts,
                         t[3], t[4], t[5] if isinstance(t[5], str) else "", 0, received_us))
        if len(rows) > 1:
            rows = _number_repeats(rows)
        return rows, (self.row_time_us(rows[-1]) if rows else None)

    def row_time_us(self, row: tuple) -> int:
        seconds, _, fraction = row[4].partition(".")
        return int(seconds) * 1_000_000 + int((fraction + "000000")[:6])

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return "/0/public/AssetPairs"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        """GET /0/public/AssetPairs -> result.<name>.wsname ("XBT/USD")."""
        doc = _decode_any(body)
        out = []
        for info in (doc.get("result") or {}).values():
            wsname = info.get("wsname") if isinstance(info, dict) else None
            if isinstance(wsname, str) and "/" in wsname:
                canonical = self.canonical_symbol(wsname)
                if canonical:
                    base, quote = canonical.split("/", 1)
                    out.append(Instrument(wsname, base, quote))
        return out


_ARRAY_START = (b"[", "[")


#: a column of times joined by commas: each is _TIMESTAMP
_TIMESTAMP_COLUMN = re.compile(r"[0-9]{1,12}\.[0-9]{1,9}(?:,[0-9]{1,12}\.[0-9]{1,9})*", re.ASCII).fullmatch


def _trade_rows(channel_id: int, trades: list[tuple], pair: str, received_us: int) -> Parsed | None:
    """The trades of a decoded trade frame (bronze rows), or None when a value fails a check (the general
    path then names it). The checks are the general path's (is_decimal_string for price and
    volume, _TIMESTAMP for the time), made per column: each column joined by commas is matched
    once -- a comma inside a value would add one to the count, so none slips through -- which
    costs a fraction of checking every value in Python."""
    if pair not in _PAIRS_SEEN:  # a set lookup per frame; the check itself once per pair
        try:
            PAIR(pair)
        except FrameError:
            return None
    n = len(trades)
    prices, volumes, times, sides, order_types, miscs = zip(*trades)
    if not (decimal_column(prices) and decimal_column(volumes)):
        return None
    joined = ",".join(times)
    if joined.count(",") != n - 1 or _TIMESTAMP_COLUMN(joined) is None:
        return None
    rows = list(zip(repeat(channel_id, n), repeat(pair, n), prices, volumes, times, sides, order_types, miscs,
                    repeat(0, n), repeat(received_us, n)))
    if n == 1 or len(set(times)) == n or len(set(zip(prices, volumes, times, sides, order_types, miscs))) == n:
        # no exact repeat inside the frame (_number_repeats' tests, on the columns): every
        # occurrence is 0, and the columns at hand are the window's (_KEY_COLUMNS)
        return Parsed(FrameKind.TRADES, rows, key_columns=(prices, volumes, times, sides, order_types, miscs))
    return Parsed(FrameKind.TRADES, _number_repeats(rows))


def _six_decimals(value: Any) -> str:
    """1688669597.8277369 (a REST float) -> "1688669597.827737" (the WebSocket's form)."""
    try:
        return str(Decimal(str(value)).quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN))
    except (InvalidOperation, ValueError):
        raise FrameError(f"time is not a number: {value!r:.40}") from None


def _number_repeats(rows: list[tuple]) -> list[tuple]:
    """Give exact repeats inside one frame occurrence 1, 2, ... so each stays a distinct trade."""
    if len({r[4] for r in rows}) == len(rows):  # distinct times: no repeat possible (the usual case)
        return rows
    keys = [r[1:8] for r in rows]
    if len(set(keys)) == len(keys):
        return rows
    seen: dict[tuple, int] = {}
    out = []
    for row, key in zip(rows, keys):
        n = seen.get(key, 0)
        seen[key] = n + 1
        out.append(row[:8] + (n,) + row[9:]) if n else out.append(row)
    return out


#: the recent-trades window's key of a Kraken trade (there is no trade id: the whole trade is the
#: key). A 7-tuple per trade was the window's main cost (allocation, and the cyclic GC visiting
#: every kept key: ADR 0027); one string is neither tracked nor visited. The key is price, volume,
#: time, side, order type and misc joined by \x1f when that string has exactly five \x1f (so it
#: gives back each field: one-to-one) and occurrence is 0 -- nearly every trade. Any other row
#: (a repeat numbered inside its frame, a field holding \x1f or not a string) keeps its tuple
#: `row[2:9]`: never equal to a string, so keys stay one-to-one with `row[trade_key_index]`.
_KEY_FIELDS = itemgetter(2, 3, 4, 5, 6, 7)  # price .. misc
_OCCURRENCE = itemgetter(8)
_SEP = "\x1f"
_join_key = _SEP.join


def _trade_key(row: tuple) -> str | tuple:
    try:
        key = _join_key(_KEY_FIELDS(row))
    except TypeError:  # a value that is not a string (REST fields are stored as sent)
        return row[2:9]
    return key if not row[8] and key.count(_SEP) == 5 else row[2:9]


def _keys_of_columns(columns: tuple) -> list:
    """`_trade_key` of each row of a frame given as its key columns, occurrence 0 (Parsed.key_columns)."""
    keys = list(map(_join_key, zip(*columns)))
    if "".join(keys).count(_SEP) == 5 * len(keys):
        return keys
    return [_trade_key((0, "", *fields, 0)) for fields in zip(*columns)]


def _trade_keys(rows: list[tuple]) -> list:
    """`_trade_key` of each row, by C loops when every row takes the string form."""
    try:
        keys = list(map(_join_key, map(_KEY_FIELDS, rows)))
    except TypeError:
        return list(map(_trade_key, rows))
    if "".join(keys).count(_SEP) == 5 * len(keys) and not any(map(_OCCURRENCE, rows)):
        return keys
    return list(map(_trade_key, rows))


_TRADE_KEYS = KrakenAdapter.trade_keys = TradeKeys(_trade_key, _trade_keys, _keys_of_columns, order_column=2)

ADAPTER = KrakenAdapter()
