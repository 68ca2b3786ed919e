"""One client of the side-by-side run: K2's feed path or cryptofeed's FeedHandler, consuming the
simulator's trade stream for a fixed time on one core. Started by run.py, once per repetition,
pinned to CPU1 while the simulator runs on CPU0:

    taskset -c 1 python benchmarks/vs_cryptofeed.py k2|cryptofeed --exchange binance \
        --ws ws://127.0.0.1:PORT/stream --rest http://127.0.0.1:PORT --symbols BTCUSDT,ETHUSDT \
        --warmup 2 --seconds 10

Prints one JSON line: trades counted in the window, seconds, CPU seconds of this process in the
window (user + system, all threads), trades/s and CPU seconds per 1M trades.

K2: the real feed runtime (`k2.feed.runtime.FeedRuntime`: picows connection, the exchange
adapter's parser, the recent-trades window, gap tracking, per-symbol stats) handing rows to a
null transport that only counts them -- everything `k2 run` and `k2 feed` do before the transport.

cryptofeed: `FeedHandler` with cryptofeed's own exchange class, its endpoints pointed at the
simulator, and an async trades callback that only counts (cryptofeed's defaults otherwise: uvloop,
the websockets library, yapic JSON, Decimal prices, a `Trade` object per trade). Two adaptations,
read from cryptofeed's source (connection.py, exchanges/binance.py):
  * `WSAsyncConn` refuses any address that is not `wss://`; the simulator speaks plain `ws://`
    on loopback. The subclass passes a `wss://` address through cryptofeed's checks and rewrites
    it to `ws://` on the connection objects before they open (no TLS on either side).
  * cryptofeed's Binance TRADES channel is the `aggTrade` stream; the simulator (like K2) serves
    the raw `trade` stream. The subclass subscribes to `trade` and builds the same `Trade` object
    cryptofeed's `_trade` builds (the raw stream names the trade id `t` where aggTrade has `a`);
    parsing, symbol mapping and the callback path are cryptofeed's.
Kraken needs only the address change: cryptofeed's Kraken class reads the v1 `trade` channel.
The five other venues: cryptofeed's own classes with their endpoints pointed at the simulator and
their symbol tables given directly (`Symbols.set`, the table its REST parsing would build: the
simulator's instrument lists are K2's, not every shape cryptofeed reads); their message handlers
are cryptofeed's, with two venue notes:
  * Coinbase: cryptofeed reads Advanced Trade (`market_trades`), so K2 runs its Advanced Trade
    adapter (`api = "advanced"`) on the simulator's `/advanced` stream: the same bytes for both.
    cryptofeed skips the trades of the snapshot that follows a subscription (K2 keeps them).
  * Bitfinex: cryptofeed asks for sequence numbers (`conf` SEQ_ALL) and checks them on every
    message; the simulator does not append them, so the subclass's handler is cryptofeed's
    without that check (cryptofeed does slightly less work than it would live).
  * Gemini: cryptofeed gives the trades of a symbol's first `l2_updates` message to its book
    handler, not as trades (K2 keeps them); the live stream is one trade per message after that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def cpu_now() -> float:
    """CPU seconds of this process, all threads, at the clock's resolution (os.times counts 10 ms
    ticks: too coarse for the low-rate cases)."""
    return time.process_time()


class Window:
    """Counts trades; the main thread reads the counter at the window's edges."""

    def __init__(self) -> None:
        self.count = 0
        self.frames = 0  # K2 only: frames that brought new trades


def measure(win: Window, warmup: float, seconds: float, first_timeout: float = 30.0) -> dict:
    """Run in a thread beside the client's event loop: wait for the first trade, warm up, then
    time the window."""
    deadline = time.monotonic() + first_timeout
    while win.count == 0:
        if time.monotonic() > deadline:
            return {"error": "no trade received"}
        time.sleep(0.05)
    time.sleep(warmup)
    c0, n0, f0, t0, o0 = cpu_now(), win.count, win.frames, time.perf_counter(), os.times()
    time.sleep(seconds)
    c1, n1, f1, t1, o1 = cpu_now(), win.count, win.frames, time.perf_counter(), os.times()
    trades, dt, cpu = n1 - n0, t1 - t0, c1 - c0
    return {"trade_frames": f1 - f0, "trades": trades, "seconds": round(dt, 3), "cpu_s": round(cpu, 3),
            "user_s": round(o1.user - o0.user, 2), "system_s": round(o1.system - o0.system, 2),
            "trades_per_s": round(trades / dt, 1), "cpu_share": round(cpu / dt, 3),
            "cpu_s_per_1m": round(cpu / trades * 1e6, 2) if trades else None}


# -- K2 --------------------------------------------------------------------------------------------
class NullTransport:
    name = "null"

    def __init__(self, win: Window):
        self.win = win
        self.rejects = 0
        self.buffered = 0

    def set_pause_callback(self, callback) -> None:
        pass

    def submit(self, adapter, rows, source: str = "ws") -> None:
        self.win.count += len(rows)
        self.win.frames += 1


class LatencyTransport(NullTransport):
    """NullTransport that also keeps each frame's delay (BENCH_LATENCY=1): when K2 handled it (the
    row's receipt time, taken after any read coalescing) minus the venue's time of its last trade
    (the simulator stamps a trade when it makes it). Not used for the CPU figures."""

    def __init__(self, win: Window):
        super().__init__(win)
        self.delays_us: list[int] = []

    def submit(self, adapter, rows, source: str = "ws") -> None:
        super().submit(adapter, rows, source)
        if self.win.count:
            self.delays_us.append(rows[-1][-1] - adapter.row_time_us(rows[-1]))

    def submit_reject(self, reject) -> None:
        self.rejects += 1

    def start(self, loop=None):
        return self

    def close(self, timeout=None) -> None:
        pass


def run_k2(args, win: Window) -> dict:
    from k2.config import Settings
    from k2.feed.runtime import FeedRuntime
    from k2.services.lifecycle import tune_gc_for_streaming

    over = {"ws_url": args.ws, "rest_url": args.rest}
    if args.exchange == "coinbase":  # cryptofeed's Coinbase is Advanced Trade: the same stream for both
        over["api"] = "advanced"
    settings = Settings(exchanges=[args.exchange], symbols=args.symbols.split(","), backfill=False,
                        exchange_overrides={args.exchange: over})
    if os.environ.get("BENCH_READ_COALESCE_MS"):  # A/B of the setting; otherwise K2's default
        settings.feed_read_coalesce_ms = float(os.environ["BENCH_READ_COALESCE_MS"])
    transport = LatencyTransport(win) if os.environ.get("BENCH_LATENCY") else NullTransport(win)
    result: dict = {}

    async def main() -> None:
        runtime = FeedRuntime(settings, transport, [args.exchange])
        await runtime.plan()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        result.update(await asyncio.to_thread(measure, win, args.warmup, args.seconds))
        stop.set()
        await asyncio.wait([task], timeout=5)
        result["duplicates"] = sum(c.stats.duplicates for c in runtime.connections)
        result["frames"] = sum(c.stats.frames for c in runtime.connections)
        result["read_holds"] = sum(c.holds for c in runtime.connections)

    tune_gc_for_streaming()  # as `k2 run` and `k2 feed` do before their event loop
    if os.environ.get("BENCH_UVLOOP"):
        import uvloop
        uvloop.run(main())
    else:
        asyncio.run(main())
    result["rejects"] = transport.rejects
    if isinstance(transport, LatencyTransport) and transport.delays_us:
        d = sorted(transport.delays_us[len(transport.delays_us) // 5:])  # after the warm-up
        result["frame_delay_ms"] = {q: round(d[min(len(d) - 1, int(len(d) * f))] / 1000, 2)
                                    for q, f in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))}
    return result


# -- cryptofeed ------------------------------------------------------------------------------------
def run_cryptofeed(args, win: Window) -> dict:
    from decimal import Decimal

    from cryptofeed import FeedHandler
    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
    from cryptofeed.defines import BUY, SELL, TRADES
    from cryptofeed.exchanges import Binance, Kraken
    from cryptofeed.types import Trade
    from yapic import json as yjson

    ws_tls = "wss://" + args.ws.split("://", 1)[1]  # passes cryptofeed's wss-only check; see connect()

    class PlainWs:
        def connect(self):
            conns = super().connect()
            for conn, *_ in conns:
                if hasattr(conn, "address") and isinstance(conn.address, str) and conn.address.startswith("wss://"):
                    conn.address = "ws://" + conn.address[len("wss://"):]
            return conns

    if args.exchange == "binance":
        base = ws_tls.rsplit("/stream", 1)[0]

        class SimBinance(PlainWs, Binance):
            websocket_endpoints = [WebsocketEndpoint(base)]
            rest_endpoints = [RestEndpoint(args.rest, routes=Routes("/api/v3/exchangeInfo"))]
            websocket_channels = {**Binance.websocket_channels, TRADES: "trade"}

            async def message_handler(self, msg, conn, timestamp):
                # cryptofeed's Binance.message_handler, for the raw `trade` event instead of aggTrade
                msg = yjson.loads(msg, parse_float=Decimal)
                pair, _ = msg["stream"].split("@", 1)
                msg = msg["data"]
                if msg.get("e") == "trade":
                    t = Trade(self.id, self.exchange_symbol_to_std_symbol(msg["s"]), SELL if msg["m"] else BUY,
                              Decimal(msg["q"]), Decimal(msg["p"]), self.timestamp_normalize(msg["T"]),
                              id=str(msg["t"]), raw=msg)
                    await self.callback(TRADES, t, timestamp)
                else:
                    await super().message_handler(yjson.dumps({"stream": f"{pair}@x", "data": msg}), conn, timestamp)

        feed_cls = SimBinance
        symbols = [_binance_std(s) for s in args.symbols.split(",")]
    elif args.exchange == "kraken":
        class SimKraken(PlainWs, Kraken):
            websocket_endpoints = [WebsocketEndpoint(ws_tls, limit=20)]
            rest_endpoints = [RestEndpoint(args.rest, routes=Routes("/0/public/AssetPairs"))]

        feed_cls = SimKraken
        symbols = [s.replace("XBT", "BTC").replace("XDG", "DOGE").replace("/", "-") for s in args.symbols.split(",")]
    else:
        feed_cls, symbols = _other_venue(args.exchange, ws_tls, args.rest, args.symbols.split(","), PlainWs)

    async def on_trade(trade, receipt_timestamp):
        win.count += 1

    config = {"log": {"disabled": True}}
    if args.exchange == "coinbase":  # cryptofeed signs every Coinbase subscription; the simulator ignores it
        config["coinbase"] = {"key_id": "k2-bench", "key_secret": "k2-bench"}
    fh = FeedHandler(config=config)
    fh.add_feed(feed_cls(symbols=symbols, channels=[TRADES], callbacks={TRADES: on_trade}, config=config))
    result: dict = {}

    def watch() -> None:
        result.update(measure(win, args.warmup, args.seconds))
        os._exit(_print(args, result))  # cryptofeed's shutdown is slow and irrelevant here

    threading.Thread(target=watch, daemon=True).start()
    fh.run(install_signal_handlers=False)
    return result


def _other_venue(exchange: str, ws_tls: str, rest: str, natives: list[str], plain_ws) -> tuple[type, list[str]]:
    """cryptofeed's class for Coinbase, Bybit, OKX, Bitfinex or Gemini, pointed at the simulator,
    with its symbol table set directly; returns the class and cryptofeed's symbol names."""
    from decimal import Decimal

    from cryptofeed.connection import RestEndpoint, Routes, WebsocketEndpoint
    from cryptofeed.defines import SPOT
    from cryptofeed.exchanges import Bitfinex, Bybit, Coinbase, Gemini, OKX
    from cryptofeed.symbols import Symbol, Symbols
    from yapic import json as yjson

    std = {n: _std_symbol(exchange, n) for n in natives}
    base = {"coinbase": Coinbase, "bybit": Bybit, "okx": OKX, "bitfinex": Bitfinex, "gemini": Gemini}[exchange]
    attrs = {"websocket_endpoints": [WebsocketEndpoint(ws_tls, options={"compression": None})],
             "rest_endpoints": [RestEndpoint(rest, routes=Routes("/unused"))]}
    if exchange == "bitfinex":
        async def message_handler(self, msg, conn, timestamp):
            # cryptofeed's Bitfinex.message_handler without the sequence-number check (see the top)
            msg = yjson.loads(msg, parse_float=Decimal)
            if isinstance(msg, list):
                handler = self.handlers.get(msg[0])
                if handler is None or msg[1] == "hb":
                    return
                await handler(msg, timestamp)
            elif "chanId" in msg and "symbol" in msg:
                self.register_channel_handler(msg, conn)

        attrs["message_handler"] = message_handler
    cls = type(f"Sim{base.__name__}", (plain_ws, base), attrs)
    symbols = [Symbol(*std[n].split("-"), type=SPOT) for n in natives]
    # Bybit's table names spot pairs BASE/QUOTE (its spot and perpetual symbols share names)
    names = [f"{s.base}/{s.quote}" for s in symbols] if exchange == "bybit" else natives
    Symbols.set(cls.id, {s.normalized: n for s, n in zip(symbols, names)},
                {"instrument_type": {s.normalized: SPOT for s in symbols},
                 "tick_size": {s.normalized: "0.01" for s in symbols}})
    return cls, [s.normalized for s in symbols]


def _std_symbol(exchange: str, native: str) -> str:
    """A native symbol of the simulator's default set as cryptofeed writes it (BASE-QUOTE)."""
    if exchange in ("coinbase", "okx"):
        return native
    if exchange == "bitfinex":
        pair = native[1:]
        b, q = (pair.split(":") if ":" in pair else (pair[:-3], pair[-3:]))
        return f"{b}-{'USDT' if q == 'UST' else q}"
    return _binance_std(native)  # Bybit, Gemini: BTCUSDT, ETHBTC


def _binance_std(native: str) -> str:
    for q in ("USDT", "USDC", "FDUSD", "BTC", "ETH", "EUR", "TRY", "BRL", "JPY", "DAI", "BNB", "USD"):
        if native.endswith(q) and len(native) > len(q):
            return f"{native[:-len(q)]}-{q}"
    return native


def _print(args, result: dict) -> int:
    result.update({"client": args.client, "exchange": args.exchange})
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if "error" not in result else 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("client", choices=("k2", "cryptofeed"))
    ap.add_argument("--exchange", choices=("binance", "kraken", "coinbase", "bybit", "okx", "bitfinex", "gemini"),
                    default="binance")
    ap.add_argument("--ws", required=True)
    ap.add_argument("--rest", required=True)
    ap.add_argument("--symbols", required=True)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    if args.exchange == "coinbase" and not args.ws.rstrip("/").endswith("/advanced"):
        args.ws = args.ws.rstrip("/") + "/advanced"  # the Advanced Trade stream, for both clients
    win = Window()
    if args.client == "k2":
        result = run_k2(args, win)
    else:
        result = run_cryptofeed(args, win)
    os._exit(_print(args, result))


if __name__ == "__main__":
    main()
