"""Commands that run something until stopped: run, demo, feed, sink, record, serve, simulate.

Each handler imports its service when the command runs, so a process loads only what its job
needs (`k2 feed` never loads the warehouse; `k2 --help` loads no service).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from k2.cli.options import (
    check_data_dir,
    command,
    metrics_addr_option,
    feed_options,
    feed_settings,
    kafka_option,
    positive_number,
    positive_seconds,
    settings_from,
    storage_options,
    topic_options,
)
from k2.errors import K2Error
from k2.exchanges import parse_exchange_list
from k2.simulator.command import add_arguments as simulate_arguments


def writer_process(settings) -> None:
    """A long-running writer's memory settings, made before the warehouse layer loads pyarrow
    (which reads its allocator from the environment once; docs/adr/0008)."""
    if settings.release_startup_pages and not settings.warehouse_url:
        from k2.warehouse.memory import lean_writer_process

        lean_writer_process()


def bootstrap_of(flag: str | None, settings) -> str:
    bootstrap = flag or settings.kafka_bootstrap
    if not bootstrap:
        raise K2Error("no Kafka bootstrap servers: pass --kafka HOST:PORT or set K2_KAFKA_BOOTSTRAP_SERVERS")
    return bootstrap


def cmd_run(args: argparse.Namespace) -> int:
    s, exchanges = feed_settings(args)
    check_data_dir(s, must_exist=False)
    writer_process(s)
    if args.kafka is not None:
        from k2.services.run_kafka import run_kafka

        summary = run_kafka(s, exchanges, bootstrap_of(args.kafka, s), args.duration, args.group,
                            args.partitions, args.replication_factor)
    else:
        from k2.services.run import run_direct

        summary = run_direct(s, exchanges, args.duration)
    print(summary.text())
    return _run_status(summary)


def _run_status(summary) -> int:
    """0, or 1 with a line per problem: a venue that never connected, rows not written."""
    for problem in summary.problems():
        print(f"k2: error: {problem}", file=sys.stderr)
    return 1 if summary.problems() else 0


def cmd_feed(args: argparse.Namespace) -> int:
    from k2.services.feed import run_feed

    s, exchanges = feed_settings(args)
    check_data_dir(s, must_exist=False)  # where undeliverable messages are spooled
    summary = run_feed(s, exchanges, bootstrap_of(args.kafka, s), args.duration, args.partitions,
                       args.replication_factor, history_timeout_s=args.history_timeout)
    print(summary.text())
    return _run_status(summary)


def cmd_sink(args: argparse.Namespace) -> int:
    s = settings_from(args)
    check_data_dir(s, must_exist=False)
    writer_process(s)
    from k2.services.sink import run_sink

    stats = run_sink(s, bootstrap_of(args.kafka, s), args.group, args.duration, args.partitions,
                     args.replication_factor)
    print("sink: " + ", ".join(f"{k} {v:,} written" for k, v in stats.written.items())
          + f"; {sum(stats.duplicates.values()):,} re-delivered trades skipped; {stats.rejects_written:,} rejects")
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    from k2.services.record import record

    s, exchanges = feed_settings(args)
    if len(exchanges) != 1:
        raise K2Error("k2 record takes exactly one --exchange")
    out = Path(args.out)
    if out.is_dir():
        raise K2Error(f"--out {out} is a directory; give a file name (frames are appended to it)")
    if out.exists() and not out.is_file():
        raise K2Error(f"--out {out} is not a regular file")
    if not out.absolute().parent.is_dir():
        raise K2Error(f"--out {out}: folder {out.absolute().parent} does not exist")
    n = record(s, exchanges[0], out, args.duration)
    print(f"recorded {n['frames']:,} frames ({n['trades']:,} trades) to {args.out}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    s = settings_from(args)
    exchanges = parse_exchange_list(args.exchange, default=["binance", "kraken"])
    writer_process(s)
    from k2.services.demo import run_demo

    return run_demo(s, duration=args.duration, rate=args.rate,
                    data_dir=Path(args.data_dir) if args.data_dir else None, exchanges=exchanges)


def cmd_serve(args: argparse.Namespace) -> int:
    import sys

    from k2.services.api import parse_addr
    from k2.services.serve import run_serve

    s = settings_from(args)
    if args.addr:
        parse_addr(args.addr)
    if not s.warehouse_url and not (s.data_dir / "chdb").is_dir():
        raise K2Error(f"no K2 data in {s.data_dir} (run k2 run or k2 load first, or pass --data-dir)")

    def ready(address: str) -> None:
        print(f"k2 serve: ClickHouse HTTP interface on http://{address} (database k2, read-only); "
              "Ctrl-C stops", file=sys.stderr, flush=True)

    run_serve(s, args.addr, args.duration, on_ready=ready)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from k2.simulator.command import run_command

    return run_command(args)


def register(sub) -> None:
    sp = command(sub, "run", "run", "ingest live trades into the warehouse (the main job)", [
        "k2 run                                       # the exchanges of k2.toml (or K2_EXCHANGES)",
        "k2 run --exchange binance,kraken --symbols BTC/USD,ETH/USD",
        "k2 run --exchange all --duration 3600        # an hour, then a summary",
        "k2 run --kafka localhost:9092                # through Kafka: feed and sink in one process",
    ], "On a terminal a status table (one row per venue and connection) redraws in place; "
       "k2 status, the read commands and /metrics reach the running process.", cmd_run)
    feed_options(sp)
    sp.add_argument("--duration", type=positive_seconds, help="stop cleanly after this many seconds")
    sp.add_argument("--kafka", nargs="?", const="", metavar="BOOTSTRAP",
                    help="run through Kafka/Redpanda: feed and sink in one process "
                         "(bootstrap HOST:PORT, or env K2_KAFKA_BOOTSTRAP_SERVERS)")
    sp.add_argument("--group", default="k2-bronze-sink", help="sink consumer group (with --kafka)")
    topic_options(sp)
    storage_options(sp)
    metrics_addr_option(sp)

    sp = command(sub, "demo", "run", "run the whole pipeline on the built-in simulator, then show candles", [
        "k2 demo                                      # 20 s of simulated binance and kraken trading",
        "k2 demo --exchange all --duration 60 --rate 500",
    ], func=cmd_demo)
    sp.add_argument("--duration", type=positive_seconds, default=20.0, help="seconds of simulated trading (default 20)")
    sp.add_argument("--rate", type=positive_number, default=200.0,
                    help="simulated trades per second per exchange (default 200)")
    sp.add_argument("--data-dir", help="where to keep the demo warehouse (default ./k2demo, reset each run)")
    sp.add_argument("--exchange", help="simulated exchanges: a comma list or all (default binance,kraken)")

    sp = command(sub, "feed", "run", "publish live trades to Kafka/Redpanda (no warehouse in this process)", [
        "k2 feed --kafka localhost:9092 --exchange binance,coinbase",
    ], func=cmd_feed)
    feed_options(sp)
    kafka_option(sp)
    sp.add_argument("--duration", type=positive_seconds, help="stop cleanly after this many seconds")
    sp.add_argument("--data-dir", help="where undeliverable messages are spooled (default ./k2data)")
    sp.add_argument("--history-timeout", type=positive_seconds, default=None, metavar="SECONDS",
                    help="time allowed at start to read what the broker holds (last trade per symbol, open gaps; "
                         "default 60); a read cut short turns health red")
    topic_options(sp)
    metrics_addr_option(sp)

    sp = command(sub, "sink", "run", "write the Kafka/Redpanda trade topics into the warehouse (consumer group)", [
        "k2 sink --kafka localhost:9092 --data-dir /srv/k2data",
    ], func=cmd_sink)
    kafka_option(sp)
    sp.add_argument("--group", default="k2-bronze-sink", help="consumer group (default k2-bronze-sink)")
    sp.add_argument("--duration", type=positive_seconds, help="stop cleanly after this many seconds")
    topic_options(sp)
    storage_options(sp)
    metrics_addr_option(sp)

    sp = command(sub, "record", "run", "write one exchange's raw frames to a file that k2 load reads", [
        "k2 record --exchange kraken --symbols BTC/USD --out kraken.jsonl",
        "k2 load kraken.jsonl --exchange kraken       # later: load what was recorded",
    ], func=cmd_record)
    sp.add_argument("--exchange", help="the one exchange to record (binance, kraken, coinbase, bybit, okx, "
                                       "bitfinex, gemini; env K2_EXCHANGES)")
    sp.add_argument("--symbols", help="comma list, canonical (BTC/USD) or native (XBT/USD, BTCUSDT) (env K2_SYMBOLS)")
    sp.add_argument("--out", required=True, help="output file (one frame per line; appended to)")
    sp.add_argument("--duration", type=positive_seconds, help="stop after this many seconds")

    sp = command(sub, "serve", "run", "serve the ClickHouse-compatible read endpoint over a data dir (no ingest)", [
        "k2 serve --data-dir k2data                   # then: curl 'http://127.0.0.1:9108/?query=SELECT+1'",
        "k2 serve --addr 127.0.0.1:8123",
    ], func=cmd_serve)
    sp.add_argument("--addr", help="HOST:PORT to listen on (env K2_METRICS_ADDR, default 127.0.0.1:9108)")
    sp.add_argument("--duration", type=positive_seconds, help="stop after this many seconds")
    storage_options(sp)

    sp = command(sub, "simulate", "run", "run local exchange servers (seeded trades, replay, faults)", [
        "k2 simulate --port 0 --rate 100              # prints the K2_*_WS_URL settings to point k2 run at it",
        "k2 simulate --exchange binance --drop-every 30",
    ], func=cmd_simulate)
    simulate_arguments(sp)
