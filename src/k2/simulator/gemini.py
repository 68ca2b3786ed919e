"""Simulated Gemini market data v2 (trades of the `l2` subscription) at /v2/marketdata, and REST.

  -> {"type":"subscribe","subscriptions":[{"name":"l2","symbols":["BTCUSD"]}]}
  <- {"type":"l2_updates","symbol":"BTCUSD","changes":[["buy","97510.01","0.25"],...],"trades":[...last 50...]}
  <- {"type":"trade","symbol":"BTCUSD","event_id":291838476011,"timestamp":1784116800122,"price":"97512.40",
      "quantity":"0.04","side":"buy","tid":2840140800042679}
  <- {"type":"l2_updates","symbol":"BTCUSD","changes":[["sell","97512.40","0.31"]]}   the book after trades
  <- {"type":"heartbeat","timestamp":1784116800001}    every 5 heartbeat periods
  <- {"result":"error","reason":"InvalidSymbol","message":"Invalid symbol FOOUSD","symbol":"FOOUSD"}
     (Gemini's own error shape is UNCONFIRMED; the simulator names the symbol)
REST: GET /v1/trades/<symbol>?timestamp=<s|ms>&since_tid=&limit_trades= (newest first, at most 500; the
      oldest trades after the cursor), /v1/symbols, /v1/symbols/details/<symbol>

Gemini sends no subscription acknowledgement: the first l2_updates of a symbol is it. tid and
event_id are venue-wide counters (unique, rising, not consecutive per symbol).
"""

from __future__ import annotations

import bisect
import math
import random
import time
from typing import Any

import msgspec

from k2.exchanges.gemini import TradeMessage
from k2.simulator import candles
from k2.simulator.engine import Fill, Market
from k2.simulator.formats import decimals_for, fixed, trimmed
from k2.simulator.server import Connection, Venue, decode_json, encode_json, now_us

SNAPSHOT = 50
HEARTBEAT_PERIODS = 5
BOOK_LEVELS = 3


def tick_rule(mid: float) -> float:
    """USD cents for prices of 100 and more, else six significant digits."""
    return 0.01 if mid >= 100 else 10.0 ** (math.floor(math.log10(mid)) - 5)


def lot_rule(base_usd: float) -> float:
    return 1e-8


def first_id(rng: random.Random, weight: float) -> int:
    return rng.randrange(2_840_000_000_000_000, 2_850_000_000_000_000)


class _L2(msgspec.Struct):
    trades: list[TradeMessage] = []


_decode_trade = msgspec.json.Decoder(TradeMessage).decode
_decode_l2 = msgspec.json.Decoder(_L2).decode


def _tid(raw: bytes) -> int:
    return _decode_trade(raw).tid


def _ms(raw: bytes) -> int:
    return _decode_trade(raw).timestamp


class GeminiConnection(Connection):
    def __init__(self, venue: "GeminiVenue", path: str):
        super().__init__(venue, path)
        self.next_heartbeat = time.monotonic() + HEARTBEAT_PERIODS * venue.sim.config.heartbeat_s


class GeminiVenue(Venue):
    name = "gemini"

    def __init__(self, sim, port: int, markets: dict[str, Market]):
        super().__init__(sim, port, markets)
        self._decimals = {n: decimals_for(m.tick) for n, m in markets.items()}
        rng = random.Random(f"k2-sim:{sim.config.seed}:gemini-ids")
        self._tid = max((m.next_id for m in markets.values()), default=2_840_000_000_000_000)
        self._event_id = rng.randrange(290_000_000_000, 292_000_000_000)
        self._book_rng = random.Random(f"k2-sim:{sim.config.seed}:gemini-book")

    # -- WebSocket ------------------------------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        return {"ws": f"ws://{address}/v2/marketdata", "rest": f"http://{address}"}

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        if path.rstrip("/") == "/v2/marketdata":
            return GeminiConnection(self, path)
        return None

    def on_message(self, conn: Connection, message: bytes) -> None:
        try:
            request = decode_json(message)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict) or request.get("type") not in ("subscribe", "unsubscribe"):
            return conn.send(b'{"result":"error","reason":"InvalidJson","message":"Malformed request"}')
        subs = request.get("subscriptions")
        if not isinstance(subs, list) or not subs:
            return conn.send(b'{"result":"error","reason":"InvalidJson","message":"subscriptions must be an array"}')
        for sub in subs:
            name = sub.get("name") if isinstance(sub, dict) else None
            symbols = sub.get("symbols") if isinstance(sub, dict) else None
            if name != "l2" or not isinstance(symbols, list):
                conn.send(encode_json({"result": "error", "reason": "InvalidSubscription",
                                       "message": f"Invalid subscription {name}"}))
                continue
            for symbol in dict.fromkeys(s for s in symbols if isinstance(s, str)):
                native = symbol.upper()
                if native not in self.markets:
                    conn.send(encode_json({"result": "error", "reason": "InvalidSymbol",
                                           "message": f"Invalid symbol {symbol}", "symbol": symbol}))
                    continue
                if request["type"] == "unsubscribe":
                    self.unsubscribe(conn, native)
                elif native not in conn.subs:
                    self.subscribe(conn, native)
                    conn.send(self._initial(self.markets[native]))

    def _initial(self, market: Market) -> bytes:
        """The whole (simulated) book and the last 50 trades."""
        places, step = self._decimals[market.native], market.tick
        mid = market.mid or 1.0
        changes = []
        for side, sign in (("buy", -1), ("sell", 1)):
            for k in range(1, BOOK_LEVELS + 1):
                changes.append([side, fixed(mid + sign * k * step, places),
                                trimmed(self._book_rng.uniform(0.01, 2.0))])
        recent = list(market.history)[-SNAPSHOT:]
        return (b'{"type":"l2_updates","symbol":"%s","changes":%s,"trades":[%s]}'
                % (market.native.encode(), encode_json(changes), b",".join(recent)))

    def housekeeping(self, now: float) -> None:
        super().housekeeping(now)
        if self.sim.silent:
            return
        every = HEARTBEAT_PERIODS * self.sim.config.heartbeat_s
        for conn in list(self.connections):
            if conn.muted or conn.closed or now < conn.next_heartbeat:  # type: ignore[attr-defined]
                continue
            conn.next_heartbeat = now + every  # type: ignore[attr-defined]
            conn.send(b'{"type":"heartbeat","timestamp":%d}' % (now_us() // 1000))
            self.stats.heartbeats_sent += 1
            conn.flush()

    # -- trades ---------------------------------------------------------------------------------
    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        native = market.native.encode()
        places = self._decimals[market.native]
        ms = now // 1000
        frames = []
        for f in fills:
            self._tid += 1 + int(self._book_rng.random() * 3)  # other symbols' trades in between
            self._event_id += 1 + int(self._book_rng.random() * 20)
            frames.append(b'{"type":"trade","symbol":"%s","event_id":%d,"timestamp":%d,"price":"%s","quantity":"%s",'
                          b'"side":"%s","tid":%d}' % (native, self._event_id, ms, fixed(f[0], places).encode(),
                                                      trimmed(f[1]).encode(), b"sell" if f[2] else b"buy", self._tid))
        market.history.extend(frames)
        last = fills[-1]
        book = b'{"type":"l2_updates","symbol":"%s","changes":[["%s","%s","%s"]]}' % (
            native, b"buy" if last[2] else b"sell", fixed(last[0], places).encode(),
            trimmed(self._book_rng.uniform(0.01, 2.0)).encode())
        return frames + [book]

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        if frame.startswith(b'{"type":"trade"'):
            trades = [frame]
        else:
            trades = [msgspec.json.encode(t) for t in _decode_l2(frame).trades]
        market.history.extend(trades)
        for raw in trades:
            self._tid = max(self._tid, _tid(raw))
        return len(trades)

    def error_event(self, conn: Connection) -> bytes:
        return b'{"result":"error","reason":"ServiceUnavailable","message":"please retry"}'

    # -- REST -----------------------------------------------------------------------------------
    TIME_FRAMES = {"1m": 60, "5m": 300, "15m": 900, "30m": 1800, "1hr": 3600, "6hr": 21600, "1day": 86400}
    CANDLES_SERVED = 1440  # the newest windows only; no range parameters

    def _candles(self, native: str, frame: str) -> tuple[int, Any]:
        """/v2/candles/{symbol}/{time_frame}: [time, open, high, low, close, volume] as JSON numbers,
        newest first, the newest 1440 windows."""
        market = self.markets.get(native)
        if market is None:
            return 400, {"result": "error", "reason": "InvalidSymbol", "message": f"Invalid symbol {native.lower()}"}
        step = self.TIME_FRAMES.get(frame)
        if step is None:
            return 400, {"result": "error", "reason": "InvalidTimeFrame", "message": f"Invalid time frame {frame}"}
        step_us, now = step * 1_000_000, now_us()
        current = now - now % step_us

        def trades():
            for e in market.history:
                if e.startswith(b'{"type":"trade"'):
                    t = msgspec.json.decode(e)
                    yield int(t["timestamp"]) * 1000, t["price"], t["quantity"], t["side"] == "buy"

        found = candles.served(self.sim, trades(), step_us, current - (self.CANDLES_SERVED - 1) * step_us,
                               current + step_us)
        n = candles.number
        return 200, [[c.start_us // 1000, n(c.open), n(c.high), n(c.low), n(c.close), n(c.volume)]
                     for c in reversed(found)]

    def http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["v1", "symbols"]:
            return 200, [n.lower() for n in self.markets]
        if len(parts) == 4 and parts[:3] == ["v1", "symbols", "details"]:
            market = self.markets.get(parts[3].upper())
            if market is None:
                return 400, {"result": "error", "reason": "InvalidSymbol", "message": f"Invalid symbol {parts[3]}"}
            return 200, {"symbol": market.native, "base_currency": market.instrument.base,
                         "quote_currency": market.instrument.quote, "tick_size": market.lot,
                         "quote_increment": market.tick, "min_order_size": trimmed(market.lot), "status": "open",
                         "wrap_enabled": False}
        if len(parts) == 4 and parts[:2] == ["v2", "candles"]:
            return self._candles(parts[2].upper(), parts[3])
        if len(parts) == 3 and parts[:2] == ["v1", "trades"]:
            return self._trades(parts[2].upper(), query)
        return 404, {"result": "error", "reason": "EndpointNotFound", "message": f"{path} not found"}

    def _trades(self, native: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        market = self.markets.get(native)
        if market is None:
            return 400, {"result": "error", "reason": "InvalidSymbol", "message": f"Invalid symbol {native}"}
        try:
            limit = max(1, min(500, int((query.get("limit_trades") or ["50"])[0])))
            since_tid = int(query["since_tid"][0]) if query.get("since_tid") else None
            since = int(query["timestamp"][0]) if query.get("timestamp") else None
        except ValueError:
            return 400, {"result": "error", "reason": "InvalidParameter", "message": "invalid parameter"}
        history = list(market.history)
        if since_tid is not None:
            start = bisect.bisect_right(history, since_tid, key=_tid)
            chosen = history[start:start + limit]
        elif since is not None:
            since_ms = since * 1000 if since < 10**11 else since  # seconds or milliseconds
            start = bisect.bisect_left(history, since_ms, key=_ms)
            chosen = history[start:start + limit]
        else:
            chosen = history[-limit:]
        out = []
        for raw in reversed(chosen):  # newest first
            t = _decode_trade(raw)
            out.append({"timestamp": t.timestamp // 1000, "timestampms": t.timestamp, "tid": t.tid, "price": t.price,
                        "amount": t.quantity, "exchange": "gemini", "type": t.side})
        return 200, out
