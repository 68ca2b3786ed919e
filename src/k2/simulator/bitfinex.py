"""Simulated Bitfinex v2: the public `trades` channel at /ws/2 and the REST calls K2 uses.

  <- {"event":"info","version":2,"serverId":"083bd8d4-...","platform":{"status":1}}
  -> {"event":"subscribe","channel":"trades","symbol":"tBTCUSD"}
  <- {"event":"subscribed","channel":"trades","chanId":17470,"symbol":"tBTCUSD","pair":"BTCUSD"}
  <- [17470,[[1773456791,1784116799512,0.0021,97512],...]]     snapshot, newest first
  <- [17470,"te",[1773456795,1784116800122,-0.0012,97508]]     each trade, then again as "tu"
  <- [17470,"hb"]                                              after 15 heartbeat periods without trades
  <- {"event":"error","msg":"symbol: invalid","code":10300,"channel":"trades","symbol":"tFOOUSD"}
  -> {"event":"ping","cid":1234}   <- {"event":"pong","ts":1784116805001,"cid":1234}
REST: GET /v2/trades/<symbol>/hist?limit=&start=&end=&sort=  ([[ID,MTS,AMOUNT,PRICE],...], newest first
      unless sort=1), /v2/conf/pub:list:pair:exchange[,pub:map:currency:sym], /v2/platform/status

Numbers are JSON numbers: prices with five significant digits (Bitfinex's precision), amounts
signed (+ the taker bought, - the taker sold). Trade IDs are one counter for the whole venue (as on
Bitfinex: unique, not consecutive per pair). Real Bitfinex numbers channels per connection; the
simulator gives every pair one fixed chanId, so that its records load with `k2 load` (the
generated record starts with the `subscribed` event of every pair).
"""

from __future__ import annotations

import math
import random
import time
from typing import Any, Iterable

import msgspec

from k2.exchanges.bitfinex import CURRENCY_ALIASES
from k2.simulator import candles
from k2.simulator.engine import Fill, Market
from k2.simulator.formats import significant, trimmed, uuid4
from k2.simulator.server import Connection, Venue, decode_json, encode_json, now_us, ws_frame

FIRST_CHANNEL_ID = 17470
SNAPSHOT = 30
HEARTBEAT_PERIODS = 15  # `hb` after this many heartbeat_s without trades on a channel
_decode_exact = msgspec.json.Decoder(float_hook=str).decode


def tick_rule(mid: float) -> float:
    """Five significant digits."""
    return 10.0 ** (math.floor(math.log10(mid)) - 4)


def lot_rule(base_usd: float) -> float:
    return 1e-8


def first_id(rng: random.Random, weight: float) -> int:
    return rng.randrange(1_700_000_000, 1_800_000_000)


class BitfinexConnection(Connection):
    def __init__(self, venue: "BitfinexVenue", path: str):
        super().__init__(venue, path)
        self.last_on_channel: dict[str, float] = {}  # native -> last trade or hb sent


class BitfinexVenue(Venue):
    name = "bitfinex"

    def __init__(self, sim, port: int, markets: dict[str, Market]):
        super().__init__(sim, port, markets)
        self._chan = {n: FIRST_CHANNEL_ID + i for i, n in enumerate(markets)}
        self._by_chan = {c: n for n, c in self._chan.items()}
        self._next_id = min((m.next_id for m in markets.values()), default=1_700_000_000)
        self._server_id = uuid4(random.Random(f"k2-sim:{sim.config.seed}:bitfinex-server"))
        if self.recorder:  # so that <generated>.jsonl loads on its own: the channels first
            self.recorder.generated([self._subscribed(n) for n in markets])

    def _subscribed(self, native: str) -> bytes:
        return b'{"event":"subscribed","channel":"trades","chanId":%d,"symbol":"%s","pair":"%s"}' % (
            self._chan[native], native.encode(), native[1:].encode())

    # -- WebSocket ------------------------------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        return {"ws": f"ws://{address}/ws/2", "rest": f"http://{address}"}

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        if path.rstrip("/") == "/ws/2":
            return BitfinexConnection(self, path)
        return None

    def on_connect(self, conn: Connection) -> None:
        conn.send(b'{"event":"info","version":2,"serverId":"%s","platform":{"status":1}}' % self._server_id.encode())

    def on_message(self, conn: BitfinexConnection, message: bytes) -> None:  # type: ignore[override]
        try:
            request = decode_json(message)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict):
            return conn.send(b'{"event":"error","msg":"invalid JSON","code":10000}')
        event = request.get("event")
        if event == "ping":
            return conn.send(encode_json({"event": "pong", "ts": now_us() // 1000, "cid": request.get("cid")}))
        if event == "conf":
            return conn.send(encode_json({"event": "conf", "status": "OK", "flags": request.get("flags")}))
        if event == "unsubscribe":
            native = self._by_chan.get(request.get("chanId"))  # type: ignore[arg-type]
            if native is None or native not in conn.subs:
                return conn.send(b'{"event":"error","msg":"unsubscribe: invalid","code":10400}')
            self.unsubscribe(conn, native)
            return conn.send(encode_json({"event": "unsubscribed", "status": "OK", "chanId": self._chan[native]}))
        if event != "subscribe":
            return conn.send(b'{"event":"error","msg":"unknown event","code":10000}')
        channel, symbol = request.get("channel"), request.get("symbol")
        echo = {"channel": channel, "symbol": symbol}
        if channel != "trades":
            return conn.send(encode_json({"event": "error", "msg": "channel: unknown", "code": 10302, **echo}))
        if symbol not in self.markets:
            return conn.send(encode_json({"event": "error", "msg": "symbol: invalid", "code": 10300, **echo}))
        if symbol in conn.subs:
            return conn.send(encode_json({"event": "error", "msg": "subscribe: dup", "code": 10301, **echo}))
        self.subscribe(conn, symbol)
        conn.send(self._subscribed(symbol))
        conn.last_on_channel[symbol] = time.monotonic()
        recent = list(self.markets[symbol].history)[-SNAPSHOT:]
        conn.send(b"[%d,[%s]]" % (self._chan[symbol], b",".join(reversed(recent))))

    def housekeeping(self, now: float) -> None:
        super().housekeeping(now)
        if self.sim.silent:
            return
        quiet = HEARTBEAT_PERIODS * self.sim.config.heartbeat_s
        for conn in list(self.connections):
            if conn.muted or conn.closed:
                continue
            sent = False
            for native in conn.subs:
                last = conn.last_on_channel.get(native, conn.connected_at)  # type: ignore[attr-defined]
                if now - last >= quiet:
                    conn.send(b'[%d,"hb"]' % self._chan[native])
                    conn.last_on_channel[native] = now  # type: ignore[attr-defined]
                    self.stats.heartbeats_sent += 1
                    sent = True
            if sent:
                conn.flush()

    # -- trades ---------------------------------------------------------------------------------
    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        ms = now // 1000
        tid = self._next_id
        elements = [
            b"[%d,%d,%s%s,%s]" % (tid + i, ms, b"-" if f[2] else b"", trimmed(f[1]).encode(),
                                  significant(f[0]).encode())
            for i, f in enumerate(fills)
        ]
        self._next_id = tid + len(elements)
        market.history.extend(elements)
        chan = self._chan[market.native]
        return [b'[%d,"te",%s]' % (chan, e) for e in elements]

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        msg = _decode_exact(frame)
        trades = msg[1] if isinstance(msg[1], list) else [msg[2]]
        for t in trades:
            market.history.append(b"[%s]" % b",".join(str(v).encode() for v in t[:4]))
            self._next_id = max(self._next_id, int(t[0]) + 1)
        return len(trades)

    def replay(self, native: str, frame: bytes) -> None:
        """A recorded frame names the channel of its own connection: give it this pair's chanId."""
        body = frame[frame.index(b",") :] if frame.startswith(b"[") else frame
        super().replay(native, b"[%d" % self._chan[native] + body)

    def deliver(self, market: Market, payloads: list[bytes], subscribers: Iterable[Connection]) -> None:
        framed = [ws_frame(p) for p in payloads]
        # "tu" repeats each "te" a moment later (here: right after the tick's te frames)
        updates = [p.replace(b',"te",', b',"tu",', 1) for p in payloads if b',"te",' in p[:24]]
        framed_updates = [ws_frame(p) for p in updates]
        now = time.monotonic()
        for conn in subscribers:
            conn.send_many(framed, payloads)
            for f, p in zip(framed_updates, updates):
                conn.send_framed(f, p)
            conn.last_on_channel[market.native] = now  # type: ignore[attr-defined]

    def error_event(self, conn: Connection) -> bytes:
        return b'{"event":"error","msg":"ERR_INTERNAL: please retry","code":10000}'

    # -- REST -----------------------------------------------------------------------------------
    FRAMES = {"1m": 60, "5m": 300, "15m": 900, "1h": 3600, "3h": 10800, "1D": 86400}

    def _candles(self, key: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """/v2/candles/trade:<frame>:<symbol>/hist: [MTS, OPEN, CLOSE, HIGH, LOW, VOLUME] as JSON
        numbers, windows with start <= MTS <= end, newest first (sort=1: oldest first), at most
        `limit` (default 100, max 10000)."""
        kind, _, rest = key.partition(":")
        frame, _, native = rest.partition(":")
        market = self.markets.get(native)
        step = self.FRAMES.get(frame)
        if kind != "trade" or step is None or market is None:
            return 500, ["error", 10020, "key: invalid"]
        try:
            limit = int((query.get("limit") or ["100"])[0])
            end = int(query["end"][0]) * 1000 if query.get("end") else now_us()
            start = int(query["start"][0]) * 1000 if query.get("start") else 0
            ascending = (query.get("sort") or ["-1"])[0] == "1"
        except ValueError:
            return 500, ["error", 10020, "start, end or limit: invalid"]
        if not 1 <= limit <= 10000:
            return 500, ["error", 10020, "limit: invalid"]
        step_us = step * 1_000_000

        def trades():
            for e in market.history:
                _id, mts, amount, price = msgspec.json.decode(e, type=list[msgspec.Raw])[:4]
                amount_text = bytes(amount).decode()
                yield int(bytes(mts)) * 1000, bytes(price).decode(), amount_text.lstrip("-"), not amount_text.startswith("-")

        found = candles.served(self.sim, trades(), step_us, (start + step_us - 1) // step_us * step_us, end + 1)
        if not ascending:
            found.reverse()
        n = candles.number
        return 200, [[c.start_us // 1000, n(c.open), n(c.close), n(c.high), n(c.low), n(c.volume)] for c in found[:limit]]

    def http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["v2", "platform", "status"]:
            return 200, [1]
        if len(parts) == 3 and parts[:2] == ["v2", "conf"]:
            out = []
            for key in parts[2].split(","):
                if key == "pub:list:pair:exchange":
                    out.append([n[1:] for n in self.markets])
                elif key == "pub:map:currency:sym":
                    out.append([[code, common] for code, common in CURRENCY_ALIASES.items()])
                else:
                    out.append(None)
            return 200, out
        if len(parts) == 4 and parts[:2] == ["v2", "candles"] and parts[3] == "hist":
            return self._candles(parts[2], query)
        if len(parts) == 4 and parts[:2] == ["v2", "trades"] and parts[3] == "hist":
            return self._trades(parts[2], query)
        return 404, ["error", 10020, "route not found"]

    def _trades(self, native: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        market = self.markets.get(native)
        if market is None:
            return 500, ["error", 10020, "symbol: invalid"]
        try:
            limit = max(1, min(10000, int((query.get("limit") or ["125"])[0])))
            start = int(query["start"][0]) if query.get("start") else None
            end = int(query["end"][0]) if query.get("end") else None
            ascending = (query.get("sort") or ["-1"])[0] == "1"
        except ValueError:
            return 500, ["error", 10020, "invalid params"]
        chosen = []
        for raw in market.history if ascending else reversed(market.history):
            t = _decode_exact(raw)
            if (start is not None and t[1] < start) or (end is not None and t[1] > end):
                continue
            chosen.append(msgspec.Raw(raw))
            if len(chosen) >= limit:
                break
        return 200, chosen
