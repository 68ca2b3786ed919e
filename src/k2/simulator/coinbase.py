"""Simulated Coinbase: the Exchange ws-feed at `/` (K2's default), Advanced Trade at `/advanced`,
and the public REST calls of both.

Exchange feed (docs.cdp.coinbase.com exchange/websocket-feed):
  -> {"type":"subscribe","product_ids":["BTC-USD"],"channels":["matches","heartbeat"]}
  <- {"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]},
      {"name":"heartbeat","product_ids":["BTC-USD"]}]}
  <- {"type":"last_match",...}   the product's latest trade, once, right after subscribing
  <- {"type":"match","trade_id":871234568,"maker_order_id":"..","taker_order_id":"..","side":"sell",
      "size":"0.2","price":"97512.38","product_id":"BTC-USD","sequence":112233445622,
      "time":"2026-07-15T12:00:01.101871Z"}        `side` = the MAKER's side
  <- {"type":"heartbeat","sequence":..,"last_trade_id":..,"product_id":"BTC-USD","time":".."}  every second
  <- {"type":"error","message":"Failed to subscribe","reason":"FOO-USD is not a valid product"}
Advanced Trade (`/advanced`): one channel per subscribe message (market_trades, heartbeats); every
(un)subscribe is answered with the full set; a snapshot of recent trades follows; every message
carries the connection's own `sequence_num`; heartbeats every second once subscribed to them.
Both close a connection that has not subscribed within 5 s.
REST: GET /products, /products/{id}, /products/{id}/trades?limit=&after=|before= (newest first;
after = older ids, before = newer ids), /time; Advanced: /api/v3/brokerage/market/products,
/api/v3/brokerage/market/products/{id}/ticker?limit=&start=&end= (newest first).

Trade ids count up by one per product; the feed `sequence` per product jumps (the full order feed
shares it). Fills of one engine tick share a time, as fills of one taker order do on Coinbase.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from typing import Any, Iterable

import msgspec

from k2.exchanges.coinbase import rfc3339_us
from k2.simulator import candles
from k2.simulator.engine import Fill, Market
from k2.simulator.formats import decimals_for, fixed, rfc3339, trimmed, uuid4
from k2.simulator.server import Connection, Venue, decode_json, encode_json, now_us, ws_frame

SUBSCRIBE_DEADLINE_S = 5.0
ADVANCED_SNAPSHOT = 50
_CHANNELS = ("matches", "heartbeat")


class _Match(msgspec.Struct):
    type: str
    trade_id: int
    maker_order_id: str
    taker_order_id: str
    side: str
    size: str
    price: str
    product_id: str
    sequence: int
    time: str


_decode_match = msgspec.json.Decoder(_Match).decode


def _trade_id(payload: bytes) -> int:
    return _decode_match(payload).trade_id


def tick_rule(mid: float) -> float:
    """USD quote increments: 0.01 for BTC-USD, finer for cheap assets (never below 1e-8)."""
    return min(0.01, max(1e-8, 10.0 ** (math.floor(math.log10(mid)) - 6)))


def lot_rule(base_usd: float) -> float:
    return 1e-8


def first_id(rng: random.Random, weight: float) -> int:
    return rng.randrange(int(6e8 * weight), int(9e8 * weight))


class CoinbaseConnection(Connection):
    def __init__(self, venue: "CoinbaseVenue", path: str, advanced: bool):
        super().__init__(venue, path)
        self.advanced = advanced
        self.record_stream = "advanced" if advanced else ""
        self.subscribed_once = False
        self.heartbeat_products: list[str] = []  # Exchange: products on the heartbeat channel
        self.heartbeats = False  # Advanced: subscribed to `heartbeats`
        self.heartbeat_counter = 0
        self.sequence_num = 0  # Advanced: this connection's message counter
        self.next_heartbeat = time.monotonic() + venue.sim.config.heartbeat_s

    def envelope(self, channel: str, events: bytes) -> bytes:
        """An Advanced Trade message with this connection's next sequence_num."""
        seq, self.sequence_num = self.sequence_num, self.sequence_num + 1
        stamp = rfc3339(now_us())[:-1] + "000Z"
        return b'{"channel":"%s","client_id":"","timestamp":"%s","sequence_num":%d,"events":%s}' % (
            channel.encode(), stamp.encode(), seq, events)


class CoinbaseVenue(Venue):
    name = "coinbase"

    def __init__(self, sim, port: int, markets: dict[str, Market]):
        super().__init__(sim, port, markets)
        self._decimals = {n: decimals_for(m.tick) for n, m in markets.items()}
        self._rng = random.Random(f"k2-sim:{sim.config.seed}:coinbase-orders")
        self._sequence = {n: self._rng.randrange(10**11, 2 * 10**11) for n in markets}
        self._batch: tuple[Market, list[bytes]] | None = None

    # -- WebSocket ------------------------------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        return {"ws": f"ws://{address}/", "ws_advanced": f"ws://{address}/advanced", "rest": f"http://{address}"}

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        if path in ("", "/"):
            return CoinbaseConnection(self, path, advanced=False)
        if path in ("/advanced", "/advanced/"):
            return CoinbaseConnection(self, path, advanced=True)
        return None

    def on_message(self, conn: CoinbaseConnection, message: bytes) -> None:  # type: ignore[override]
        try:
            request = decode_json(message)
        except msgspec.DecodeError:
            request = None
        if not isinstance(request, dict):
            return conn.send(encode_json({"type": "error", "message": "Malformed JSON"}))
        kind = request.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            return conn.send(encode_json({"type": "error", "message": f"Unsupported message type {kind}"}))
        if conn.advanced:
            return self._advanced_request(conn, kind, request)
        self._exchange_request(conn, kind, request)

    def _exchange_request(self, conn: CoinbaseConnection, kind: str, request: dict[str, Any]) -> None:
        products = request.get("product_ids") or []
        wanted: dict[str, list[str]] = {}
        for channel in request.get("channels") or []:
            if isinstance(channel, str):
                name, ids = channel, products
            elif isinstance(channel, dict):
                name, ids = channel.get("name"), channel.get("product_ids") or products
            else:
                name, ids = None, []
            if name not in _CHANNELS:
                return self._failed(conn, f"{name} is not a valid channel")
            if not isinstance(ids, list) or not all(isinstance(p, str) for p in ids):
                return self._failed(conn, "product_ids must be an array of strings")
            wanted.setdefault(name, []).extend(ids)
        if not wanted:
            return self._failed(conn, "no channels requested")
        for ids in wanted.values():
            for p in ids:
                if p not in self.markets:
                    return self._failed(conn, f"{p} is not a valid product")
        conn.subscribed_once = True
        fresh = []
        for p in dict.fromkeys(wanted.get("matches", [])):
            if kind == "subscribe" and p not in conn.subs:
                self.subscribe(conn, p)
                fresh.append(p)
            elif kind == "unsubscribe":
                self.unsubscribe(conn, p)
        for p in dict.fromkeys(wanted.get("heartbeat", [])):
            if kind == "subscribe" and p not in conn.heartbeat_products:
                conn.heartbeat_products.append(p)
            elif kind == "unsubscribe" and p in conn.heartbeat_products:
                conn.heartbeat_products.remove(p)
        matches = [p for p in self.markets if p in conn.subs]
        channels = [{"name": "matches", "product_ids": matches}] if matches else []
        if conn.heartbeat_products:
            channels.append({"name": "heartbeat", "product_ids": list(conn.heartbeat_products)})
        conn.send(encode_json({"type": "subscriptions", "channels": channels}))
        for p in fresh:
            history = self.markets[p].history
            if history:
                conn.send(history[-1].replace(b'{"type":"match"', b'{"type":"last_match"', 1))

    @staticmethod
    def _failed(conn: Connection, reason: str) -> None:
        conn.send(encode_json({"type": "error", "message": "Failed to subscribe", "reason": reason}))

    def _advanced_request(self, conn: CoinbaseConnection, kind: str, request: dict[str, Any]) -> None:
        channel, products = request.get("channel"), request.get("product_ids") or []
        if channel not in ("market_trades", "heartbeats"):
            return conn.send(encode_json({"type": "error", "message": f"Failed to subscribe: unknown channel {channel}"}))
        if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
            return conn.send(encode_json({"type": "error", "message": "Failed to subscribe: product_ids must be strings"}))
        conn.subscribed_once = True
        fresh = []
        if channel == "heartbeats":
            conn.heartbeats = kind == "subscribe"
        else:
            for p in dict.fromkeys(products):
                if p not in self.markets:
                    return conn.send(encode_json({"type": "error",
                                                  "message": f"Failed to subscribe: {p} is not a valid product"}))
            for p in dict.fromkeys(products):
                if kind == "subscribe" and p not in conn.subs:
                    self.subscribe(conn, p)
                    fresh.append(p)
                elif kind == "unsubscribe":
                    self.unsubscribe(conn, p)
        subs: dict[str, list[str]] = {}
        if conn.heartbeats:
            subs["heartbeats"] = ["heartbeats"]
        matches = [p for p in self.markets if p in conn.subs]
        if matches:
            subs["market_trades"] = matches
        conn.send(conn.envelope("subscriptions", encode_json([{"subscriptions": subs}])))
        for p in fresh:
            recent = list(self.markets[p].history)[-ADVANCED_SNAPSHOT:]
            trades = b",".join(self._advanced_trade(h) for h in recent)
            conn.send(conn.envelope("market_trades", b'[{"type":"snapshot","trades":[' + trades + b"]}]"))

    # -- housekeeping -----------------------------------------------------------------------------
    def housekeeping(self, now: float) -> None:
        super().housekeeping(now)
        if self.sim.silent:
            return
        every = self.sim.config.heartbeat_s
        for conn in list(self.connections):
            if conn.muted or conn.closed:
                continue
            if not conn.subscribed_once:  # type: ignore[attr-defined]
                if now - conn.connected_at > SUBSCRIBE_DEADLINE_S:
                    conn.cut()
                continue
            if now < conn.next_heartbeat:  # type: ignore[attr-defined]
                continue
            conn.next_heartbeat = now + every  # type: ignore[attr-defined]
            self._heartbeats(conn)  # type: ignore[arg-type]
            conn.flush()

    def _heartbeats(self, conn: CoinbaseConnection) -> None:
        stamp = rfc3339(now_us())
        if conn.advanced:
            if conn.heartbeats:
                conn.heartbeat_counter += 1
                current = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()) + f".{time.time_ns() % 10**9:09d} +0000 UTC"
                uptime = time.monotonic() - conn.connected_at
                conn.send(conn.envelope("heartbeats", b'[{"current_time":"%s m=+%.9f","heartbeat_counter":%d}]' % (
                    current.encode(), uptime, conn.heartbeat_counter)))
                self.stats.heartbeats_sent += 1
            return
        for p in conn.heartbeat_products:
            market = self.markets[p]
            conn.send(b'{"type":"heartbeat","sequence":%d,"last_trade_id":%d,"product_id":"%s","time":"%s"}' % (
                self._sequence[p], market.next_id - 1, p.encode(), stamp.encode()))
            self.stats.heartbeats_sent += 1

    # -- trades ---------------------------------------------------------------------------------
    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        native = market.native
        places = self._decimals[native]
        stamp = rfc3339(now).encode()
        rng = self._rng
        tid, seq = market.next_id, self._sequence[native]
        frames = []
        taker = uuid4(rng)
        for i, (price, qty, taker_sell, market_order) in enumerate(fills):
            seq += 1 + int(rng.random() * 40)  # the full feed's messages in between
            if i and not market_order:
                taker = uuid4(rng)
            frames.append(
                b'{"type":"match","trade_id":%d,"maker_order_id":"%s","taker_order_id":"%s","side":"%s",'
                b'"size":"%s","price":"%s","product_id":"%s","sequence":%d,"time":"%s"}' % (
                    tid + i, uuid4(rng).encode(), taker.encode(), b"buy" if taker_sell else b"sell",
                    trimmed(qty).encode(), fixed(price, places).encode(), native.encode(), seq, stamp))
        market.next_id = tid + len(frames)
        self._sequence[native] = seq
        market.history.extend(frames)
        self._batch = (market, frames)
        return frames

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        m = _decode_match(frame)
        market.history.append(frame.replace(b'{"type":"last_match"', b'{"type":"match"', 1))
        market.next_id = m.trade_id + 1
        self._sequence[market.native] = m.sequence
        self._batch = (market, [frame])
        return 1

    @staticmethod
    def _advanced_trade(match: bytes) -> bytes:
        m = _decode_match(match)
        return b'{"trade_id":"%d","product_id":"%s","price":"%s","size":"%s","side":"%s","time":"%s"}' % (
            m.trade_id, m.product_id.encode(), m.price.encode(), m.size.encode(),
            b"BUY" if m.side == "sell" else b"SELL", m.time.encode())

    def deliver(self, market: Market, payloads: list[bytes], subscribers: Iterable[Connection]) -> None:
        framed = events = None
        for conn in subscribers:
            if conn.advanced:  # type: ignore[attr-defined]
                if events is None:
                    trades = b",".join(self._advanced_trade(p) for p in payloads)
                    events = b'[{"type":"update","trades":[' + trades + b"]}]"
                payload = conn.envelope("market_trades", events)  # type: ignore[attr-defined]
                conn.send_many([ws_frame(payload)], [payload])
            else:
                if framed is None:
                    framed = [ws_frame(p) for p in payloads]
                conn.send_many(framed, payloads)

    def error_event(self, conn: Connection) -> bytes:
        if conn.advanced:  # type: ignore[attr-defined]
            return b'{"type":"error","message":"internal error, please retry"}'
        return b'{"type":"error","message":"Internal server error","reason":"please retry"}'

    # -- REST -----------------------------------------------------------------------------------
    def http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        parts = [p for p in path.split("/") if p]
        if parts == ["time"]:
            now = time.time()
            return 200, {"iso": rfc3339(int(now * 1e6)), "epoch": round(now, 3)}
        if parts == ["products"]:
            return 200, [self._product(m) for m in self.markets.values()]
        if len(parts) == 2 and parts[0] == "products":
            market = self.markets.get(parts[1])
            return (200, self._product(market)) if market else (404, {"message": "NotFound"})
        if len(parts) == 3 and parts[0] == "products" and parts[2] == "trades":
            return self._trades(parts[1], query)
        if len(parts) == 3 and parts[0] == "products" and parts[2] == "candles":
            return self._candles(parts[1], query)
        if parts[:4] == ["api", "v3", "brokerage", "market"]:
            return self._advanced_http(parts[4:], query)
        return 404, {"message": "route not found"}

    def _product(self, m: Market) -> dict[str, Any]:
        inst = m.instrument
        return {"id": inst.native_symbol, "base_currency": inst.base, "quote_currency": inst.quote,
                "quote_increment": fixed(m.tick, self._decimals[inst.native_symbol]),
                "base_increment": "0.00000001", "display_name": f"{inst.base}-{inst.quote}",
                "min_market_funds": "1", "margin_enabled": False, "post_only": False, "limit_only": False,
                "cancel_only": False, "status": "online", "status_message": "", "trading_disabled": False,
                "fx_stablecoin": False, "max_slippage_percentage": "0.02000000", "auction_mode": False}

    def _history_range(self, native: str, query: dict[str, list[str]], limit: int) -> list[bytes] | None:
        history = list(self.markets[native].history)
        try:
            after = int(query["after"][0]) if query.get("after") else None
            before = int(query["before"][0]) if query.get("before") else None
        except ValueError:
            return None
        if after is not None:  # older than `after`: the page below it
            end = bisect.bisect_left(history, after, key=_trade_id)
            return history[max(0, end - limit):end]
        if before is not None:  # newer than `before`: the page right above it
            start = bisect.bisect_right(history, before, key=_trade_id)
            return history[start:start + limit]
        return history[-limit:]

    def _trades(self, native: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if native not in self.markets:
            return 404, {"message": "NotFound"}
        try:
            limit = max(1, min(1000, int((query.get("limit") or ["100"])[0])))
        except ValueError:
            return 400, {"message": "Invalid limit"}
        chosen = self._history_range(native, query, limit)
        if chosen is None:
            return 400, {"message": "Invalid pagination cursor"}
        out = []
        for payload in reversed(chosen):  # newest first
            m = _decode_match(payload)
            out.append({"time": m.time, "trade_id": m.trade_id, "price": m.price, "size": m.size, "side": m.side})
        return 200, out

    def _candles(self, native: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        """GET /products/{id}/candles?granularity=&start=&end=: [time, low, high, open, close, volume]
        as JSON numbers, newest first, buckets with start <= time <= end, at most 300."""
        market = self.markets.get(native)
        if market is None:
            return 404, {"message": "NotFound"}
        try:
            step = int((query.get("granularity") or ["60"])[0])
            start = _iso_us(query["start"][0]) if query.get("start") else None
            end = _iso_us(query["end"][0]) if query.get("end") else None
        except (ValueError, KeyError):
            return 400, {"message": "Invalid start or end"}
        if step not in (60, 300, 900, 3600, 21600, 86400):
            return 400, {"message": "Unsupported granularity"}
        step_us = step * 1_000_000
        end = end if end is not None else now_us()
        start = start if start is not None else end - 300 * step_us
        if (end - start) // step_us + 1 > 300:
            return 400, {"message": "granularity too small for the requested time range. Count of aggregations "
                                    "requested exceeds 300"}
        first = (start + step_us - 1) // step_us * step_us
        found = candles.served(self.sim, ((rfc3339_us(m.time), m.price, m.size, m.side == "sell")
                                          for m in map(_decode_match, market.history)), step_us, first, end + 1)
        n = candles.number
        return 200, [[c.start_us // 1_000_000, n(c.low), n(c.high), n(c.open), n(c.close), n(c.volume)]
                     for c in reversed(found)]

    def _advanced_http(self, parts: list[str], query: dict[str, list[str]]) -> tuple[int, Any]:
        if parts == ["products"]:
            products = [{"product_id": m.native, "price": "", "base_increment": "0.00000001",
                         "quote_increment": fixed(m.tick, self._decimals[m.native]), "base_currency_id": m.instrument.base,
                         "quote_currency_id": m.instrument.quote, "base_display_symbol": m.instrument.base,
                         "quote_display_symbol": m.instrument.quote, "product_type": "SPOT", "status": "online",
                         "trading_disabled": False, "is_disabled": False}
                        for m in self.markets.values()]
            return 200, {"products": products, "num_products": len(products)}
        if len(parts) == 3 and parts[0] == "products" and parts[2] == "ticker":
            market = self.markets.get(parts[1])
            if market is None:
                return 404, {"error": "NOT_FOUND", "message": "product not found"}
            try:
                limit = max(1, min(1000, int((query.get("limit") or ["100"])[0])))
                start = int(query["start"][0]) * 1_000_000 if query.get("start") else None
                end = int(query["end"][0]) * 1_000_000 if query.get("end") else None
            except ValueError:
                return 400, {"error": "INVALID_ARGUMENT", "message": "invalid start, end or limit"}
            chosen = []
            for payload in reversed(market.history):  # newest first, the newest `limit` of the window
                m = _decode_match(payload)
                t = rfc3339_us(m.time)
                if end is not None and t > end:
                    continue
                if start is not None and t < start:
                    break
                chosen.append({"trade_id": str(m.trade_id), "product_id": m.product_id, "price": m.price,
                               "size": m.size, "time": m.time, "side": "BUY" if m.side == "sell" else "SELL",
                               "bid": "", "ask": "", "exchange": "coinbase"})
                if len(chosen) >= limit:
                    break
            return 200, {"trades": chosen, "best_bid": "", "best_ask": ""}
        return 404, {"error": "NOT_FOUND", "message": "route not found"}


def _iso_us(text: str) -> int:
    """ISO 8601 (or epoch seconds) -> µs, as Coinbase reads start and end."""
    from datetime import datetime, timezone

    if text.isdigit():
        return int(text) * 1_000_000
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp()) * 1_000_000 + when.microsecond
