"""Simulated Kraken spot: WebSocket v1 at `/` (K2's feed), v2 at `/v2`, and the public REST calls.

v1 (docs.kraken.com spot-websocket-v1):
  <- {"connectionID":18239578009413566319,"event":"systemStatus","status":"online","version":"1.9.1"}
  -> {"event":"subscribe","pair":["XBT/USD"],"subscription":{"name":"trade"},"reqid":1}
  <- {"channelID":119930881,"channelName":"trade","event":"subscriptionStatus","pair":"XBT/USD",
      "reqid":1,"status":"subscribed","subscription":{"name":"trade"}}
  <- [119930881,[["97512.30000","0.00150000","1784116800.412345","b","m",""]],"trade","XBT/USD"]
  <- {"event":"heartbeat"}   after about a second without other frames
  -> {"event":"ping","reqid":42}   <- {"event":"pong","reqid":42}
v2: {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":97512.3,
     "qty":0.0015,"ord_type":"market","trade_id":83412003,"timestamp":"2026-07-15T12:00:00.412345Z"}]}
REST: GET /0/public/AssetPairs[?pair=]   /0/public/Trades?pair=XBTUSD&since=<ns>&count=
      GET /0/public/Time   /0/public/SystemStatus
      GET /0/public/OHLC?pair=XBTUSD&interval=1|60|1440&since=<s>
      -> {"error":[],"result":{"XXBTZUSD":[[1784116800,"97512.30000","97530.10000","97500.00000",
          "97520.00000","97515.12345","1.23400000",42], ...],"last":1784116740}}
         [time, open, high, low, close, vwap, volume, count], oldest first; only the 720 newest
         windows, whatever `since` asks; entries with time > since; the last entry is the
         current, not yet committed window; `last` is the newest committed window's time

Trades of one pair that happen in the same engine tick share a frame (a sweep always does); each
trade's timestamp is a distinct microsecond, as Kraken's are. Prices carry 5 decimals, more for
prices below 1 (XDG/USD "0.1823410"); volumes 8. Keys of control messages are in Kraken's
(alphabetical) order. A channelID is fixed per pair. `trade_id` (v2, REST) counts up per pair.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

import msgspec

from k2.simulator import candles
from k2.simulator.engine import Fill, Market
from k2.simulator.server import Connection, Venue, decode_json, encode_json, now_us, ws_frame

FIRST_CHANNEL_ID = 119930881
#: Kraken's OHLC intervals, minutes
OHLC_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
OHLC_ENTRIES = 720
MAX_TRADES_PER_FRAME = 100
SNAPSHOT_V2 = 50
#: REST asset codes with Kraken's legacy X/Z prefix
_LEGACY_CODES = {"XBT": "XXBT", "ETH": "XETH", "LTC": "XLTC", "XRP": "XXRP", "XDG": "XXDG",
                 "USD": "ZUSD", "EUR": "ZEUR", "GBP": "ZGBP", "JPY": "ZJPY"}
_PAIR_KEY_EXCEPTIONS = {"XDG/USD": "XDGUSD"}
_decode_element = msgspec.json.Decoder(list[str]).decode


def tick_rule(mid: float) -> float:
    """Six significant digits (XBT/USD 0.1)."""
    return 10.0 ** (math.floor(math.log10(mid)) - 5)


def price_decimals(tick: float) -> int:
    """5 decimals on the wire, one more than the grid below 1e-5 (XDG/USD: 7)."""
    return 5 if tick >= 1e-5 else min(12, round(-math.log10(tick)) + 1)


def lot_rule(base_usd: float) -> float:
    return 1e-8


def first_id(rng: random.Random, weight: float) -> int:
    return rng.randrange(int(5e6 * weight), int(9e6 * weight))


def pair_key(wsname: str) -> str:
    """REST name of a pair: XXBTZUSD for legacy assets on both sides, else the altname."""
    if wsname in _PAIR_KEY_EXCEPTIONS:
        return _PAIR_KEY_EXCEPTIONS[wsname]
    base, _, quote = wsname.partition("/")
    if base in _LEGACY_CODES and quote in _LEGACY_CODES:
        return _LEGACY_CODES[base] + _LEGACY_CODES[quote]
    return base + quote


def _control(obj: dict[str, Any]) -> bytes:
    return encode_json(dict(sorted(obj.items())))


def _rfc3339(ts_us: int) -> str:
    sec, us = divmod(ts_us, 1_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{us:06d}Z"


def _json_number(decimal_string: str) -> msgspec.Raw:
    text = decimal_string.rstrip("0").rstrip(".") if "." in decimal_string else decimal_string
    return msgspec.Raw((text or "0").encode())


def _micros(timestamp: str) -> int:
    """"1784116800.412345" -> 1784116800412345"""
    sec, _, frac = timestamp.partition(".")
    return int(sec) * 1_000_000 + int(frac.ljust(6, "0")[:6])


def _timestamp_us(element: bytes) -> int:
    return _micros(_decode_element(element)[2])


class KrakenConnection(Connection):
    heartbeat = b'{"event":"heartbeat"}'


class KrakenV2Connection(Connection):
    heartbeat = b'{"channel":"heartbeat"}'
    record_stream = "v2"


class KrakenVenue(Venue):
    name = "kraken"

    def __init__(self, sim, port: int, markets: dict[str, Market]):
        super().__init__(sim, port, markets)
        self._channel = {n: FIRST_CHANNEL_ID + i for i, n in enumerate(markets)}
        self._decimals = {n: price_decimals(m.tick) for n, m in markets.items()}
        self._frame_head = {n: b"[%d,[" % self._channel[n] for n in markets}
        self._frame_tail = {n: b'],"trade","' + n.encode() + b'"]' for n in markets}
        self._v2_native = {m.instrument.canonical_symbol: n for n, m in markets.items()}
        self._by_rest_name: dict[str, str] = {}
        for n in markets:
            for alias in (n, pair_key(n), n.replace("/", "")):
                self._by_rest_name[alias] = n
        self._batch: tuple[Market, list[bytes]] | None = None  # the tick's elements, for v2

    # -- WebSocket ------------------------------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        return {"ws": f"ws://{address}/", "ws_v2": f"ws://{address}/v2", "rest": f"http://{address}"}

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        if path in ("", "/"):
            return KrakenConnection(self, path)
        if path in ("/v2", "/v2/"):
            return KrakenV2Connection(self, path)
        return None

    def on_connect(self, conn: Connection) -> None:
        connection_id = self.sim.connection_rng.getrandbits(64) | (1 << 63)
        if isinstance(conn, KrakenV2Connection):
            conn.send(b'{"channel":"status","data":[{"api_version":"v2","connection_id":%d,"system":"online",'
                      b'"version":"2.0.10"}],"type":"update"}' % connection_id)
        else:
            conn.send(b'{"connectionID":%d,"event":"systemStatus","status":"online","version":"1.9.1"}'
                      % connection_id)

    def on_message(self, conn: Connection, message: bytes) -> None:
        v2 = isinstance(conn, KrakenV2Connection)
        try:
            request = decode_json(message)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict):
            if v2:
                return conn.send(_control({"error": "Malformed request", "method": "error", "success": False}))
            return conn.send(_control({"errorMessage": "Malformed request", "event": "error"}))
        if v2:
            return self._on_v2(conn, request)
        event, reqid = request.get("event"), request.get("reqid")
        tag = {} if reqid is None else {"reqid": reqid}
        if event == "ping":
            return conn.send(_control({"event": "pong", **tag}))
        if event not in ("subscribe", "unsubscribe"):
            return conn.send(_control({"errorMessage": "Unsupported event", "event": "error", **tag}))
        pairs, subscription = request.get("pair"), request.get("subscription")
        if not isinstance(subscription, dict) or subscription.get("name") != "trade":
            name = subscription.get("name") if isinstance(subscription, dict) else None
            message_text = "Subscription name invalid" if name else "Subscription field must be an object"
            return conn.send(_control({"errorMessage": message_text, "event": "error", **tag}))
        if not isinstance(pairs, list) or not pairs or not all(isinstance(p, str) for p in pairs):
            return conn.send(_control({"errorMessage": "Pair field must be an array", "event": "error", **tag}))
        for pair in dict.fromkeys(pairs):
            status = {"channelName": "trade", "event": "subscriptionStatus", "pair": pair,
                      "subscription": {"name": "trade"}, **tag}
            error = None
            if pair not in self.markets:
                error = f"Currency pair not supported {pair}"
            elif event == "subscribe" and pair in conn.subs:
                error = "Already subscribed"
            elif event == "unsubscribe" and pair not in conn.subs:
                error = "Subscription Not Found"
            if error:
                conn.send(_control({**status, "errorMessage": error, "status": "error"}))
                continue
            conn.send(_control({**status, "channelID": self._channel[pair],
                                "status": "subscribed" if event == "subscribe" else "unsubscribed"}))
            if event == "unsubscribe":
                self.unsubscribe(conn, pair)
                continue
            self.subscribe(conn, pair)
            snapshot = self.sim.config.kraken_snapshot
            if snapshot and self.markets[pair].history:
                elements = list(self.markets[pair].history)[-snapshot:]
                conn.send(self._frame_head[pair] + b",".join(elements) + self._frame_tail[pair])

    def _on_v2(self, conn: Connection, request: dict[str, Any]) -> None:
        method, req_id, params = request.get("method"), request.get("req_id"), request.get("params")
        time_in = _rfc3339(now_us())

        def reply(**fields: Any) -> None:
            tag = {} if req_id is None else {"req_id": req_id}
            conn.send(encode_json({**fields, **tag, "time_in": time_in, "time_out": _rfc3339(now_us())}))

        if method == "ping":
            return reply(method="pong")
        if method not in ("subscribe", "unsubscribe"):
            return reply(error=f"Unsupported method {method}" if method else "Malformed request",
                         method=method or "error", success=False)
        symbols = params.get("symbol") if isinstance(params, dict) else None
        if not isinstance(symbols, list) or not symbols or params.get("channel") != "trade":
            return reply(error="Malformed request: expected params {channel: trade, symbol: [...]}",
                         method=method, success=False)
        snapshot = bool(params.get("snapshot", False))
        for symbol in dict.fromkeys(s for s in symbols if isinstance(s, str)):
            native = self._v2_native.get(symbol)
            if native is None or (method == "unsubscribe" and native not in conn.subs):
                reason = "Currency pair not supported" if native is None else "Subscription Not Found"
                reply(error=f"{reason} {symbol}", method=method, success=False, symbol=symbol)
                continue
            if method == "unsubscribe":
                reply(method=method, result={"channel": "trade", "symbol": symbol}, success=True)
                self.unsubscribe(conn, native)
                continue
            reply(method=method, result={"channel": "trade", "snapshot": snapshot, "symbol": symbol}, success=True)
            self.subscribe(conn, native)
            market = self.markets[native]
            if snapshot and market.history:
                elements = list(market.history)[-SNAPSHOT_V2:]
                conn.send(self._v2_frame(market, elements, market.next_id - len(elements), b"snapshot"))

    # -- trades ---------------------------------------------------------------------------------
    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        native = market.native
        decimals = self._decimals[native]
        n = len(fills)
        start = max(market.last_us + 1, now - n + 1)
        elements = [
            b'["%.*f","%.8f","%d.%06d","%s","%s",""]'
            % (decimals, f[0], f[1], (start + i) // 1_000_000, (start + i) % 1_000_000,
               b"s" if f[2] else b"b", b"m" if f[3] else b"l")
            for i, f in enumerate(fills)
        ]
        market.last_us = start + n - 1
        self._remember(market, elements)
        head, tail = self._frame_head[market.native], self._frame_tail[market.native]
        return [head + b",".join(elements[i:i + MAX_TRADES_PER_FRAME]) + tail
                for i in range(0, len(elements), MAX_TRADES_PER_FRAME)]

    def _remember(self, market: Market, elements: list[bytes]) -> None:
        """Keep trades (v1 trade arrays) for REST, snapshots and the v2 frame of this tick."""
        market.next_id += len(elements)
        market.history.extend(elements)
        self._batch = (market, elements)

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        elements = [encode_json(t) for t in decode_json(frame)[1]]
        self._remember(market, elements)
        return len(elements)

    def deliver(self, market: Market, payloads: list[bytes], subscribers: Iterable[Connection]) -> None:
        v1_framed = v2 = v2_framed = None
        for conn in subscribers:
            if isinstance(conn, KrakenV2Connection):
                if v2 is None:
                    if not self._batch or self._batch[0] is not market:
                        continue
                    elements = self._batch[1]
                    v2 = [self._v2_frame(market, elements, market.next_id - len(elements), b"update")]
                    v2_framed = [ws_frame(v2[0])]
                conn.send_many(v2_framed, v2)
            else:
                if v1_framed is None:
                    v1_framed = [ws_frame(p) for p in payloads]
                conn.send_many(v1_framed, payloads)

    def _v2_frame(self, market: Market, elements: list[bytes], first_trade_id: int, kind: bytes) -> bytes:
        symbol = market.instrument.canonical_symbol
        data = []
        for i, element in enumerate(elements):
            price, volume, ts, side, order_type, _misc = _decode_element(element)
            data.append({"symbol": symbol, "side": "sell" if side == "s" else "buy",
                         "price": _json_number(price), "qty": _json_number(volume),
                         "ord_type": "market" if order_type == "m" else "limit",
                         "trade_id": first_trade_id + i,
                         "timestamp": _rfc3339(_micros(ts))})
        return b'{"channel":"trade","type":"%s","data":%s}' % (kind, encode_json(data))

    def error_event(self, conn: Connection) -> bytes:
        if isinstance(conn, KrakenV2Connection):
            return b'{"error":"EService:Unavailable","method":"error","success":false}'
        return b'{"errorMessage":"EService:Unavailable","event":"error"}'

    # -- REST -----------------------------------------------------------------------------------
    def http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/0/public/Time":
            now = time.time()
            return 200, {"error": [], "result": {"unixtime": int(now), "rfc1123": time.strftime(
                "%a, %d %b %y %H:%M:%S +0000", time.gmtime(now))}}
        if path == "/0/public/SystemStatus":
            return 200, {"error": [], "result": {"status": "online", "timestamp": _rfc3339(now_us())[:19] + "Z"}}
        if path == "/0/public/AssetPairs":
            return self._asset_pairs(query)
        if path == "/0/public/Trades":
            return self._trades(query)
        if path == "/0/public/OHLC":
            return self._ohlc(query)
        return 404, {"error": ["EGeneral:Unknown method"]}

    def _ohlc(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """Candles from this pair's trades (the ones REST keeps): the 720 newest windows only."""
        name = (query.get("pair") or [""])[0]
        native = self._by_rest_name.get(name)
        if native is None:
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        try:
            interval = int((query.get("interval") or ["1"])[0])
            since = int(Decimal((query.get("since") or ["0"])[0] or "0"))
        except (InvalidOperation, ValueError):
            return 200, {"error": ["EGeneral:Invalid arguments"]}
        if interval not in OHLC_INTERVALS:
            return 200, {"error": ["EGeneral:Invalid arguments:interval"]}
        step_us = interval * 60_000_000
        now = now_us()
        current = now - now % step_us
        oldest = current - (OHLC_ENTRIES - 1) * step_us
        since_us = max(oldest, (since + 1) * 1_000_000)
        market = self.markets[native]
        decimals = self._decimals[native]

        def trades():
            for element in market.history:
                price, volume, ts, side, _order_type, _misc = _decode_element(element)
                yield _micros(ts), price, volume, side == "b"

        found = candles.build(trades(), step_us, since_us - since_us % step_us, current + step_us)
        candles.skew(found, self.sim, step_us)
        rows = []
        for c in sorted(found.values(), key=lambda c: c.start_us):
            if c.start_us // 1_000_000 <= since:
                continue
            rows.append([c.start_us // 1_000_000, f"{c.open:.{decimals}f}", f"{c.high:.{decimals}f}",
                         f"{c.low:.{decimals}f}", f"{c.close:.{decimals}f}", candles.places(c.vwap, decimals),
                         f"{c.volume:.8f}", c.count])
        committed = [r[0] for r in rows if r[0] < current // 1_000_000]
        return 200, {"error": [], "result": {pair_key(native): rows,
                                             "last": committed[-1] if committed else since}}

    def _asset_pairs(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        natives = list(self.markets)
        if query.get("pair"):
            asked = [p for p in query["pair"][0].split(",") if p]
            if any(p not in self._by_rest_name for p in asked):
                return 200, {"error": ["EQuery:Unknown asset pair"]}
            natives = [self._by_rest_name[p] for p in asked]
        return 200, {"error": [], "result": {pair_key(n): self._pair_info(self.markets[n]) for n in natives}}

    def _pair_info(self, m: Market) -> dict[str, Any]:
        base, _, quote = m.native.partition("/")
        decimals = max(0, round(-math.log10(m.tick)))
        return {
            "altname": base + quote, "wsname": m.native,
            "aclass_base": "currency", "base": _LEGACY_CODES.get(base, base),
            "aclass_quote": "currency", "quote": _LEGACY_CODES.get(quote, quote),
            "lot": "unit", "cost_decimals": 5, "pair_decimals": decimals, "lot_decimals": 8,
            "lot_multiplier": 1, "leverage_buy": [], "leverage_sell": [],
            "fees": [[0, 0.26], [50000, 0.24]], "fees_maker": [[0, 0.16], [50000, 0.14]],
            "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
            "ordermin": "%.8f" % m.lot, "costmin": "0.5", "tick_size": f"{m.tick:.{decimals}f}",
            "status": "online",
        }

    def _trades(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        name = (query.get("pair") or [""])[0]
        if not name:
            return 200, {"error": ["EGeneral:Invalid arguments"]}
        native = self._by_rest_name.get(name)
        if native is None:
            return 200, {"error": ["EQuery:Unknown asset pair"]}
        try:
            since = Decimal((query.get("since") or ["0"])[0] or "0")
            count = int((query.get("count") or ["1000"])[0])
        except (InvalidOperation, ValueError):
            return 200, {"error": ["EGeneral:Invalid arguments"]}
        since_ns = int(since * 1_000_000_000) if since < 10_000_000_000 else int(since)  # seconds or ns
        count = max(1, min(count, 1000))
        market = self.markets[native]
        history = list(market.history)
        first = market.next_id - len(history)
        if query.get("since"):  # trades strictly after `since` (times rise along the history)
            start = bisect.bisect_right(history, since_ns // 1000, key=_timestamp_us)
            chosen = range(start, min(len(history), start + count))
        else:
            chosen = range(max(0, len(history) - count), len(history))
        rows = []
        for i in chosen:
            price, volume, ts, side, order_type, misc = _decode_element(history[i])
            rows.append([price, volume, msgspec.Raw(ts.encode()), side, order_type, misc, first + i])
        last = _timestamp_us(history[chosen[-1]]) * 1000 if rows else since_ns
        return 200, {"error": [], "result": {pair_key(native): rows, "last": str(last)}}
