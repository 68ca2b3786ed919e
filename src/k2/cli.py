"""The `k2` command line. Thin: parse arguments, call one function, print.

A mistake the user can make (bad flag, unknown exchange, missing file) is one line on stderr
and exit status 2; an unexpected error is one line on the terminal and a traceback in the log.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Sequence

from k2 import __version__
from k2.config import Settings, load_settings
from k2.errors import K2Error
from k2.warehouse import first_line as _first_line

log = logging.getLogger("k2")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise K2Error(f"{self.prog}: {message} (see {self.prog} --help)")


# -- shared option groups --------------------------------------------------------------------------
def _storage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="embedded data directory (env K2_DATA_DIR, default ./k2data)")
    p.add_argument("--warehouse", help="ClickHouse server URL instead of the embedded store (env K2_WAREHOUSE)")


def _read_options(p: argparse.ArgumentParser, exchange_default: str = "all") -> None:
    _storage_options(p)
    p.add_argument("--exchange", default=exchange_default, help="exchange name, or 'all' (default)")
    p.add_argument("--since", help="start, ISO-8601 UTC (inclusive)")
    p.add_argument("--until", help="end, ISO-8601 UTC (exclusive)")
    p.add_argument("--format", default="table", choices=("table", "csv", "json"))
    p.add_argument("--limit", type=int, default=1_000_000)


def _settings(args: argparse.Namespace) -> Settings:
    s = load_settings(config_path=getattr(args, "config", None))
    if getattr(args, "data_dir", None):
        s.data_dir = Path(args.data_dir)
    if getattr(args, "warehouse", None):
        s.warehouse_url = args.warehouse
    return s


def _reader(args: argparse.Namespace):
    from k2.httpapi import open_reader

    s = _settings(args)
    return open_reader(s.data_dir, s.warehouse_url)


def _read(args: argparse.Namespace, fn) -> int:
    """Open the reader (the running pipeline, or the warehouse), print `fn(reader)`, close."""
    reader = _reader(args)
    try:
        _emit(fn(reader))
    finally:
        reader.close()
    return 0


def _emit(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        print("(no rows)", file=sys.stderr)


# -- commands -------------------------------------------------------------------------------------
def cmd_schema(args: argparse.Namespace) -> int:
    from k2.warehouse import open_warehouse, schema

    s = _settings(args)
    wh = open_warehouse(s.data_dir, url=s.warehouse_url, apply_schema=False)
    try:
        n = schema.apply(wh)
    finally:
        wh.close()
    where = s.warehouse_url and "the ClickHouse server" or str(s.data_dir)
    print(f"schema applied: {n} statements from {len(schema.sql_files())} files ({where})")
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from k2.exchanges import get_adapter
    from k2.load import load_file
    from k2.warehouse import open_warehouse

    adapter = get_adapter(args.exchange, args.api)
    path = Path(args.file)
    if not path.is_file():
        raise K2Error(f"no such file: {path}")
    if args.batch_size <= 0:
        raise K2Error("--batch-size must be positive")
    s = _settings(args)
    wh = open_warehouse(s.data_dir, url=s.warehouse_url)
    try:
        report = load_file(wh, adapter, path, batch_size=args.batch_size)
    finally:
        wh.close()
    print(report.summary())
    return 0


def cmd_ohlcv(args: argparse.Namespace) -> int:
    from k2 import reads

    reads.check_interval(args.interval)
    reads.check_exchange(args.exchange)
    return _read(args, lambda r: reads.ohlcv(r, args.symbol, args.interval, args.exchange, args.since,
                                             args.until, args.format, args.limit))


def cmd_trades(args: argparse.Namespace) -> int:
    from k2 import reads

    reads.check_exchange(args.exchange)
    return _read(args, lambda r: reads.trades(r, args.symbol, args.exchange, args.since, args.until,
                                              args.format, args.limit))


def cmd_query(args: argparse.Namespace) -> int:
    from k2 import reads

    reader = _reader(args)
    try:
        try:
            text = reads.adhoc(reader, args.sql, args.format)
        except K2Error:
            raise
        except Exception as exc:  # ClickHouse's own message is what the user needs
            raise K2Error(f"query failed: {_first_line(exc)}") from None
        _emit(text)
    finally:
        reader.close()
    return 0


def cmd_gaps(args: argparse.Namespace) -> int:
    from k2 import reads

    reads.check_exchange(args.exchange)
    return _read(args, lambda r: reads.gaps(r, args.exchange, args.state, args.format, args.limit))


def cmd_chart(args: argparse.Namespace) -> int:
    from k2.charts import chart, check_output

    check_output(Path(args.out))
    reader = _reader(args)
    try:
        done = chart(reader, args.symbol, args.interval, Path(args.out), args.exchange, args.since, args.until,
                     args.max_candles)
    finally:
        reader.close()
    print(f"wrote {done['path']}: {done['candles']} candles ({', '.join(done['panels'])})")
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    from k2.exchanges import parse_exchange_list
    from k2.httpapi import read_run_info
    from k2.rebuild import rebuild
    from k2.warehouse import open_warehouse

    s = _settings(args)
    exchanges = parse_exchange_list(args.exchange)
    if args.since:
        from k2.reads import parse_time

        parse_time(args.since, "--since", "")
    if not s.warehouse_url and read_run_info(s.data_dir):
        raise K2Error(f"k2 run is running on {s.data_dir}; stop it before rebuilding")
    wh = open_warehouse(s.data_dir, url=s.warehouse_url)
    try:
        replayed = rebuild(wh, exchanges, args.since, progress=sys.stderr.isatty() or args.progress)
    finally:
        wh.close()
    print("rebuilt silver and gold from bronze: "
          + ", ".join(f"{t} {n:,} rows" for t, n in replayed.items()))
    return 0


def cmd_rejects(args: argparse.Namespace) -> int:
    from k2 import reads

    reads.check_exchange(args.exchange)
    reads.parse_time(args.since, "--since", "")
    return _read(args, lambda r: reads.rejects(r, args.exchange, args.since, args.format, args.limit))


def cmd_validate(args: argparse.Namespace) -> int:
    from k2.quality.validate import report, run_checks

    reader = _reader(args)
    try:
        text, ok = report(run_checks(reader))
    finally:
        reader.close()
    print(text)
    return 0 if ok else 1


def _feed_settings(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    from k2.exchanges import parse_exchange_list

    s = _settings(args)
    exchanges = parse_exchange_list(getattr(args, "exchange", None), s.exchanges)
    if getattr(args, "symbols", None):
        s.symbols = [x.strip() for x in args.symbols.split(",") if x.strip()]
    duration = getattr(args, "duration", None)
    if duration is not None and duration <= 0:
        raise K2Error("--duration must be positive")
    return s, exchanges


def cmd_run(args: argparse.Namespace) -> int:
    from k2.pipeline import run_embedded

    s, exchanges = _feed_settings(args)
    if args.kafka is not None:
        from k2.transport.kafka import resolve_bootstrap
        from k2.transport.kafka_sink import run_both

        summary = run_both(s, exchanges, resolve_bootstrap(args.kafka, s), args.duration, args.group,
                           args.partitions, args.replication_factor)
    else:
        summary = run_embedded(s, exchanges, args.duration)
    print(summary.text())
    return 0


def cmd_feed(args: argparse.Namespace) -> int:
    from k2.transport.kafka import resolve_bootstrap, run_feed

    s, exchanges = _feed_settings(args)
    summary = run_feed(s, exchanges, resolve_bootstrap(args.kafka, s), args.duration, args.partitions,
                       args.replication_factor)
    print(summary.text())
    return 0


def cmd_sink(args: argparse.Namespace) -> int:
    from k2.transport.kafka import resolve_bootstrap
    from k2.transport.kafka_sink import run_sink

    s = _settings(args)
    if args.duration is not None and args.duration <= 0:
        raise K2Error("--duration must be positive")
    stats = run_sink(s, resolve_bootstrap(args.kafka, s), args.group, args.duration, args.partitions,
                     args.replication_factor)
    print("sink: " + ", ".join(f"{k} {v:,} written" for k, v in stats.written.items())
          + f"; {sum(stats.duplicates.values()):,} re-delivered trades skipped; {stats.rejects_written:,} rejects")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from k2.exchanges import parse_exchange_list
    from k2.transport.kafka import resolve_bootstrap
    from k2.transport.kafka_sink import topics_command

    s = _settings(args)
    exchanges = parse_exchange_list(args.exchange or "all")
    print(topics_command(s, resolve_bootstrap(args.kafka, s), args.action, exchanges, args.partitions,
                         args.replication_factor))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from k2.status import print_status

    return print_status(_settings(args), args.format)


def cmd_record(args: argparse.Namespace) -> int:
    from k2.record import record

    s, exchanges = _feed_settings(args)
    if len(exchanges) != 1:
        raise K2Error("k2 record takes exactly one --exchange")
    n = record(s, exchanges[0], Path(args.out), args.duration)
    print(f"recorded {n['frames']:,} frames ({n['trades']:,} trades) to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from k2.demo import run_demo

    from k2.exchanges import parse_exchange_list

    return run_demo(_settings(args), duration=args.duration, rate=args.rate,
                    data_dir=Path(args.data_dir) if args.data_dir else None,
                    exchanges=parse_exchange_list(args.exchange, default=["binance", "kraken"]))


def cmd_simulate(args: argparse.Namespace) -> int:
    from k2.simulator.command import run_command

    return run_command(args)


# -- parser ---------------------------------------------------------------------------------------
def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="k2", description="K2: crypto trades -> bronze -> silver -> gold candles.")
    p.add_argument("--version", action="version", version=f"k2 {__version__}")
    p.add_argument("--config", help="settings file (env K2_CONFIG, default ./k2.toml)")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)

    sp = sub.add_parser("schema", help="apply the warehouse schema (idempotent)")
    sp.add_argument("action", choices=("apply",))
    _storage_options(sp)
    sp.set_defaults(func=cmd_schema)

    sp = sub.add_parser("load", help="load a file of raw exchange frames (one per line)")
    sp.add_argument("file")
    sp.add_argument("--exchange", required=True, help="exchange that sent the frames")
    sp.add_argument("--api", help="the exchange's other wire API the frames use (kraken: v2, coinbase: advanced)")
    sp.add_argument("--batch-size", type=int, default=100_000)
    _storage_options(sp)
    sp.set_defaults(func=cmd_load)

    sp = sub.add_parser("ohlcv", help="print OHLCV candles for a symbol")
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USD")
    sp.add_argument("--interval", required=True, help="1m, 5m, 15m, 1h or 1d")
    _read_options(sp)
    sp.set_defaults(func=cmd_ohlcv)

    sp = sub.add_parser("trades", help="print normalized (silver) trades for a symbol")
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USD")
    _read_options(sp)
    sp.set_defaults(func=cmd_trades)

    sp = sub.add_parser("query", help="run SQL against the warehouse (database k2)")
    sp.add_argument("sql")
    sp.add_argument("--format", default="table", choices=("table", "csv", "json"))
    _storage_options(sp)
    sp.set_defaults(func=cmd_query)

    sp = sub.add_parser("gaps", help="list the gaps found in trade streams and what backfill recovered")
    _storage_options(sp)
    sp.add_argument("--exchange", default="all")
    sp.add_argument("--state", default="all", choices=("all", "open", "filled", "unfillable"))
    sp.add_argument("--format", default="table", choices=("table", "csv", "json"))
    sp.add_argument("--limit", type=int, default=1000)
    sp.set_defaults(func=cmd_gaps)

    sp = sub.add_parser("chart", help="draw candlesticks with volume to a PNG or self-contained HTML file")
    sp.add_argument("symbol", help="canonical symbol, e.g. BTC/USD")
    sp.add_argument("--interval", required=True, help="1m, 5m, 15m, 1h or 1d")
    sp.add_argument("--exchange", default="all", help="'all' (cross-exchange, default) or exchanges, one panel each")
    sp.add_argument("--since", help="start, ISO-8601 UTC (inclusive)")
    sp.add_argument("--until", help="end, ISO-8601 UTC (exclusive)")
    sp.add_argument("--max-candles", type=int, default=1000, help="draw at most the last N candles (default 1000)")
    sp.add_argument("--out", required=True, help="output file: .png (needs matplotlib) or .html")
    _storage_options(sp)
    sp.set_defaults(func=cmd_chart)

    sp = sub.add_parser("rejects", help="list frames that could not be parsed, with raw text and reason")
    _storage_options(sp)
    sp.add_argument("--exchange", default="all")
    sp.add_argument("--since", help="only rejects received from this time on (ISO-8601)")
    sp.add_argument("--format", default="table", choices=("table", "csv", "json"))
    sp.add_argument("--limit", type=int, default=1000)
    sp.set_defaults(func=cmd_rejects)

    sp = sub.add_parser("rebuild", help="recompute silver and gold from bronze (after a normalization fix)")
    _storage_options(sp)
    sp.add_argument("--exchange", help="exchange(s) to rebuild (default: all)")
    sp.add_argument("--since", help="rebuild from the UTC hour of this time on (default: everything)")
    sp.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    sp.set_defaults(func=cmd_rebuild)

    sp = sub.add_parser("validate", help="check bronze, silver and gold; exit 1 on any failure")
    _storage_options(sp)
    sp.set_defaults(func=cmd_validate)

    sp = sub.add_parser("run", help="ingest live trades into the warehouse (the main job)")
    _feed_options(sp)
    sp.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    sp.add_argument("--kafka", nargs="?", const="", metavar="BOOTSTRAP",
                    help="run through Kafka/Redpanda: feed and sink in one process "
                         "(bootstrap HOST:PORT, or env K2_KAFKA_BOOTSTRAP_SERVERS)")
    sp.add_argument("--group", default="k2-bronze-sink", help="sink consumer group (with --kafka)")
    _topic_options(sp)
    _storage_options(sp)
    sp.set_defaults(func=cmd_run)

    sp = sub.add_parser("feed", help="publish live trades to Kafka/Redpanda (no warehouse in this process)")
    _feed_options(sp)
    sp.add_argument("--kafka", metavar="BOOTSTRAP", help="bootstrap servers HOST:PORT[,...] "
                    "(env K2_KAFKA_BOOTSTRAP_SERVERS); librdkafka settings from K2_KAFKA_*")
    sp.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    sp.add_argument("--data-dir", help="where undeliverable messages are spooled (default ./k2data)")
    _topic_options(sp)
    sp.set_defaults(func=cmd_feed)

    sp = sub.add_parser("sink", help="write the Kafka/Redpanda trade topics into the warehouse (consumer group)")
    sp.add_argument("--kafka", metavar="BOOTSTRAP", help="bootstrap servers HOST:PORT[,...] "
                    "(env K2_KAFKA_BOOTSTRAP_SERVERS); librdkafka settings from K2_KAFKA_*")
    sp.add_argument("--group", default="k2-bronze-sink", help="consumer group (default k2-bronze-sink)")
    sp.add_argument("--duration", type=float, help="stop cleanly after this many seconds")
    _topic_options(sp)
    _storage_options(sp)
    sp.set_defaults(func=cmd_sink)

    sp = sub.add_parser("topics", help="create or list K2's Kafka topics")
    sp.add_argument("action", choices=("create", "list"))
    sp.add_argument("--kafka", metavar="BOOTSTRAP", help="bootstrap servers (env K2_KAFKA_BOOTSTRAP_SERVERS)")
    sp.add_argument("--exchange", help="exchanges whose topics to create (default all)")
    _topic_options(sp)
    sp.set_defaults(func=cmd_topics)

    sp = sub.add_parser("status", help="show the running pipeline's connections; exit 1 if a feed is down")
    sp.add_argument("--format", default="table", choices=("table", "json"))
    _storage_options(sp)
    sp.set_defaults(func=cmd_status)

    sp = sub.add_parser("record", help="write an exchange's raw frames to a file that k2 load reads")
    _feed_options(sp)
    sp.add_argument("--out", required=True, help="output file (one frame per line)")
    sp.add_argument("--duration", type=float, help="stop after this many seconds")
    sp.set_defaults(func=cmd_record)

    sp = sub.add_parser("demo", help="run the whole pipeline on the built-in simulator, then show candles")
    sp.add_argument("--duration", type=float, default=20.0, help="seconds of simulated trading (default 20)")
    sp.add_argument("--rate", type=float, default=200.0, help="simulated trades per second per exchange")
    sp.add_argument("--data-dir", help="where to keep the demo warehouse (default ./k2demo, reset each run)")
    sp.add_argument("--exchange", help="simulated exchanges: a comma list or all (default binance,kraken)")
    sp.set_defaults(func=cmd_demo)

    sp = sub.add_parser("simulate", help="run local exchange servers (seeded trades, replay, faults)")
    from k2.simulator.command import add_arguments as _simulate_arguments

    _simulate_arguments(sp)
    sp.set_defaults(func=cmd_simulate)
    return p


def _topic_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partitions", type=int, default=3,
                   help="partitions of each topic K2 creates when missing (default 3)")
    p.add_argument("--replication-factor", type=int, default=None,
                   help="replication factor of created topics (default min(3, brokers))")


def _feed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", help="binance, kraken, coinbase, bybit, okx, bitfinex, gemini: one, a comma list, "
                                      "or all (env K2_EXCHANGES)")
    p.add_argument("--symbols", help="comma list, canonical (BTC/USD) or native (XBT/USD, BTCUSDT) (env K2_SYMBOLS)")


def _crash_log(exc: BaseException) -> str:
    path = Path(os.environ.get("K2_LOG_DIR", tempfile.gettempdir())) / "k2-error.log"
    try:
        with path.open("a") as f:
            f.write("".join(traceback.format_exception(exc)))
            f.write("\n")
    except OSError:
        return "(could not write the log)"
    return str(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        logging.basicConfig(level=os.environ.get("K2_LOG_LEVEL", "INFO").upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
        return int(args.func(args) or 0)
    except K2Error as exc:
        print(f"k2: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("k2: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit:
        raise
    except Exception as exc:
        where = _crash_log(exc)
        print(f"k2: internal error: {_first_line(exc)} (traceback in {where})", file=sys.stderr)
        return 1
