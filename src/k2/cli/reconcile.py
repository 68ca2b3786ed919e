"""`k2 reconcile`: K2's candles against the venue's own, window by window (k2.history.reconcile).

Plain output: one summary line per symbol, then one line per window that is not a match. Exit
status 0 when every window with trades matches or differs for a documented venue-side reason,
1 when a window is missing trades, holds extra ones or is unexplained (or part of the range
could not be checked), 2 for a usage mistake.
"""

from __future__ import annotations

import argparse
import sys

from k2.cli.options import TIME_HELP, check_data_dir, command, settings_from, storage_options
from k2.errors import K2Error
from k2.exchanges import get_adapter


def _us(value: str | None, what: str) -> int | None:
    from k2.times import parse_time, to_microseconds

    return None if value is None else to_microseconds(parse_time(value, what, ""))


def _say_on_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_reconcile(args: argparse.Namespace) -> int:
    adapter = get_adapter(args.exchange)
    if adapter.candles is None:
        raise K2Error(f"k2 reconcile does not read {adapter.name}'s candles yet (it reads binance, kraken, coinbase, "
                      "okx, bybit, bitfinex and gemini; --api selects another wire API only for the live feed)")
    if args.interval not in adapter.candles.intervals:
        raise K2Error(f"--interval must be one of {', '.join(adapter.candles.intervals)}")
    if args.max_rps is not None and args.max_rps <= 0:
        raise K2Error("--max-rps must be positive")
    symbols = [x.strip() for x in (args.symbols or "").split(",") if x.strip()]
    if not symbols:
        raise K2Error("k2 reconcile needs --symbols")
    natives = []
    for sym in symbols:
        try:
            natives.append(adapter.native_symbol(sym))
        except ValueError as exc:
            raise K2Error(f"--symbols: {exc}") from None
    since_us = _us(args.since, "--since")
    until_us = _us(args.until, "--until")
    from k2.rejects import now_us

    until_us = until_us if until_us is not None else now_us()
    if until_us <= since_us:
        raise K2Error("--until must be after --since")
    s = settings_from(args)
    check_data_dir(s, must_exist=True)
    rest_url = s.exchange(adapter.name).rest_url
    from k2.history.handoff import running_pipeline

    running = running_pipeline(s.data_dir, s.warehouse_url)
    if running is not None:  # k2 run holds the data dir: it reconciles, repairs go through its writer
        answer = running.job({"job": "reconcile", "exchange": adapter.name, "symbols": natives,
                              "interval": args.interval, "since_us": since_us, "until_us": until_us,
                              "repair": args.repair, "rest_url": rest_url, "max_rps": args.max_rps,
                              "state_dir": str((s.data_dir / "history").resolve())})
        for line, is_error in answer["lines"]:
            print(line, file=sys.stderr if is_error else sys.stdout)
        return int(answer["status"])
    from k2.history.reconcile import Reconciler, reconcile_symbols
    from k2.warehouse import open_warehouse
    from k2.warehouse.bronze import BronzeWriter

    wh = open_warehouse(s.data_dir, url=s.warehouse_url, for_writing=True,
                        release_startup_pages=s.release_startup_pages)  # a long run: RSS at its working set
    try:
        rec = Reconciler(adapter, rest_url, wh, rate=args.max_rps, state_dir=s.data_dir / "history",
                         progress=_say_on_stderr if args.repair else None)
        writer = BronzeWriter(wh, adapter) if args.repair else None

        def say(line: str, is_error: bool) -> None:
            print(line, file=sys.stderr if is_error else sys.stdout)

        return reconcile_symbols(rec, natives, args.interval, since_us, until_us,
                                 (lambda rows: writer.write(rows, source="rest")) if writer is not None else None, say)
    finally:
        wh.close()


def register(sub) -> None:
    sp = command(sub, "reconcile", "history", "compare K2's candles with the venue's own, window by window "
                 "(--repair backfills windows with missing trades)", [
                     "k2 reconcile --exchange binance --symbols BTCUSDT --since 1d  # yesterday's 1m windows",
                     "k2 reconcile --exchange kraken --symbols BTC/USD --since 6h --repair",
                 ], func=cmd_reconcile)
    sp.add_argument("--exchange", required=True, help="binance, kraken, coinbase, okx, bybit, bitfinex or gemini")
    sp.add_argument("--symbols", help="comma list, canonical (BTC/USD) or native")
    sp.add_argument("--since", required=True, help=f"first window (inclusive): {TIME_HELP}")
    sp.add_argument("--until", help=f"end (exclusive; default now, closed windows only): {TIME_HELP}")
    sp.add_argument("--interval", default="1m", choices=("1m", "1h", "1d"), help="window length (default 1m)")
    sp.add_argument("--repair", action="store_true",
                    help="backfill windows with missing trades over REST, then check them again")
    sp.add_argument("--max-rps", type=float, help="requests per second (default: 97%% of the venue's documented limit)")
    storage_options(sp)
