"""Commands about the markets K2 watches: spreads (cross-exchange dislocations) and health
(per venue and per symbol). Plain text, CSV or JSON, like the other read commands."""

from __future__ import annotations

import argparse
import json

from k2.cli.options import (check_data_dir, command, format_option, run_read, settings_from, storage_options,
                            time_options)


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


def cmd_health(args: argparse.Namespace) -> int:
    """Per venue and per symbol health of the running pipeline; exit 1 when a venue is unhealthy
    (down, stale, in maintenance) or nothing runs."""
    from k2.read.remote import RemoteReader, read_run_info

    settings = settings_from(args)
    check_data_dir(settings, must_exist=True)
    info = read_run_info(settings.data_dir)
    if info is None:
        if args.format == "json":
            print(json.dumps({"running": False, "data_dir": str(settings.data_dir)}))
        else:
            print(f"k2 is not running on {settings.data_dir} (start it with: k2 run): no live health to show")
        return 1
    st = RemoteReader(info).status()
    markets = st.get("markets")
    if markets is None:
        print("k2 run has market health switched off ([health] markets = false); k2 status shows the feeds")
        return 1
    if args.format == "json":
        print(json.dumps(markets))
    else:
        print(health_text(markets, args.symbols))
    return 0 if markets.get("healthy") else 1


def health_text(markets: dict, symbols: bool = False) -> str:
    """Plain text for an 80-column terminal: a line per venue, then (with `symbols`, or for those
    not ok) a line per symbol; reasons on an indented line of their own."""
    lines = [f"{'venue':<10} {'state':<12} status page"]
    for ex, v in sorted(markets.get("venues", {}).items()):
        lines.append(f"{ex:<10} {v['state'].upper() if v['state'] != 'ok' else 'ok':<12} {v['venue_status']}")
        lines += [f"    {r[:150]}" for r in v["reasons"]]
    shown = [s for s in markets.get("symbols", []) if symbols or s["state"] not in ("ok", "warming")]
    if shown:
        lines += ["", f"{'venue':<9} {'symbol':<11} {'state':<9} {'trades':>9} {'last':>7} {'typical':>7} "
                      f"{'stale at':>8} {'vs others':>10}"]
        for s in shown:
            div = "-" if s["divergence_bps"] is None else f"{s['divergence_bps']:+.1f}bp"
            lines.append(f"{s['exchange']:<9} {s['symbol']:<11} {s['state']:<9} {s['trades']:>9,} "
                         f"{_seconds(s['age_s']):>7} {_seconds(s['typical_interval_s']):>7} "
                         f"{_seconds(s['stale_after_s']):>8} {div:>10}")
            if s["state"] not in ("ok",):
                lines += [f"    {r[:150]}" for r in s["reasons"]]
    wide = sorted(markets.get("spreads", []), key=lambda p: -abs(p["bps"]))[:10]
    if wide:
        lines += ["", "widest live spreads (last trades; a signal, not a tradeable edge):"]
        for p in wide:
            lines.append(f"  {p['symbol']:<10} {p['venue_b']} over {p['venue_a']}: {p['bps']:+.1f} bp "
                         f"({p['price_b']:g} vs {p['price_a']:g})")
    lines.append("")
    lines.append("HEALTHY" if markets.get("healthy") else "UNHEALTHY: " + ", ".join(
        f"{ex} {v['state']}" for ex, v in sorted(markets.get("venues", {}).items())
        if v["state"] in ("down", "stale", "maintenance")))
    return "\n".join(lines)


def _seconds(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1:
        return f"{x * 1000:.0f}ms"
    return f"{x:.1f}s" if x < 600 else f"{x / 60:.0f}m"


def _positive(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def register(sub) -> None:
    sp = command(sub, "spreads", "read", "cross-exchange price dislocations of a pair (from trades; a signal, "
                 "not a tradeable edge)", [
                     "k2 spreads BTC/USDT --since 1h  # every venue pair, 1m windows",
                     "k2 spreads BTC/USD --venues coinbase,kraken --interval 1s --min-bps 20 --min-windows 5",
                 ], func=cmd_spreads)
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USDT (or a venue's native name)")
    sp.add_argument("--venues", help="two or more exchanges, comma-separated (default: every venue trading it)")
    sp.add_argument("--interval", default="1m", help="window: 1s or 1m (default 1m)")
    sp.add_argument("--min-bps", default="0", help="show windows where |spread| >= this many basis points (default 0)")
    sp.add_argument("--min-windows", type=_positive, default=1,
                    help="... for at least this many consecutive windows (default 1)")
    sp.add_argument("--by", default="last", choices=("last", "vwap"),
                    help="the spread the threshold applies to: last trades (default) or VWAPs")
    time_options(sp)
    format_option(sp)
    storage_options(sp)

    sp = command(sub, "health", "operate", "per-venue and per-symbol health of the running k2 run (exit 1 when a "
                 "venue is down, stale or in maintenance)", [
                     "k2 health  # venues, and the symbols that are not ok",
                     "k2 health --symbols --format json",
                 ], func=cmd_health)
    sp.add_argument("--symbols", action="store_true", help="a line for every symbol (default: those not ok)")
    sp.add_argument("--format", default="text", choices=("text", "json"),
                    help="text: a line per venue and symbol; json: the whole report (default text)")
    storage_options(sp)
