"""Commands about the markets K2 watches: spreads (cross-exchange dislocations) and health
(per venue and per symbol). Plain text, CSV or JSON, like the other read commands."""

from __future__ import annotations

import argparse

from k2.cli.options import run_read, storage_options, time_options


def cmd_spreads(args: argparse.Namespace) -> int:
    from k2.read import queries, spreads
    from k2.times import parse_range

    # every value is checked before the data dir is opened
    queries.check_symbol(args.symbol)
    spreads.check_spread_interval(args.interval)
    spreads.check_venues(args.venues)
    spreads.check_min_bps(args.min_bps)
    spreads.check_min_windows(args.min_windows)
    parse_range(args.since, args.until)
    return run_read(args, lambda r: spreads.spreads(r, args.symbol, args.venues, args.interval, args.since,
                                                    args.until, args.min_bps, args.min_windows, args.by,
                                                    args.format))


def _positive(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def register(sub) -> None:
    sp = sub.add_parser("spreads", help="cross-exchange price dislocations of a pair (from trades; a signal, "
                                        "not a tradeable edge)")
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USDT (or a venue's native name)")
    sp.add_argument("--venues", help="two or more exchanges, comma-separated (default: every venue trading it)")
    sp.add_argument("--interval", default="1m", help="window: 1s or 1m (default 1m)")
    sp.add_argument("--min-bps", default="0", help="show windows where |spread| >= this many basis points (default 0)")
    sp.add_argument("--min-windows", type=_positive, default=1,
                    help="... for at least this many consecutive windows (default 1)")
    sp.add_argument("--by", default="last", choices=("last", "vwap"),
                    help="the spread the threshold applies to: last trades (default) or VWAPs")
    time_options(sp)
    sp.add_argument("--format", default="table", choices=("table", "csv", "json"))
    storage_options(sp)
    sp.set_defaults(func=cmd_spreads)
