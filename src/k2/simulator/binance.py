"""Simulated Binance spot: the `<symbol>@trade` streams and the REST calls K2 uses.

  raw       ws://HOST:PORT/ws/btcusdt@trade   (or /ws, then SUBSCRIBE)
  combined  ws://HOST:PORT/stream?streams=btcusdt@trade/ethusdt@trade   (or /stream + SUBSCRIBE)
  -> {"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}
  <- {"result":null,"id":1}
  <- {"e":"trade","E":1784116800123,"s":"BTCUSDT","t":5123456789,"p":"97512.34000000",
      "q":"0.00120000","T":1784116800122,"m":true,"M":true}
     (combined: {"stream":"btcusdt@trade","data":{...}})
  <- {"e":"serverShutdown","E":1784200000000} before the 24 h cut (combined: "!serverShutdown")
  REST  GET /api/v3/exchangeInfo[?symbol=|symbols=[..]]   /api/v3/trades?symbol=&limit=
        GET /api/v3/historicalTrades?symbol=&fromId=&limit=   /api/v3/time   /api/v3/ping
        GET /api/v3/klines?symbol=&interval=1m|1h|1d&startTime=&endTime=&limit=  (weight 2)
        <- [[openTime, "open", "high", "low", "close", "volume", closeTime, "quoteVolume", trades,
             "takerBuyBaseVolume", "takerBuyQuoteVolume", "0"], ...] oldest first, 500 (max 1000)

As on the real service: stream names are lowercase; unknown streams are acknowledged and stay
silent; a protocol ping goes out every 20 s and a client that does not pong within a minute is
cut; more than 5 incoming messages a second closes the connection; `t` counts up by one per
trade and symbol. REST serves the last `history_size` trades per symbol.
"""

from __future__ import annotations

import bisect
import math
import random
import time
from decimal import Decimal
from typing import Any, Iterable

import msgspec

from k2.simulator import candles
from k2.simulator.engine import Fill, Market
from k2.simulator.history import DAY_US, BinanceHistory, day_of, day_start_us
from k2.simulator.server import Connection, Venue, decode_json, encode_json, now_us, ws_frame

_METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"]


class _RestTrade(msgspec.Struct):
    t: int
    p: str
    q: str
    T: int
    m: bool


_decode_rest_trade = msgspec.json.Decoder(_RestTrade).decode


def _trade_id(frame: bytes) -> int:
    return _decode_rest_trade(frame).t


def tick_rule(mid: float) -> float:
    """About seven significant digits (BTCUSDT 0.01), never finer than 1e-8."""
    return min(1.0, max(1e-8, 10.0 ** (math.floor(math.log10(mid)) - 6)))


def lot_rule(base_usd: float) -> float:
    """A step worth about one dollar or less (BTC 0.00001, ETH 0.0001, DOGE 1)."""
    return min(1.0, max(1e-8, 10.0 ** math.floor(math.log10(1.0 / base_usd))))


def first_id(rng: random.Random, weight: float) -> int:
    """Busy symbols have traded billions of times (BTCUSDT is past 5e9)."""
    return rng.randrange(int(4e8 * weight), int(6e8 * weight))


def _dec(x: float) -> str:
    return "%.8f" % x


class BinanceConnection(Connection):
    def __init__(self, venue: "BinanceVenue", path: str, combined: bool):
        super().__init__(venue, path)
        self.combined = combined
        self.streams: list[str] = []  # in subscription order, for LIST_SUBSCRIPTIONS
        self.window_start = 0.0
        self.window_count = 0


class BinanceVenue(Venue):
    name = "binance"
    sends_pings = True
    ages_out = True

    def __init__(self, sim, port: int, markets: dict[str, Market]):
        super().__init__(sim, port, markets)
        cfg = sim.config
        #: the past of each market (config.history_days), ids running into the live ones
        self.histories: dict[str, BinanceHistory] = {}
        if getattr(cfg, "history_days", 0):
            end_us = now_us() // 1000 * 1000
            for n, m in markets.items():
                self.histories[n] = BinanceHistory(cfg.seed, n, m.instrument.base, m.instrument.quote, m.next_id,
                                                   end_us, cfg.history_days, cfg.history_trades_per_day)
        self.weight_used, self.weight_window, self.rest_429s, self.rest_418s = 0, -1, 0, 0
        self._violations, self._banned_until = 0, 0.0
        self._stream_to_native = {f"{n.lower()}@trade": n for n in markets}
        self._trade_format = {
            n: b'{"e":"trade","E":%d,"s":"' + n.encode() + b'","t":%d,"p":"%.8f","q":"%.8f","T":%d,"m":%s,"M":true}'
            for n in markets
        }
        self._combined_prefix = {n: b'{"stream":"' + n.lower().encode() + b'@trade","data":' for n in markets}

    # -- WebSocket ------------------------------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        return {"ws": f"ws://{address}/stream", "rest": f"http://{address}"}

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        if path == "/stream" or path == "/stream/":
            streams = [s for v in query.get("streams", []) for s in v.split("/") if s]
            conn = BinanceConnection(self, path, combined=True)
        elif path == "/ws" or path.startswith("/ws/"):
            streams = [s for s in path[4:].split("/") if s]
            conn = BinanceConnection(self, path, combined=False)
        else:
            return None
        conn.streams = list(dict.fromkeys(streams))
        return conn

    def on_connect(self, conn: BinanceConnection) -> None:  # type: ignore[override]
        for stream in conn.streams:
            self._subscribe_stream(conn, stream)

    def _subscribe_stream(self, conn: BinanceConnection, stream: str) -> None:
        native = self._stream_to_native.get(stream)
        if native is not None:
            self.subscribe(conn, native)

    def rate_limited(self, conn: BinanceConnection, now: float) -> bool:  # type: ignore[override]
        limit = self.sim.config.binance_max_messages_per_s
        if not limit:
            return False
        if now - conn.window_start >= 1.0:
            conn.window_start, conn.window_count = now, 0
        conn.window_count += 1
        return conn.window_count > limit

    def on_message(self, conn: BinanceConnection, message: bytes) -> None:  # type: ignore[override]
        try:
            request = decode_json(message)
        except msgspec.DecodeError as exc:
            return self._reply(conn, error=(3, f"Invalid JSON: {exc}"))
        if not isinstance(request, dict):
            return self._reply(conn, error=(2, "Invalid request: expected a JSON object"))
        rid = request.get("id")
        if not (rid is None or (type(rid) is int and rid >= 0)
                or (isinstance(rid, str) and len(rid) <= 36 and rid.isalnum())):
            return self._reply(conn, error=(2, "Invalid request: request ID must be an unsigned integer"))
        method, params = request.get("method"), request.get("params")
        if method is None:
            return self._reply(conn, rid, error=(2, "Invalid request: missing field `method`"))
        if method not in _METHODS:
            expected = ", ".join(f"`{m}`" for m in _METHODS)
            message = f"Invalid request: unknown variant `{method}`, expected one of {expected}"
            return self._reply(conn, rid, error=(2, message))
        if method == "LIST_SUBSCRIPTIONS":
            return self._reply(conn, rid, list(conn.streams))
        if not isinstance(params, list):
            return self._reply(conn, rid, error=(2, "Invalid request: `params` must be an array"))
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not all(isinstance(p, str) for p in params):
                return self._reply(conn, rid, error=(2, "Invalid request: stream names must be strings"))
            for stream in params:
                if method == "SUBSCRIBE" and stream not in conn.streams:
                    conn.streams.append(stream)
                    self._subscribe_stream(conn, stream)
                elif method == "UNSUBSCRIBE" and stream in conn.streams:
                    conn.streams.remove(stream)
                    native = self._stream_to_native.get(stream)
                    if native is not None:
                        self.unsubscribe(conn, native)
            return self._reply(conn, rid, None)
        if not params or params[0] != "combined":
            return self._reply(conn, rid, error=(0, "Unknown property"))
        if method == "GET_PROPERTY":
            return self._reply(conn, rid, conn.combined)
        if len(params) != 2 or not isinstance(params[1], bool):
            return self._reply(conn, rid, error=(1, "Invalid value type: expected Boolean"))
        conn.combined = params[1]
        return self._reply(conn, rid, None)

    @staticmethod
    def _reply(conn: Connection, rid: Any = None, result: Any = None, error: tuple[int, str] | None = None) -> None:
        if error:
            conn.send(encode_json({"code": error[0], "msg": error[1], "id": rid}))
        else:
            conn.send(encode_json({"result": result, "id": rid}))

    # -- trades ---------------------------------------------------------------------------------
    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        ms = now // 1000
        fmt = self._trade_format[market.native]
        tid = market.next_id
        frames = [fmt % (ms, tid + i, f[0], f[1], ms, b"true" if f[2] else b"false") for i, f in enumerate(fills)]
        market.next_id = tid + len(frames)
        market.history.extend(frames)
        return frames

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        market.history.append(frame)
        market.next_id = _trade_id(frame) + 1
        return 1

    def deliver(self, market: Market, payloads: list[bytes], subscribers: Iterable[Connection]) -> None:
        raw_framed = combined = combined_framed = None
        for conn in subscribers:
            if conn.combined:  # type: ignore[attr-defined]
                if combined is None:
                    prefix = self._combined_prefix[market.native]
                    combined = [prefix + p + b"}" for p in payloads]
                    combined_framed = [ws_frame(c) for c in combined]
                conn.send_many(combined_framed, combined)
            else:
                if raw_framed is None:
                    raw_framed = [ws_frame(p) for p in payloads]
                conn.send_many(raw_framed, payloads)

    def shutdown_event(self, conn: Connection) -> bytes:
        event = b'{"e":"serverShutdown","E":%d}' % (now_us() // 1000)
        if conn.combined:  # type: ignore[attr-defined]
            return b'{"stream":"!serverShutdown","data":' + event + b"}"
        return event

    def error_event(self, conn: Connection) -> bytes:
        return b'{"code":-1001,"msg":"Internal error; unable to process your request. Please try again.","id":null}'

    # -- REST -----------------------------------------------------------------------------------
    #: request weight per endpoint (Binance spot REST)
    WEIGHTS = {"/api/v3/historicalTrades": 25, "/api/v3/trades": 25, "/api/v3/exchangeInfo": 20,
               "/api/v3/klines": 2}

    def http(self, path: str, query: dict[str, list[str]]) -> tuple:
        """REST with Binance's request-weight limit: weight per IP and minute (a fixed window that
        restarts every minute); past it 429 with Retry-After, and a client that goes on asking
        within the window is banned with 418 (2 minutes on the real venue)."""
        cfg = self.sim.config
        limit = getattr(cfg, "rest_weight_limit", 0)
        if not limit:
            return self._http(path, query)
        now = time.time()
        window = int(now // cfg.rest_window_s)
        if window != self.weight_window:
            self.weight_window, self.weight_used, self._violations = window, 0, 0
        retry = max(1, math.ceil((window + 1) * cfg.rest_window_s - now))
        if now < self._banned_until:
            self.rest_418s += 1
            return 418, {"code": -1003, "msg": "Way too much request weight used; IP banned until "
                         f"{int(self._banned_until * 1000)}."}, {"Retry-After": str(math.ceil(self._banned_until - now))}
        weight = self.WEIGHTS.get(path, 1)
        if self.weight_used + weight > limit:
            self.rest_429s += 1
            self._violations += 1
            if self._violations > 3:
                self._banned_until = now + 2 * cfg.rest_window_s
            return 429, {"code": -1003, "msg": "Too much request weight used; current limit is "
                         f"{limit} request weight per {cfg.rest_window_s:g} s."}, {"Retry-After": str(retry)}
        self.weight_used += weight
        status, body = self._http(path, query)
        return status, body, {"X-MBX-USED-WEIGHT-1M": str(self.weight_used)}

    def _http(self, path: str, query: dict[str, list[str]]) -> tuple[int, Any]:
        if path == "/api/v3/ping":
            return 200, {}
        if path == "/api/v3/time":
            return 200, {"serverTime": now_us() // 1000}
        if path == "/api/v3/exchangeInfo":
            return self._exchange_info(query)
        if path in ("/api/v3/trades", "/api/v3/historicalTrades"):
            return self._trades(query, historical=path.endswith("historicalTrades"))
        if path == "/api/v3/klines":
            return self._klines(query)
        return 404, {"code": -1, "msg": f"Unknown endpoint {path}"}

    def _exchange_info(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        wanted: list[str] | None = None
        if query.get("symbol"):
            wanted = [query["symbol"][0]]
        elif query.get("symbols"):
            try:
                wanted = decode_json(query["symbols"][0])
                assert isinstance(wanted, list) and all(isinstance(s, str) for s in wanted)
            except (msgspec.DecodeError, AssertionError):
                return 400, {"code": -1100, "msg": "Illegal characters found in parameter 'symbols'."}
        if wanted is not None and any(s not in self.markets for s in wanted):
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        markets = [self.markets[s] for s in wanted] if wanted is not None else list(self.markets.values())
        return 200, {
            "timezone": "UTC",
            "serverTime": now_us() // 1000,
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [self._symbol_info(m) for m in markets],
        }

    @staticmethod
    def _symbol_info(m: Market) -> dict[str, Any]:
        inst = m.instrument
        return {
            "symbol": inst.native_symbol, "status": "TRADING",
            "baseAsset": inst.base, "baseAssetPrecision": 8,
            "quoteAsset": inst.quote, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": _ORDER_TYPES, "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": True, "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": _dec(m.tick), "maxPrice": "1000000.00000000",
                 "tickSize": _dec(m.tick)},
                {"filterType": "LOT_SIZE", "minQty": _dec(m.lot), "maxQty": "9000000.00000000",
                 "stepSize": _dec(m.lot)},
            ],
            "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _trades(self, query: dict[str, list[str]], historical: bool) -> tuple[int, Any]:
        symbol = (query.get("symbol") or [""])[0]
        if not symbol:
            return 400, {"code": -1102,
                         "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."}
        market = self.markets.get(symbol)
        if market is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        try:
            limit = int((query.get("limit") or ["500"])[0])
            from_id = int(query["fromId"][0]) if historical and query.get("fromId") else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if limit < 1:
            return 400, {"code": -1100, "msg": "Illegal characters found in parameter 'limit'."}
        limit = min(limit, 1000)
        past = self.histories.get(symbol)
        if from_id is not None and past is not None and from_id < past.end_id:
            # the days before the start, then on into the live trades
            out = [{"id": t[0], "price": t[1], "qty": t[2], "quoteQty": _quote_qty(t[1], t[2]),
                    "time": t[3] // 1000, "isBuyerMaker": t[4], "isBestMatch": True}
                   for t in past.trades_from_id(from_id, limit)]
            if len(out) < limit:
                out += self._live_trades(market, past.end_id, limit - len(out))
            return 200, out
        if from_id is None and past is not None and not market.history:
            return 200, [{"id": t[0], "price": t[1], "qty": t[2], "quoteQty": _quote_qty(t[1], t[2]),
                          "time": t[3] // 1000, "isBuyerMaker": t[4], "isBestMatch": True}
                         for t in past.trades_from_id(past.end_id - limit, limit)]
        return 200, self._live_trades(market, from_id, limit)

    KLINE_INTERVALS_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "1d": 86_400_000}

    def _klines(self, query: dict[str, list[str]]) -> tuple[int, Any]:
        """Candles from this venue's own trades (the past days and the live trades REST keeps):
        windows with openTime in [startTime, endTime], oldest first, at most `limit` (default
        500, max 1000); without startTime the newest ones. Prices and volumes with 8 decimals,
        as Binance prints them; windows without trades are left out."""
        symbol = (query.get("symbol") or [""])[0]
        market = self.markets.get(symbol)
        if market is None:
            return 400, {"code": -1121, "msg": "Invalid symbol."}
        step_ms = self.KLINE_INTERVALS_MS.get((query.get("interval") or [""])[0])
        if step_ms is None:
            return 400, {"code": -1120, "msg": "Invalid interval."}
        try:
            limit = int((query.get("limit") or ["500"])[0])
            start_ms = int(query["startTime"][0]) if query.get("startTime") else None
            end_ms = int(query["endTime"][0]) if query.get("endTime") else None
        except ValueError:
            return 400, {"code": -1100, "msg": "Illegal characters found in a parameter."}
        if not 1 <= limit <= 1000:
            return 400, {"code": -1130, "msg": "Invalid data sent for a parameter."}
        step_us = step_ms * 1000
        now = now_us()
        until_us = (end_ms * 1000 + 1) if end_ms is not None else now + step_us
        since_us = start_ms * 1000 if start_ms is not None else until_us - limit * step_us
        since_us = (since_us + step_us - 1) // step_us * step_us  # the first window starting at or after
        until_us = min(until_us, since_us + limit * step_us)
        found = candles.build(self._trades_between(symbol, market, since_us, until_us), step_us, since_us, until_us)
        candles.skew(found, self.sim, step_us)
        chosen = sorted(found.values(), key=lambda c: c.start_us)
        if start_ms is None:
            chosen = chosen[-limit:]
        return 200, [
            [c.start_us // 1000, f"{c.open:.8f}", f"{c.high:.8f}", f"{c.low:.8f}", f"{c.close:.8f}",
             f"{c.volume:.8f}", c.start_us // 1000 + step_ms - 1, candles.places(c.quote_volume, 8), c.count,
             f"{c.buy_volume:.8f}", candles.places(c.buy_quote_volume, 8), "0"]
            for c in chosen[:limit]]

    def _trades_between(self, symbol: str, market: Market, since_us: int, until_us: int):
        """(time_us, price, qty, taker_buy) of every trade in [since_us, until_us), in id order."""
        past = self.histories.get(symbol)
        if past is not None and since_us < past.end_us:
            day = day_start_us(day_of(max(since_us, day_start_us(past.days[0]))))
            while day < min(until_us, past.end_us):
                if day_of(day) in past.days:
                    for _id, price, qty, t_us, buyer_maker in past.trades_of_day(day_of(day)):
                        if since_us <= t_us < until_us:
                            yield t_us, price, qty, not buyer_maker
                day += DAY_US
        history = list(market.history)
        start = bisect.bisect_left(history, since_us // 1000, key=lambda f: _decode_rest_trade(f).T)
        for frame in history[start:]:
            t = _decode_rest_trade(frame)
            if t.T * 1000 >= until_us:
                break
            yield t.T * 1000, t.p, t.q, not t.m

    @staticmethod
    def _live_trades(market: Market, from_id: int | None, limit: int) -> list[dict[str, Any]]:
        history = list(market.history)
        if from_id is None:
            chosen = history[-limit:]
        else:
            # ids rise along the history; an id older than it starts at the oldest kept
            start = bisect.bisect_left(history, from_id, key=_trade_id)
            chosen = history[start:start + limit]
        return [_rest_trade(p) for p in chosen]


def _quote_qty(price: str, qty: str) -> str:
    return format((Decimal(price) * Decimal(qty)).normalize(), "f")


def _rest_trade(payload: bytes) -> dict[str, Any]:
    t = _decode_rest_trade(payload)
    quote_qty = Decimal(t.p) * Decimal(t.q)
    return {"id": t.t, "price": t.p, "qty": t.q, "quoteQty": format(quote_qty.normalize(), "f"),
            "time": t.T, "isBuyerMaker": t.m, "isBestMatch": True}
