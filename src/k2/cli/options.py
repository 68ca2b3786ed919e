"""What the command groups share: the argument parser that reports a mistake in one line, the
common option sets, settings from flags, and printing a read's result."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

from k2.config import Settings, load_settings
from k2.errors import K2Error
from k2.exchanges import parse_exchange_list


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise K2Error(f"{self.prog}: {message} (see {self.prog} --help)")


# -- shared option groups --------------------------------------------------------------------------
def storage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="embedded data directory (env K2_DATA_DIR, default ./k2data)")
    p.add_argument("--warehouse", help="ClickHouse server URL instead of the embedded store (env K2_WAREHOUSE)")


def read_options(p: argparse.ArgumentParser, exchange_default: str = "all") -> None:
    storage_options(p)
    p.add_argument("--exchange", default=exchange_default, help="exchange name, or 'all' (default)")
    p.add_argument("--since", help="start, ISO-8601 UTC (inclusive)")
    p.add_argument("--until", help="end, ISO-8601 UTC (exclusive)")
    p.add_argument("--format", default="table", choices=("table", "csv", "json"))
    p.add_argument("--limit", type=int, default=1_000_000)


def feed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", help="binance, kraken, coinbase, bybit, okx, bitfinex, gemini: one, a comma list, "
                                      "or all (env K2_EXCHANGES)")
    p.add_argument("--symbols", help="comma list, canonical (BTC/USD) or native (XBT/USD, BTCUSDT) (env K2_SYMBOLS)")


def topic_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partitions", type=int, default=3,
                   help="partitions of each topic K2 creates when missing (default 3)")
    p.add_argument("--replication-factor", type=int, default=None,
                   help="replication factor of created topics (default min(3, brokers))")


def kafka_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="bootstrap servers HOST:PORT[,...] "
                   "(env K2_KAFKA_BOOTSTRAP_SERVERS); librdkafka settings from K2_KAFKA_*")


# -- settings from flags ---------------------------------------------------------------------------
def settings_from(args: argparse.Namespace) -> Settings:
    s = load_settings(config_path=getattr(args, "config", None))
    if getattr(args, "data_dir", None):
        s.data_dir = Path(args.data_dir)
    if getattr(args, "warehouse", None):
        s.warehouse_url = args.warehouse
    return s


def feed_settings(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """Settings and the exchanges to run, for the commands that connect to exchanges."""
    s = settings_from(args)
    exchanges = parse_exchange_list(getattr(args, "exchange", None), s.exchanges)
    if getattr(args, "symbols", None):
        s.symbols = [x.strip() for x in args.symbols.split(",") if x.strip()]
    duration = getattr(args, "duration", None)
    if duration is not None and duration <= 0:
        raise K2Error("--duration must be positive")
    return s, exchanges


# -- reads -------------------------------------------------------------------------------------------
def reader_for(args: argparse.Namespace, lean: bool = False, batch_job: bool = False):
    """The running pipeline when one holds the data dir, else the warehouse itself. `batch_job`
    (k2 export): when this process opens the data dir itself, no writer shares it, so the read
    may use two threads and ten minutes; through a running pipeline its limits apply."""
    from dataclasses import replace

    from k2.read.remote import open_reader  # loads the warehouse layer: only the read commands need it

    s = settings_from(args)
    limits = s.read
    if batch_job:
        limits = replace(s.read, max_threads=max(2, s.read.max_threads), timeout_s=max(600.0, s.read.timeout_s))
    return open_reader(s.data_dir, s.warehouse_url, limits, lean=lean and s.release_startup_pages)


def run_read(args: argparse.Namespace, fn: Callable) -> int:
    """Open the reader, print `fn(reader)`, close."""
    reader = reader_for(args)
    try:
        emit(fn(reader))
    finally:
        reader.close()
    return 0


def emit(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        print("(no rows)", file=sys.stderr)
