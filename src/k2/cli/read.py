"""Commands that read the warehouse: ohlcv, trades, query, chart.

They read through the running pipeline when one holds the data dir (k2.read.remote), else open it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from k2.cli.options import read_options, reader_for, run_read, storage_options, emit
from k2.errors import K2Error, first_line


def cmd_ohlcv(args: argparse.Namespace) -> int:
    from k2.read import queries

    queries.check_interval(args.interval)
    queries.check_exchange(args.exchange)
    return run_read(args, lambda r: queries.ohlcv(r, args.symbol, args.interval, args.exchange, args.since,
                                                  args.until, args.format, args.limit))


def cmd_trades(args: argparse.Namespace) -> int:
    from k2.read import queries

    queries.check_exchange(args.exchange)
    return run_read(args, lambda r: queries.trades(r, args.symbol, args.exchange, args.since, args.until,
                                                   args.format, args.limit))


def cmd_query(args: argparse.Namespace) -> int:
    from k2.read import queries

    reader = reader_for(args)
    try:
        try:
            text = queries.adhoc(reader, args.sql, args.format, write=args.write)
        except K2Error:
            raise
        except Exception as exc:  # ClickHouse's own message is what the user needs
            raise K2Error(f"query failed: {first_line(exc)}") from None
        emit(text)
    finally:
        reader.close()
    return 0


def cmd_chart(args: argparse.Namespace) -> int:
    from k2.read.charts import chart, check_output

    check_output(Path(args.out))
    reader = reader_for(args)
    try:
        done = chart(reader, args.symbol, args.interval, Path(args.out), args.exchange, args.since, args.until,
                     args.max_candles)
    finally:
        reader.close()
    print(f"wrote {done['path']}: {done['candles']} candles ({', '.join(done['panels'])})")
    return 0


def register(sub) -> None:
    sp = sub.add_parser("ohlcv", help="print OHLCV candles for a symbol")
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USD")
    sp.add_argument("--interval", required=True, help="1m, 5m, 15m, 1h or 1d")
    read_options(sp)
    sp.set_defaults(func=cmd_ohlcv)

    sp = sub.add_parser("trades", help="print normalized (silver) trades for a symbol")
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USD")
    read_options(sp)
    sp.set_defaults(func=cmd_trades)

    sp = sub.add_parser("query", help="run SQL against the warehouse (database k2)")
    sp.add_argument("sql")
    sp.add_argument("--format", default="table", choices=("table", "csv", "json"))
    sp.add_argument("--write", action="store_true",
                    help="run one writing statement (CREATE VIEW, INSERT into your own table...) in a session of "
                         "its own; without it a query is read-only")
    storage_options(sp)
    sp.set_defaults(func=cmd_query)

    sp = sub.add_parser("chart", help="draw candlesticks with volume to a PNG or self-contained HTML file")
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USD")
    sp.add_argument("--interval", required=True, help="1m, 5m, 15m, 1h or 1d")
    sp.add_argument("--exchange", default="all", help="'all' (cross-exchange, default) or exchanges, one panel each")
    sp.add_argument("--since", help="start, ISO-8601 UTC (inclusive)")
    sp.add_argument("--until", help="end, ISO-8601 UTC (exclusive)")
    sp.add_argument("--max-candles", type=int, default=1000, help="draw at most the last N candles (default 1000)")
    sp.add_argument("--out", required=True, help="output file: .png (needs matplotlib) or .html")
    storage_options(sp)
    sp.set_defaults(func=cmd_chart)
