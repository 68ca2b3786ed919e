"""Simulated OKX v5: the public `trades` channel at /ws/v5/public and the REST calls K2 uses.

  -> {"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}
  <- {"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"c7f0ba8e"}   (one per arg)
  <- {"event":"error","code":"60018","msg":"Wrong URL or channel:trades,instId:FOO-USDT doesn't exist. ...",
      "connId":"c7f0ba8e"}
  <- {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1051102135",
      "px":"97512.4","sz":"0.3","side":"buy","ts":"1784116800387","count":"1","source":"0","seqId":80559459961}]}
  -> ping (a text frame)   <- pong
REST: GET /api/v5/market/trades?instId=&limit= (newest first, at most 500),
      /api/v5/market/history-trades?instId=&type=1|2&after=&before=&limit= (at most 100; type 1 pages by
      tradeId, 2 by ts; after = older than, before = newer than; newest first), /api/v5/public/instruments?instType=SPOT

As on the real service: a connection that gets nothing for `IDLE_S` (no data, no pong) is closed,
so clients ping; a tick's trades of one instrument are one message; everything but seqId is a
string. Each simulated trade is one fill (`count` "1"), so tradeIds here have no jumps.
"""

from __future__ import annotations

import bisect
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

__all__ = ["OkxVenue", "first_id", "lot_rule", "tick_rule"]

IDLE_S = 30.0


def first_id(rng: random.Random, weight: float) -> int:
    return rng.randrange(int(8e8 * weight), int(1.2e9 * weight))


class _Trade(msgspec.Struct):
    instId: str
    tradeId: str
    px: str
    sz: str
    side: str
    ts: str
    count: str = ""
    source: str = ""
    seqId: int = -1


class _Push(msgspec.Struct):
    data: list[_Trade]


_decode_push = msgspec.json.Decoder(_Push).decode
_decode_trade = msgspec.json.Decoder(_Trade).decode


def _tid(raw: bytes) -> int:
    return int(_decode_trade(raw).tradeId)


def _ts(raw: bytes) -> int:
    return int(_decode_trade(raw).ts)


class OkxConnection(Connection):
    def __init__(self, venue: "OkxVenue", path: str):
        super().__init__(venue, path)
        self.conn_id = "%08x" % venue.sim.connection_rng.getrandbits(32)
        self.last_activity = time.monotonic()  # last frame sent to the client, data or pong


class OkxVenue(Venue):
    name = "okx"

    def __init__(self, sim, port: int, markets: dict[str, Market]):
        super().__init__(sim, port, markets)
        self._decimals = {n: max(0, round(-math.log10(m.tick))) for n, m in markets.items()}
        self._seq = random.Random(f"k2-sim:{sim.config.seed}:okx-seq").randrange(8 * 10**10, 9 * 10**10)

    # -- WebSocket ------------------------------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        return {"ws": f"ws://{address}/ws/v5/public", "rest": f"http://{address}"}

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        if path.rstrip("/") == "/ws/v5/public":
            return OkxConnection(self, path)
        return None

    def on_message(self, conn: OkxConnection, message: bytes) -> None:  # type: ignore[override]
        if message == b"ping":
            conn.last_activity = time.monotonic()
            return conn.send(b"pong")
        try:
            request = decode_json(message)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict) or request.get("op") not in ("subscribe", "unsubscribe"):
            return self._error(conn, "60012", f"Invalid request: {message[:200].decode('utf-8', 'replace')}")
        op, args = request["op"], request.get("args")
        if not isinstance(args, list) or not args:
            return self._error(conn, "60012", "Invalid request: args must be a non-empty array")
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst = arg.get("instId") if isinstance(arg, dict) else None
            if channel != "trades" or inst not in self.markets:
                self._error(conn, "60018", f"Wrong URL or channel:{channel},instId:{inst} doesn't exist. Please use "
                                           "the correct URL, channel and parameters referring to API document.")
                continue
            if op == "subscribe":
                self.subscribe(conn, inst)
            else:
                self.unsubscribe(conn, inst)
            conn.send(encode_json({"event": op, "arg": {"channel": channel, "instId": inst}, "connId": conn.conn_id}))

    @staticmethod
    def _error(conn: OkxConnection, code: str, msg: str) -> None:
        conn.send(encode_json({"event": "error", "code": code, "msg": msg, "connId": conn.conn_id}))

    def housekeeping(self, now: float) -> None:
        super().housekeeping(now)
        for conn in list(self.connections):
            if conn.closed or conn.muted:
                continue
            quiet = now - max(conn.last_activity, conn.last_sent)  # type: ignore[attr-defined]
            if quiet > IDLE_S:
                conn.cut()

    # -- trades ---------------------------------------------------------------------------------
    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        native = market.native
        places = self._decimals[native]
        ts = b"%d" % (now // 1000)
        tid = market.next_id
        elements = []
        for i, f in enumerate(fills):
            self._seq += 1 + (i % 3)
            elements.append(
                b'{"instId":"%s","tradeId":"%d","px":"%s","sz":"%s","side":"%s","ts":"%s","count":"1",'
                b'"source":"0","seqId":%d}' % (native.encode(), tid + i, trimmed(f[0], places).encode(),
                                                trimmed(f[1]).encode(), b"sell" if f[2] else b"buy", ts, self._seq))
        market.next_id = tid + len(elements)
        market.history.extend(elements)
        return [b'{"arg":{"channel":"trades","instId":"%s"},"data":[' % native.encode() + b",".join(elements) + b"]}"]

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        push = _decode_push(frame)
        market.history.extend(msgspec.json.encode(t) for t in push.data)
        if push.data:
            market.next_id = int(push.data[-1].tradeId) + 1
        return len(push.data)

    def error_event(self, conn: Connection) -> bytes:
        return b'{"event":"error","code":"50001","msg":"Service temporarily unavailable. Please try again later.",' \
               b'"connId":"%s"}' % conn.conn_id.encode()  # type: ignore[attr-defined]

    # -- REST -----------------------------------------------------------------------------------
    def http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/api/v5/public/time":
            return 200, {"code": "0", "msg": "", "data": [{"ts": str(now_us() // 1000)}]}
        if path == "/api/v5/public/instruments":
            if (query.get("instType") or [""])[0] != "SPOT":
                return 200, {"code": "51000", "msg": "Parameter instType error", "data": []}
            return 200, {"code": "0", "msg": "", "data": [
                {"instType": "SPOT", "instId": m.native, "baseCcy": m.instrument.base, "quoteCcy": m.instrument.quote,
                 "tickSz": trimmed(m.tick, 10), "lotSz": trimmed(m.lot, 10), "minSz": trimmed(m.lot, 10),
                 "state": "live"} for m in self.markets.values()]}
        if path in ("/api/v5/market/candles", "/api/v5/market/history-candles"):
            return self._candles(query)
        if path in ("/api/v5/market/trades", "/api/v5/market/history-trades"):
            return self._trades(query, history=path.endswith("history-trades"))
        return 404, {"code": "50000", "msg": "Not Found", "data": []}

    BARS = {"1m": 60, "5m": 300, "15m": 900, "1H": 3600, "4H": 14400, "1Dutc": 86400}

    def _candles(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """history-candles: [ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm] strings, newest first,
        windows with before < ts < after, at most `limit` (100)."""
        market = self.markets.get((query.get("instId") or [""])[0])
        if market is None:
            return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
        step = self.BARS.get((query.get("bar") or ["1m"])[0])
        if step is None:
            return 200, {"code": "51000", "msg": "Parameter bar error", "data": []}
        try:
            after = int(query["after"][0]) if query.get("after") else None
            before = int(query["before"][0]) if query.get("before") else None
            limit = int((query.get("limit") or ["100"])[0])
        except ValueError:
            return 200, {"code": "50014", "msg": "Parameter error", "data": []}
        if not 1 <= limit <= 100:
            return 200, {"code": "51000", "msg": "Parameter limit error", "data": []}
        step_us, now = step * 1_000_000, now_us()
        hi = after * 1000 if after is not None else now + step_us
        lo = before * 1000 + 1 if before is not None else 0

        def trades():
            for e in market.history:
                t = msgspec.json.decode(e)
                yield int(t["ts"]) * 1000, t["px"], t["sz"], t["side"] == "buy"

        found = [c for c in candles.served(self.sim, trades(), step_us, (lo + step_us - 1) // step_us * step_us, hi)
                 if c.start_us < hi]
        t = candles.text
        rows = [[str(c.start_us // 1000), t(c.open), t(c.high), t(c.low), t(c.close), t(c.volume),
                 t(c.quote_volume), t(c.quote_volume), "1" if candles.closed(c.start_us, step_us, now) else "0"]
                for c in reversed(found)]
        return 200, {"code": "0", "msg": "", "data": rows[:limit]}

    def _trades(self, query: dict[str, list[str]], history: bool) -> tuple[int, Any]:
        market = self.markets.get((query.get("instId") or [""])[0])
        if market is None:
            return 200, {"code": "51001", "msg": "Instrument ID does not exist", "data": []}
        try:
            limit = max(1, min(100 if history else 500, int((query.get("limit") or ["100"])[0])))
            kind = (query.get("type") or ["1"])[0]
            after = int(query["after"][0]) if history and query.get("after") else None
            before = int(query["before"][0]) if history and query.get("before") else None
        except ValueError:
            return 200, {"code": "51000", "msg": "Parameter error", "data": []}
        rows = list(market.history)
        key = _ts if kind == "2" else _tid
        if after is not None:  # older than `after`
            end = bisect.bisect_left(rows, after, key=key)
            chosen = rows[max(0, end - limit):end]
        elif before is not None:  # newer than `before`, the page right above it
            start = bisect.bisect_right(rows, before, key=key)
            chosen = rows[start:start + limit]
        else:
            chosen = rows[-limit:]
        data = []
        for raw in reversed(chosen):  # newest first
            t = _decode_trade(raw)
            data.append({"instId": t.instId, "side": t.side, "sz": t.sz, "px": t.px, "source": t.source or "0",
                         "tradeId": t.tradeId, "ts": t.ts})
        return 200, {"code": "0", "msg": "", "data": data}
