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
    t = os.times()
    return t.user + t.system


class Window:
    """Counts trades; the main thread reads the counter at the window's edges."""

    def __init__(self) -> None:
        self.count = 0


def measure(win: Window, warmup: float, seconds: float, first_timeout: float = 30.0) -> dict:
    """Run in a thread beside the client's event loop: wait for the first trade, warm up, then
    time the window."""
    deadline = time.monotonic() + first_timeout
    while win.count == 0:
        if time.monotonic() > deadline:
            return {"error": "no trade received"}
        time.sleep(0.05)
    time.sleep(warmup)
    c0, n0, t0 = cpu_now(), win.count, time.perf_counter()
    time.sleep(seconds)
    c1, n1, t1 = cpu_now(), win.count, time.perf_counter()
    trades, dt, cpu = n1 - n0, t1 - t0, c1 - c0
    return {"trades": trades, "seconds": round(dt, 3), "cpu_s": round(cpu, 3),
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

    settings = Settings(exchanges=[args.exchange], symbols=args.symbols.split(","), backfill=False,
                        exchange_overrides={args.exchange: {"ws_url": args.ws, "rest_url": args.rest}})
    transport = NullTransport(win)
    result: dict = {}

    async def main() -> None:
        runtime = FeedRuntime(settings, transport, [args.exchange])
        await runtime.plan()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        result.update(await asyncio.to_thread(measure, win, args.warmup, args.seconds))
        stop.set()
        await asyncio.wait([task], timeout=5)

    tune_gc_for_streaming()  # as `k2 run` and `k2 feed` do before their event loop
    asyncio.run(main())
    result["rejects"] = transport.rejects
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
    else:
        class SimKraken(PlainWs, Kraken):
            websocket_endpoints = [WebsocketEndpoint(ws_tls, limit=20)]
            rest_endpoints = [RestEndpoint(args.rest, routes=Routes("/0/public/AssetPairs"))]

        feed_cls = SimKraken
        symbols = [s.replace("XBT", "BTC").replace("XDG", "DOGE").replace("/", "-") for s in args.symbols.split(",")]

    async def on_trade(trade, receipt_timestamp):
        win.count += 1

    fh = FeedHandler(config={"log": {"disabled": True}})
    fh.add_feed(feed_cls(symbols=symbols, channels=[TRADES], callbacks={TRADES: on_trade}))
    result: dict = {}

    def watch() -> None:
        result.update(measure(win, args.warmup, args.seconds))
        os._exit(_print(args, result))  # cryptofeed's shutdown is slow and irrelevant here

    threading.Thread(target=watch, daemon=True).start()
    fh.run(install_signal_handlers=False)
    return result


def _binance_std(native: str) -> str:
    for q in ("USDT", "USDC", "FDUSD", "BTC", "ETH", "EUR", "TRY", "BRL", "JPY", "DAI", "BNB"):
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
    ap.add_argument("--exchange", choices=("binance", "kraken"), default="binance")
    ap.add_argument("--ws", required=True)
    ap.add_argument("--rest", required=True)
    ap.add_argument("--symbols", required=True)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    win = Window()
    if args.client == "k2":
        result = run_k2(args, win)
    else:
        result = run_cryptofeed(args, win)
    os._exit(_print(args, result))


if __name__ == "__main__":
    main()
