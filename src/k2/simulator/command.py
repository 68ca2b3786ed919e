"""`k2 simulate`: run the simulated exchanges until --duration ends or SIGINT/SIGTERM.

Prints one JSON line with the URLs on stdout (also written to --ready-file), hints on stderr:
    {"binance":{"ws":"ws://127.0.0.1:8765/stream","rest":"http://127.0.0.1:8765"},
     "kraken":{"ws":"ws://127.0.0.1:8766/","ws_v2":"ws://127.0.0.1:8766/v2","rest":"http://127.0.0.1:8766"}}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
from pathlib import Path

from k2.errors import K2Error


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", default="all", help="a comma list (binance,kraken,coinbase,bybit,okx,bitfinex,gemini) or all (default)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765,
                   help="first port: exchange i of binance, kraken, coinbase, bybit, okx, bitfinex, gemini "
                        "listens on PORT+i; 0 = free ports")
    p.add_argument("--rate", type=float, default=100.0,
                   help="trades per second per exchange (with --replay: frames per second)")
    p.add_argument("--seed", type=int, default=1, help="seed of the market (prices, sizes, sides)")
    p.add_argument("--symbols", nargs="+", metavar="SYMBOL",
                   help="only these markets (BTC/USD or native names, comma or space separated)")
    p.add_argument("--duration", type=float, help="stop after this many seconds (default: run until stopped)")
    p.add_argument("--replay", help="send the trade frames of this file (k2 load format) instead")
    p.add_argument("--record", metavar="DIR", help="write <exchange>.generated.jsonl and .sent.jsonl here")
    p.add_argument("--ready-file", help="also write the URL line to this file once listening")
    g = p.add_argument_group("faults (all off by default)")
    g.add_argument("--drop-every", type=float, default=0.0, metavar="S", help="cut all connections every S s")
    g.add_argument("--silence-every", type=float, default=0.0, metavar="S", help="go silent every S s ...")
    g.add_argument("--silence-for", type=float, default=0.0, metavar="S",
                   help="... for S s (no trades, heartbeats, pings)")
    g.add_argument("--malformed-ratio", type=float, default=0.0, metavar="R",
                   help="extra broken frame after a real trade frame with probability R")
    g.add_argument("--error-every", type=float, default=0.0, metavar="S", help="exchange error event every S s")
    g.add_argument("--slow-start", type=float, default=0.0, metavar="S", help="new connections stay mute for S s")
    g.add_argument("--faults-for", type=float, default=0.0, metavar="S",
                   help="stop dropping, silencing and erroring after S s (0 = never), so a run can settle")
    g.add_argument("--rest-down", metavar="A-B[,A-B...]",
                   help="the REST API answers 503 from A to B s after the start (e.g. 0-8,20-26)")
    g.add_argument("--withhold", metavar="A-B[,A-B...]",
                   help="trades made A to B s after the start are never sent on the WebSocket (they stay "
                        "in REST and the venue's candles)")
    g.add_argument("--skew-candle", type=float, metavar="S",
                   help="the venue's candles of the window holding the instant S s after the start show "
                        "a high one tick too high")
    g = p.add_argument_group("markets (dislocations and health; windows in s after the start, default the whole run)")
    g.add_argument("--drift", action="append", metavar="VENUE:BPS[@A-B]",
                   help="VENUE's prices sit BPS basis points off the other venues' (repeatable)")
    g.add_argument("--maintenance", action="append", metavar="VENUE[@A-B]",
                   help="VENUE announces maintenance on its status endpoint, is in it from A to B (no trades), "
                        "then completed (binance, kraken, okx, bybit, bitfinex; repeatable)")
    g.add_argument("--slow", action="append", metavar="SYMBOL:F[@A-B]",
                   help="SYMBOL (canonical) trades F times its usual rate on every venue, 0 <= F <= 1 (repeatable)")
    g = p.add_argument_group("venue behaviour")
    g.add_argument("--kraken-snapshot", type=int, default=0, metavar="N", help="Kraken v1: last N trades on subscribe")
    g.add_argument("--ping-interval", type=float, default=20.0, metavar="S", help="Binance protocol ping period")
    g.add_argument("--max-connection-age", type=float, default=86400.0, metavar="S",
                   help="Binance closes connections after S s (serverShutdown first)")
    g.add_argument("--binance-message-limit", type=int, default=5, metavar="N",
                   help="incoming messages per second before Binance cuts a client (0 = none)")
    g.add_argument("--history", type=int, default=100_000, metavar="N", help="trades kept per symbol for REST")
    g.add_argument("--no-bursts", action="store_true", help="steady rate, no bursts of activity")
    g = p.add_argument_group("history (Binance)")
    g.add_argument("--history-days", type=int, default=0, metavar="N",
                   help="N days of past trades before the start, served over REST (historicalTrades)")
    g.add_argument("--history-trades-per-day", type=int, default=20_000, metavar="N", help="(default 20000)")
    g.add_argument("--archive-dir", metavar="DIR",
                   help="write the past days as Binance archive files here (zip + CHECKSUM, trades and aggTrades)")
    g.add_argument("--archive-monthly", action="store_true", help="monthly archive files instead of daily ones")
    g.add_argument("--rest-weight-limit", type=int, default=6000, metavar="W",
                   help="Binance REST request weight per window, 429 past it (default 6000; 0 = no limit)")
    g.add_argument("--rest-window", type=float, default=60.0, metavar="S", help="the weight window (default 60 s)")


def config_from_args(args: argparse.Namespace):
    from k2.exchanges import parse_exchange_list
    from k2.simulator.faults import Faults, parse_drift, parse_maintenance, parse_slow, parse_windows
    from k2.simulator.runner import SimConfig

    symbols = [s for item in args.symbols or [] for s in item.split(",") if s.strip()] or None
    if args.duration is not None and not (args.duration > 0 and math.isfinite(args.duration)):
        raise K2Error("--duration must be a positive number of seconds")
    if not math.isfinite(args.rate):
        raise K2Error("--rate must be a finite number")
    return SimConfig(
        exchanges=parse_exchange_list(args.exchange),
        host=args.host, port=args.port, rate=args.rate, seed=args.seed, symbols=symbols,
        replay=Path(args.replay) if args.replay else None,
        record_dir=Path(args.record) if args.record else None,
        faults=Faults(args.drop_every, args.silence_every, args.silence_for, args.malformed_ratio,
                      args.error_every, args.slow_start, args.faults_for, parse_windows(args.rest_down),
                      parse_windows(args.withhold, "--withhold"), args.skew_candle,
                      parse_drift(args.drift), parse_maintenance(args.maintenance), parse_slow(args.slow)),
        bursts=not args.no_bursts, ping_interval_s=args.ping_interval,
        max_connection_age_s=args.max_connection_age, binance_max_messages_per_s=args.binance_message_limit,
        kraken_snapshot=args.kraken_snapshot, history_size=args.history,
        history_days=args.history_days, history_trades_per_day=args.history_trades_per_day,
        archive_dir=Path(args.archive_dir) if args.archive_dir else None, archive_monthly=args.archive_monthly,
        rest_weight_limit=args.rest_weight_limit, rest_window_s=args.rest_window,
    )


def run_command(args: argparse.Namespace) -> int:
    import asyncio  # here, not at the top: `k2 --help` builds this parser and should stay quick

    config = config_from_args(args)
    config.check()
    return asyncio.run(_serve(config, args.duration, Path(args.ready_file) if args.ready_file else None))


async def _serve(config, duration: float | None, ready_file: Path | None) -> int:
    import asyncio

    from k2.simulator.runner import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # before the URL line: a caller may stop us at once
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config)
    urls = await sim.start()
    try:
        line = json.dumps(urls, separators=(",", ":"))
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        if ready_file:
            tmp = ready_file.with_name(ready_file.name + ".tmp")
            tmp.write_text(line + "\n")
            os.replace(tmp, ready_file)
        for name, u in urls.items():
            print(f"k2 simulate: {name} ws {u['ws']} rest {u['rest']}\n"
                  f"  export K2_{name.upper()}_WS_URL={u['ws']} K2_{name.upper()}_REST_URL={u['rest']}",
                  file=sys.stderr)
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(sim.wait())]
        done, pending = await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        for w in done:
            w.result()  # a crash of the clock surfaces here
    finally:
        await sim.stop()
    for name, s in sim.stats().items():
        print(f"k2 simulate: {name}: {s['trades_generated']} trades generated, {s['frames_sent']} frames sent, "
              f"{s['connections_total']} connections, {s['drops'] + s['slow_drops']} dropped "
              f"({s['slow_drops']} for reading too slowly), {s.get('rest_refused', 0)} REST requests refused",
              file=sys.stderr)
    return 0
