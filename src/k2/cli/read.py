"""Commands that read the warehouse: ohlcv, trades, query, export, chart.

They read through the running pipeline when one holds the data dir (k2.read.remote), else open it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from k2.cli.options import (
    EXCHANGE_LIST_HELP, EXIT_CUT, command, count_or_zero, emit, exchange_option, format_option, positive_int,
    read_options, reader_for, run_read, storage_options, time_options,
)
from k2.errors import K2Error, QueryError, first_line


def cmd_ohlcv(args: argparse.Namespace) -> int:
    from k2.read import queries
    from k2.times import parse_range

    queries.check_interval(args.interval)
    queries.check_exchange(args.exchange)
    queries.check_symbol(args.symbol)
    parse_range(args.since, args.until)  # a bad time is refused before the data dir is opened
    return run_read(args, lambda r: queries.ohlcv_page(r, args.symbol, args.interval, args.exchange, args.since,
                                                       args.until, args.format, args.limit, args.oldest))


def cmd_trades(args: argparse.Namespace) -> int:
    from k2.read import queries
    from k2.times import parse_range

    queries.check_exchange(args.exchange)
    queries.check_symbol(args.symbol)
    parse_range(args.since, args.until)
    return run_read(args, lambda r: queries.trades_page(r, args.symbol, args.exchange, args.since, args.until,
                                                        args.format, args.limit, args.oldest))


def cmd_query(args: argparse.Namespace) -> int:
    from k2.read import queries

    reader = reader_for(args)
    try:
        try:
            text = queries.adhoc(reader, args.sql, args.format, write=args.write)
        except QueryError as exc:  # refused or failed in the warehouse: ClickHouse's reason, one line
            raise K2Error(f"query failed: {exc}") from None
        except K2Error:
            raise
        except Exception as exc:  # ClickHouse's own message is what the user needs
            raise K2Error(f"query failed: {first_line(exc)}") from None
        emit(text)
    finally:
        reader.close()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from k2.read.export import ROW_GROUP_ROWS, check_out, export
    from k2.terminal import Progress
    from k2.read.queries import check_interval
    from k2.times import parse_time

    out = check_out(Path(args.out))
    if args.layer == "bronze" and args.symbols:
        raise K2Error("--symbols filters silver and gold; bronze is exported per exchange, whole")
    if args.layer == "gold":
        check_interval(args.interval)
    parse_time(args.since, "--since", "")
    parse_time(args.until, "--until", "")
    exchanges = [x.strip() for x in args.exchange.split(",") if x.strip()] if args.exchange else None
    if exchanges:
        from k2.exchanges import parse_exchange_list

        exchanges = parse_exchange_list(",".join(exchanges))
    symbols = [x.strip() for x in args.symbols.split(",") if x.strip()] if args.symbols else None
    reader = reader_for(args, lean=True, batch_job=True)
    try:
        with Progress(f"export {args.layer}", None, "rows") as bar:
            report = export(reader, out, args.layer, exchanges, symbols, args.since, args.until, args.interval,
                            args.force, args.row_group_rows or ROW_GROUP_ROWS, bar.log, bar)
    finally:
        reader.close()
    print(report.text(out))
    return 0


def cmd_chart(args: argparse.Namespace) -> int:
    from k2.read import queries
    from k2.read.charts import DEFAULT_MAX_CANDLES, chart, check_output, exchanges_arg
    from k2.times import parse_range

    check_output(Path(args.out))
    queries.check_interval(args.interval)
    exchanges_arg(args.exchange)
    parse_range(args.since, args.until)  # a bad time is refused before the data dir is opened
    max_candles = DEFAULT_MAX_CANDLES if args.max_candles is None else args.max_candles
    reader = reader_for(args)
    try:
        done = chart(reader, args.symbol, args.interval, Path(args.out), args.exchange, args.since, args.until,
                     max_candles, overlay=args.overlay)
    finally:
        reader.close()
    print(f"wrote {done['path']}: {done['candles']} candles ({', '.join(done['panels'])})")
    if done["available"] > done["candles"]:
        default = args.max_candles is None
        print(f"k2: {'warning' if default else 'note'}: drew the newest {done['candles']:,} of "
              f"{done['available']:,} candles ({'the default ' if default else ''}--max-candles {max_candles:,}); "
              "--max-candles 0 draws all, --since/--until narrow the range", file=sys.stderr)
        return EXIT_CUT if default else 0
    return 0


def register(sub) -> None:
    sp = command(sub, "ohlcv", "read", "print OHLCV candles for a symbol", [
        "k2 ohlcv BTC/USD --interval 1m --since 1h            # the last hour, all venues together",
        "k2 ohlcv BTC/USD --interval 1h --exchange binance,kraken --since 7d",
        "k2 ohlcv BTCUSDT --interval 1d --format csv > btc.csv  # exact values for a spreadsheet",
    ], "With --exchange all (the default) the candles are cross-venue; with exchanges, one row per venue.",
        cmd_ohlcv)
    sp.add_argument("symbol", help="canonical (BTC/USD) or native (BTCUSDT, XBT/USD) symbol")
    sp.add_argument("--interval", required=True, help="candle length: 1m, 5m, 15m, 1h or 1d")
    read_options(sp)

    sp = command(sub, "trades", "read", "print normalized (silver) trades for a symbol", [
        "k2 trades BTC/USD --since 10m",
        "k2 trades ETH/USD --exchange coinbase --since 2026-11-01 --format json",
    ], func=cmd_trades)
    sp.add_argument("symbol", help="canonical (BTC/USD) or native (BTCUSDT, XBT/USD) symbol")
    read_options(sp)

    sp = command(sub, "query", "read", "run SQL against the warehouse (database k2)", [
        "k2 query \"SELECT exchange, count() FROM silver_trades_v2 GROUP BY exchange\"",
        "k2 query \"SELECT * FROM ohlcv_1h_cross LIMIT 24\" --format csv",
        "k2 query --write \"CREATE VIEW btc AS SELECT * FROM ohlcv_1m WHERE exchange='okx'\"",
    ], func=cmd_query)
    sp.add_argument("sql", help="one ClickHouse SQL statement (read-only unless --write)")
    format_option(sp)
    sp.add_argument("--write", action="store_true",
                    help="run one writing statement (CREATE VIEW, INSERT into your own table...) in a session of "
                         "its own; without it a query is read-only")
    storage_options(sp)

    sp = command(sub, "export", "read", "write a layer to Parquet files (Hive partitions by exchange and date)", [
        "k2 export --out lake/                        # silver, every exchange and day",
        "k2 export --out lake/ --layer gold --interval 1h --exchange binance,kraken",
    ], "Run it again to update: partitions already up to date are skipped (--force rewrites them).",
        cmd_export)
    sp.add_argument("--out", required=True, help="output directory (created; a previous export is updated)")
    sp.add_argument("--layer", default="silver", choices=("bronze", "silver", "gold"),
                    help="bronze: as sent, per exchange; silver: normalized trades; gold: candles")
    exchange_option(sp, None, f"{EXCHANGE_LIST_HELP} (default all)")
    sp.add_argument("--symbols", help="canonical or native symbols, comma-separated (silver, gold)")
    time_options(sp)
    sp.add_argument("--interval", default="1m", help="gold: 1m, 5m, 15m, 1h or 1d (default 1m)")
    sp.add_argument("--force", action="store_true", help="re-export partitions that are already up to date")
    sp.add_argument("--row-group-rows", type=positive_int, default=None,
                    help="rows per Parquet row group (default 65536; the engine also ends one at 16 MiB of data)")
    storage_options(sp)

    sp = command(sub, "chart", "read", "draw candlesticks with volume to a PNG or self-contained HTML file", [
        "k2 chart BTC/USD --interval 5m --since 1d --out btc.html            # all venues together",
        "k2 chart BTC/USD --interval 1h --exchange binance,kraken --out btc.png",
        "k2 chart BTC/USD --interval 1m --exchange kraken,coinbase --overlay --out v.html",
    ], func=cmd_chart)
    sp.add_argument("symbol", help="canonical (BTC/USD) or native (BTCUSDT) symbol")
    sp.add_argument("--interval", required=True, help="candle length: 1m, 5m, 15m, 1h or 1d")
    exchange_option(sp, "all", "all (cross-exchange, the default) or a comma list of exchanges, one panel each")
    time_options(sp)
    sp.add_argument("--max-candles", type=count_or_zero, default=None,
                    help="draw the newest N candles (default 1000; 0 = all); a cut chart says so on stderr")
    sp.add_argument("--out", required=True, help="output file: .html (interactive, one file, works offline) or "
                                                 ".png (needs matplotlib)")
    sp.add_argument("--overlay", action="store_true",
                    help="with several exchanges: their closes on one price axis instead of a chart each")
    storage_options(sp)
