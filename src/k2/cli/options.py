"""What the command groups share: the argument parser that reports a mistake in one line, the
common option sets, settings from flags, and printing a read's result."""

from __future__ import annotations

import argparse
import math
import os
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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help text as written (examples keep their lines), options wrapped to the terminal; the
    default of an option is shown where its help does not say it already."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.default not in (None, False, argparse.SUPPRESS) and "default" not in text
                and action.option_strings and action.nargs != 0):
            text += " (default %(default)s)"
        return text


# -- commands, grouped by job ------------------------------------------------------------------------
#: the groups `k2 --help` lists, in its order: (group, heading)
GROUPS: list[tuple[str, str]] = [
    ("run", "Run the pipeline"),
    ("read", "Read the warehouse"),
    ("history", "Bring in history"),
    ("operate", "Operate and check"),
    ("other", "Other commands"),
]
#: name -> (group, one-line summary), in the order the commands were added
COMMANDS: dict[str, tuple[str, str]] = {}


def _width() -> int:
    import shutil

    return max(60, min(120, shutil.get_terminal_size().columns - 2))


def _wrap(text: str, width: int, indent: str = "") -> str:
    import textwrap

    return "\n".join(textwrap.fill(p, width, initial_indent=indent, subsequent_indent=indent)
                     for p in text.split("\n"))


def examples_text(examples: list[str], width: int = 78) -> str:
    """Example command lines, each with its comment (`cmd  # what it does`) aligned after the
    commands when that fits in `width`, else on the line above its command."""
    pairs = [(cmd.strip(), note.strip()) for cmd, _, note in (e.partition("  # ") for e in examples)]
    col = max((len(c) for c, n in pairs if n and len(c) + len(n) + 6 <= width), default=0) + 4
    out = ["examples:"]
    for cmd, note in pairs:
        if not note:
            out.append(f"  {cmd}")
        elif len(cmd) + 4 <= col and col + len(note) + 2 <= width:
            out.append(f"  {cmd:<{col - 2}}# {note}")
        elif len(cmd) + len(note) + 6 <= width:
            out.append(f"  {cmd}  # {note}")
        else:
            out.extend((f"  # {note}", f"  {cmd}"))
    return "\n".join(out)


def command(sub, name: str, group: str, summary: str, examples: list[str], details: str = "",
            func: Callable | None = None) -> argparse.ArgumentParser:
    """Add a command to `k2`: its parser, listed under `group` in `k2 --help` with `summary`;
    `examples` (command lines, each may end with `  # what it does`) end its own --help. A new
    command joins by calling this from its module's `register(sub)` (see k2.cli)."""
    if group not in dict(GROUPS):
        raise ValueError(f"unknown command group {group!r}")
    width = _width()
    description = _wrap(summary, width) + (f"\n\n{_wrap(details, width)}" if details else "")
    sp = sub.add_parser(name, description=description, epilog=examples_text(examples),
                        formatter_class=HelpFormatter)
    COMMANDS[name] = (group, summary)
    if func is not None:
        sp.set_defaults(func=func)
    return sp


def commands_help(width: int | None = None) -> str:
    """The grouped command list of `k2 --help`, wrapped to the terminal."""
    import textwrap

    width = width or _width()
    name_w = max((len(n) for n in COMMANDS), default=8) + 2
    out = []
    for group, heading in GROUPS:
        names = [n for n, (g, _) in COMMANDS.items() if g == group]
        if not names:
            continue
        out.append(f"{heading}:")
        for n in names:
            wrapped = textwrap.wrap(COMMANDS[n][1], max(30, width - name_w - 2)) or [""]
            out.append(f"  {n:<{name_w}}{wrapped[0]}")
            out.extend(" " * (name_w + 2) + more for more in wrapped[1:])
        out.append("")
    return "\n".join(out).rstrip()


# -- numbers on the command line: checked by argparse, so a bad one is a one-line usage error --------
def _int_type(lowest: int, what: str) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"{what}, got {value}")
        return value

    return parse


def _float_type(what: str, lowest_exclusive: float = 0.0) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value <= lowest_exclusive:
            raise argparse.ArgumentTypeError(f"{what}, got {text}")
        return value

    return parse


#: 0 means "no limit" where a flag says so (--limit 0, --max-candles 0)
count_or_zero = _int_type(0, "must be 0 (no limit) or a positive number")
positive_int = _int_type(1, "must be a positive whole number")
positive_seconds = _float_type("must be a positive number of seconds")
positive_number = _float_type("must be a positive number")


def config_option(p: argparse.ArgumentParser, top: bool = False) -> None:
    """--config and --no-progress before or after the command: `k2 --config F ohlcv ...` =
    `k2 ohlcv ... --config F`."""
    p.add_argument("--config", metavar="FILE", default=None if top else argparse.SUPPRESS,
                   help="settings file (env K2_CONFIG, default ./k2.toml)")
    p.add_argument("--no-progress", action="store_true", default=False if top else argparse.SUPPRESS,
                   help="no progress bars or live status: plain lines (also when stderr is not a terminal, "
                        "or NO_COLOR is set)")


# -- shared option groups --------------------------------------------------------------------------
def storage_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="embedded data directory (env K2_DATA_DIR, default ./k2data)")
    p.add_argument("--warehouse", help="ClickHouse server URL instead of the embedded store (env K2_WAREHOUSE)")


def read_options(p: argparse.ArgumentParser, exchange_default: str = "all") -> None:
    storage_options(p)
    exchange_option(p, exchange_default)
    time_options(p)
    format_option(p)
    p.add_argument("--limit", type=count_or_zero, default=None,
                   help="the newest N rows (default 1,000,000; 0 = all); a cut answer says so on stderr")
    p.add_argument("--oldest", action="store_true", help="with --limit: the oldest N rows instead of the newest")


EXCHANGE_LIST_HELP = "an exchange, a comma list (binance,kraken) or all"


def exchange_option(p: argparse.ArgumentParser, default: str | None = "all", help: str = "") -> None:
    """--exchange on the read commands: one, a comma list, or all."""
    p.add_argument("--exchange", default=default, metavar="EXCHANGE",
                   help=help or f"{EXCHANGE_LIST_HELP} (default {default})")


def format_option(p: argparse.ArgumentParser, choices: tuple[str, ...] = ("table", "csv", "json")) -> None:
    p.add_argument("--format", default="table", choices=choices,
                   help="table: for reading, fits the terminal; " + ", ".join(
                       {"csv": "csv: exact values with a header", "json": "json: exact values, one JSON object per line"}[c]
                       for c in choices if c != "table") + " (default table)")


TIME_HELP = "ISO-8601 (UTC unless it says), epoch seconds or ms, or a time ago: 30m, 1h, 7d"


def time_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", help=f"start (inclusive): {TIME_HELP}")
    p.add_argument("--until", help=f"end (exclusive): {TIME_HELP}")


def feed_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--exchange", help="binance, kraken, coinbase, bybit, okx, bitfinex, gemini: one, a comma list, "
                                      "or all (env K2_EXCHANGES)")
    p.add_argument("--symbols", help="comma list, canonical (BTC/USD) or native (XBT/USD, BTCUSDT) (env K2_SYMBOLS)")


def topic_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--partitions", type=positive_int, default=3,
                   help="partitions of each topic K2 creates when missing (default 3)")
    p.add_argument("--replication-factor", type=positive_int, default=None,
                   help="replication factor of created topics (default min(3, brokers))")


def metrics_addr_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--metrics-addr", metavar="HOST:PORT",
                   help="where this process serves /metrics, /healthz, status and reads (env K2_METRICS_ADDR, "
                        "default 127.0.0.1:9108; 127.0.0.1:0 picks a free port)")


def kafka_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kafka", metavar="BOOTSTRAP", help="bootstrap servers HOST:PORT[,...] "
                   "(env K2_KAFKA_BOOTSTRAP_SERVERS); librdkafka settings from K2_KAFKA_*")


# -- settings from flags ---------------------------------------------------------------------------
def settings_from(args: argparse.Namespace) -> Settings:
    s = load_settings(config_path=getattr(args, "config", None))
    if getattr(args, "data_dir", None):
        s.data_dir, s.data_dir_source = Path(args.data_dir), "--data-dir"
    if getattr(args, "warehouse", None):
        s.warehouse_url = args.warehouse
    if getattr(args, "metrics_addr", None):
        from k2.config import check_address

        check_address("--metrics-addr", args.metrics_addr)
        s.metrics_addr, s.metrics_addr_source = args.metrics_addr, "--metrics-addr"
    if s.warehouse_url:  # a malformed URL is refused before any work starts
        from k2.warehouse.server import parse_url

        parse_url(s.warehouse_url)
    return s


def check_data_dir(s: Settings, must_exist: bool) -> None:
    """Refuse a data dir that cannot serve the command before any work starts, saying which path
    and how it was chosen. Reads need one that exists (else they would create an empty store and
    answer "no rows"); writers need one that exists or can be created."""
    if s.warehouse_url:
        return
    d = s.data_dir
    where = f"data dir {d} (from {s.data_dir_source})"
    if d.exists() and not d.is_dir():
        raise K2Error(f"{where} is not a directory")
    if d.is_dir():
        return
    if must_exist:
        raise K2Error(f"{where} does not exist; check the path (k2 run and k2 load create a new one)")
    parent = d.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise K2Error(f"cannot create {where}: {parent} is a file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise K2Error(f"cannot create {where}: no permission to write in {parent}")


def feed_settings(args: argparse.Namespace) -> tuple[Settings, list[str]]:
    """Settings and the exchanges to run, for the commands that connect to exchanges."""
    s = settings_from(args)
    exchanges = parse_exchange_list(getattr(args, "exchange", None), s.exchanges)
    if getattr(args, "symbols", None):
        s.symbols = [x.strip() for x in args.symbols.split(",") if x.strip()]
        if not s.symbols:
            raise K2Error("--symbols: no symbol given")
    return s, exchanges


# -- reads -------------------------------------------------------------------------------------------
def reader_for(args: argparse.Namespace, lean: bool = False, batch_job: bool = False):
    """The running pipeline when one holds the data dir, else the warehouse itself. `batch_job`
    (k2 export): when this process opens the data dir itself, no writer shares it, so the read
    may use two threads and ten minutes; through a running pipeline its limits apply."""
    from dataclasses import replace

    from k2.read.remote import open_reader  # loads the warehouse layer: only the read commands need it

    s = settings_from(args)
    check_data_dir(s, must_exist=True)
    limits = s.read
    if batch_job:
        limits = replace(s.read, max_threads=max(2, s.read.max_threads), timeout_s=max(600.0, s.read.timeout_s))
    return open_reader(s.data_dir, s.warehouse_url, limits, lean=lean and s.release_startup_pages)


#: exit status of a read whose answer was cut at the default limit (the user did not ask for less)
EXIT_CUT = 3


def run_read(args: argparse.Namespace, fn: Callable) -> int:
    """Open the reader, print `fn(reader)` (a k2.read.queries.Page, or text), close. A page cut
    short says so on stderr; cut at the default limit, the exit status is EXIT_CUT as well."""
    reader = reader_for(args)
    try:
        page = fn(reader)
    finally:
        reader.close()
    if isinstance(page, str):
        emit(page)
        return 0
    emit(page.text)
    if page.hidden:
        print(f"k2: note: {page.hidden_note()}", file=sys.stderr)
    if page.cut:
        print(f"k2: {'warning' if page.default_limit else 'note'}: {page.note()}", file=sys.stderr)
        return EXIT_CUT if page.default_limit else 0
    return 0


def emit(text: str) -> None:
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        print("(no rows)", file=sys.stderr)
