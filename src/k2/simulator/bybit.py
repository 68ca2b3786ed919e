"""Simulated Bybit v5 spot: `publicTrade.<symbol>` at /v5/public/spot and the REST calls K2 uses.

  -> {"req_id":"1","op":"subscribe","args":["publicTrade.BTCUSDT"]}      (at most 10 args)
  <- {"success":true,"ret_msg":"subscribe","conn_id":"d30fdpbboasp1pjbe7r0-xr7y","req_id":"1","op":"subscribe"}
  <- {"success":false,"ret_msg":"Invalid topic: publicTrade.FOOUSDT","conn_id":"..","req_id":"2","op":"subscribe"}
  <- {"topic":"publicTrade.BTCUSDT","ts":1784116800389,"type":"snapshot","data":[{"i":"2290000000861234568",
      "T":1784116800387,"p":"97512.4","v":"0.04","S":"Buy","s":"BTCUSDT","BT":false,"RPI":false,"seq":79432105533}]}
  -> {"req_id":"7","op":"ping"}   <- {"success":true,"ret_msg":"pong","conn_id":"..","op":"ping"}
REST: GET /v5/market/recent-trade?category=spot&symbol=&limit= (spot: at most 60, newest first),
      /v5/market/instruments-info?category=spot, /v5/market/time

As on the real service: Bybit sends no heartbeats; a connection that sends nothing (no ping, no
request) for `IDLE_S` is closed. A tick's trades of one symbol go in one message (at most 1024)
and share a `seq`; `i` is a numeric string counting up per symbol; `type` is always "snapshot".
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import msgspec

from k2.simulator.binance import lot_rule, tick_rule  # the same kind of grids
from k2.simulator import candles
from k2.simulator.engine import Fill, Market
from k2.simulator.formats import trimmed
from k2.simulator.server import Connection, Venue, decode_json, encode_json, now_us

__all__ = ["BybitVenue", "first_id", "lot_rule", "tick_rule"]

IDLE_S = 600.0
MAX_ARGS = 10
MAX_TRADES_PER_MESSAGE = 1024
RECENT_TRADES_MAX = 60
_TOPIC = "publicTrade."


def first_id(rng: random.Random, weight: float) -> int:
    return 2290000000000000000 + rng.randrange(int(1e12 * weight), int(2e12 * weight))


class _Element(msgspec.Struct):
    i: str
    T: int
    p: str
    v: str
    S: str
    s: str
    BT: bool = False
    RPI: bool | None = None
    seq: int = -1


class _Message(msgspec.Struct):
    data: list[_Element]
    seq: int = -1


_decode_message = msgspec.json.Decoder(_Message).decode
_decode_element = msgspec.json.Decoder(_Element).decode


class BybitConnection(Connection):
    def __init__(self, venue: "BybitVenue", path: str):
        super().__init__(venue, path)
        rng = venue.sim.connection_rng
        self.conn_id = "".join(rng.choice("abcdefghijklmnopqrstuv0123456789") for _ in range(20)) + "-" + "".join(
            rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(4))
        self.last_received = time.monotonic()


class BybitVenue(Venue):
    name = "bybit"

    def __init__(self, sim, port: int, markets: dict[str, Market]):
        super().__init__(sim, port, markets)
        self._decimals = {n: max(0, round(-math.log10(m.tick))) for n, m in markets.items()}
        self._seq = random.Random(f"k2-sim:{sim.config.seed}:bybit-seq").randrange(7 * 10**10, 8 * 10**10)

    # -- WebSocket ------------------------------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        return {"ws": f"ws://{address}/v5/public/spot", "rest": f"http://{address}"}

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        if path.rstrip("/") == "/v5/public/spot":
            return BybitConnection(self, path)
        return None

    def on_message(self, conn: BybitConnection, message: bytes) -> None:  # type: ignore[override]
        conn.last_received = time.monotonic()
        try:
            request = decode_json(message)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict):
            return self._reply(conn, None, "", False, "error:request not in json format")
        op, req_id, args = request.get("op"), request.get("req_id"), request.get("args")
        if op == "ping":
            return conn.send(encode_json({"success": True, "ret_msg": "pong", "conn_id": conn.conn_id, "op": "ping"}))
        if op not in ("subscribe", "unsubscribe"):
            return self._reply(conn, req_id, str(op), False, f"error:unknown op {op}")
        if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
            return self._reply(conn, req_id, op, False, "error:args must be a non-empty array of strings")
        if len(args) > MAX_ARGS:
            return self._reply(conn, req_id, op, False, f"error:args size >{MAX_ARGS}")
        invalid = [a for a in args if not a.startswith(_TOPIC) or a[len(_TOPIC):] not in self.markets]
        for topic in args:
            if topic in invalid:
                continue
            native = topic[len(_TOPIC):]
            if op == "subscribe":
                self.subscribe(conn, native)
            else:
                self.unsubscribe(conn, native)
        if invalid:
            return self._reply(conn, req_id, op, False, f"Invalid topic: {invalid[0]}")
        self._reply(conn, req_id, op, True, op)

    @staticmethod
    def _reply(conn: BybitConnection, req_id: Any, op: str, success: bool, ret_msg: str) -> None:
        reply: dict[str, Any] = {"success": success, "ret_msg": ret_msg, "conn_id": conn.conn_id}
        if req_id is not None:
            reply["req_id"] = req_id
        reply["op"] = op
        conn.send(encode_json(reply))

    def housekeeping(self, now: float) -> None:
        super().housekeeping(now)
        for conn in list(self.connections):
            if not conn.closed and now - conn.last_received > IDLE_S:  # type: ignore[attr-defined]
                conn.cut()

    # -- trades ---------------------------------------------------------------------------------
    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        native = market.native
        places = self._decimals[native]
        ms = now // 1000
        self._seq += 1 + len(fills)
        tid = market.next_id
        elements = [
            b'{"i":"%d","T":%d,"p":"%s","v":"%s","S":"%s","s":"%s","BT":false,"RPI":false,"seq":%d}' % (
                tid + i, ms, trimmed(f[0], places).encode(), trimmed(f[1]).encode(),
                b"Sell" if f[2] else b"Buy", native.encode(), self._seq)
            for i, f in enumerate(fills)
        ]
        market.next_id = tid + len(elements)
        market.history.extend(elements)
        head = b'{"topic":"publicTrade.%s","ts":%d,"type":"snapshot","data":[' % (native.encode(), ms + 1)
        return [head + b",".join(elements[i:i + MAX_TRADES_PER_MESSAGE]) + b"]}"
                for i in range(0, len(elements), MAX_TRADES_PER_MESSAGE)]

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        message = _decode_message(frame)
        market.history.extend(msgspec.json.encode(e) for e in message.data)
        return len(message.data)

    def error_event(self, conn: Connection) -> bytes:
        return b'{"success":false,"ret_msg":"error:internal error, please retry","conn_id":"%s","op":""}' % (
            conn.conn_id.encode())  # type: ignore[attr-defined]

    # -- REST -----------------------------------------------------------------------------------
    KLINE_INTERVALS = {"1": 60, "5": 300, "15": 900, "60": 3600, "240": 14400, "D": 86400}

    def _kline(self, query: dict[str, list[str]], category: str, now_ms: int) -> tuple[int, Any]:
        """kline: [startTime, open, high, low, close, volume, turnover] strings, newest first, windows
        with start <= startTime <= end, at most `limit` (default 200, max 1000)."""
        def error(code: int, msg: str) -> tuple[int, Any]:
            return 200, {"retCode": code, "retMsg": msg, "result": {}, "retExtInfo": {}, "time": now_ms}

        if category != "spot":
            return error(10001, "Illegal category")
        symbol = (query.get("symbol") or [""])[0]
        market = self.markets.get(symbol)
        if market is None:
            return error(10001, "Not supported symbols")
        step = self.KLINE_INTERVALS.get((query.get("interval") or [""])[0])
        if step is None:
            return error(10001, "Invalid period!")
        try:
            limit = int((query.get("limit") or ["200"])[0])
            end = int(query["end"][0]) * 1000 if query.get("end") else now_ms * 1000
            start = int(query["start"][0]) * 1000 if query.get("start") else None
        except ValueError:
            return error(10001, "params error")
        if not 1 <= limit <= 1000:
            return error(10001, "params error: limit")
        step_us = step * 1_000_000
        start = start if start is not None else end - limit * step_us

        def trades():
            for e in market.history:
                t = msgspec.json.decode(e)
                yield int(t["T"]) * 1000, t["p"], t["v"], t["S"] == "Buy"

        found = candles.served(self.sim, trades(), step_us, (start + step_us - 1) // step_us * step_us, end + 1)
        t = candles.text
        rows = [[str(c.start_us // 1000), t(c.open), t(c.high), t(c.low), t(c.close), t(c.volume), t(c.quote_volume)]
                for c in reversed(found)][:limit]
        return 200, {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "symbol": symbol, "list": rows},
                     "retExtInfo": {}, "time": now_ms}

    def http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        now_ms = now_us() // 1000
        if path == "/v5/market/time":
            return 200, {"retCode": 0, "retMsg": "OK", "result": {"timeSecond": str(now_ms // 1000),
                                                                   "timeNano": str(now_ms * 1_000_000)},
                         "retExtInfo": {}, "time": now_ms}
        category = (query.get("category") or [""])[0]
        if path in ("/v5/market/recent-trade", "/v5/market/instruments-info") and category != "spot":
            return 200, {"retCode": 10001, "retMsg": "Illegal category", "result": {}, "retExtInfo": {}, "time": now_ms}
        if path == "/v5/market/instruments-info":
            items = [{"symbol": m.native, "baseCoin": m.instrument.base, "quoteCoin": m.instrument.quote,
                      "status": "Trading", "innovation": "0", "marginTrading": "none",
                      "lotSizeFilter": {"basePrecision": trimmed(m.lot, 10), "minOrderQty": trimmed(m.lot, 10)},
                      "priceFilter": {"tickSize": trimmed(m.tick, 10)}} for m in self.markets.values()]
            return 200, {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": items},
                         "retExtInfo": {}, "time": now_ms}
        if path == "/v5/market/kline":
            return self._kline(query, category, now_ms)
        if path == "/v5/market/recent-trade":
            market = self.markets.get((query.get("symbol") or [""])[0])
            if market is None:
                return 200, {"retCode": 10001, "retMsg": "params error: symbol invalid", "result": {},
                             "retExtInfo": {}, "time": now_ms}
            try:
                limit = max(1, min(RECENT_TRADES_MAX, int((query.get("limit") or ["60"])[0])))
            except ValueError:
                return 200, {"retCode": 10001, "retMsg": "params error: limit", "result": {}, "retExtInfo": {},
                             "time": now_ms}
            items = []
            for raw in reversed(list(market.history)[-limit:]):  # newest first
                e = _decode_element(raw)
                items.append({"execId": e.i, "symbol": e.s, "price": e.p, "size": e.v, "side": e.S,
                              "time": str(e.T), "isBlockTrade": e.BT, "isRPITrade": bool(e.RPI)})
            return 200, {"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": items},
                         "retExtInfo": {}, "time": now_ms}
        return 404, {"retCode": 404, "retMsg": "Not Found"}
