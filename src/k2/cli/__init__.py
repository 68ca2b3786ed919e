"""The `k2` command line. Thin: parse arguments, call one function, print.

Commands are grouped by job, one module each: run.py (run, demo, feed, sink, record, simulate),
read.py (ohlcv, trades, query, chart), history.py (load), operate.py (status, validate, gaps,
rejects, rebuild, schema, topics), reconcile.py (reconcile), markets.py (spreads, health);
options.py holds what they share. A handler imports the module that does its job when it runs, so `k2 feed` loads no warehouse and `k2 --help` no service.

A mistake the user can make (bad flag, unknown exchange, missing file) is one line on stderr
and exit status 2; an unexpected error is one line on the terminal and a traceback in the log.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
import traceback
from typing import Sequence

from k2 import __version__
from k2.cli import history, markets, operate, read, reconcile, run
from k2.cli.options import COMMANDS, ArgumentParser, HelpFormatter, commands_help, config_option, examples_text
from k2.errors import K2Error, first_line
from k2.services.signals import Terminated, sigterm_stops_cleanly

log = logging.getLogger("k2")


EXAMPLES = [
    "k2 demo  # the pipeline on simulated exchanges",
    "k2 run --exchange binance,kraken  # ingest live trades until Ctrl-C",
    "k2 ohlcv BTC/USD --interval 1m --since 1h  # the last hour's candles",
    "k2 chart BTC/USD --interval 5m --since 1d --out btc.html",
    "k2 COMMAND --help  # a command's options and examples",
]
ENVIRONMENT = "environment: K2_CONFIG, K2_DATA_DIR, K2_LOG_LEVEL, NO_COLOR and the K2_* settings (README: Configuration)"


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="k2", formatter_class=HelpFormatter, usage="k2 [--config FILE] [--no-progress] COMMAND ...",
                       description="K2: crypto trades -> bronze -> silver -> gold candles.")
    p.add_argument("--version", action="version", version=f"k2 {__version__}")
    config_option(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser, prog="k2")
    for group in (run, read, history, operate, reconcile, markets):
        group.register(sub)
    for command in sub.choices.values():  # also after the command: k2 ohlcv ... --config FILE
        config_option(command)
    # `k2 --help` lists the commands by job (options.COMMANDS), not argparse's one flat list
    for action in sub._choices_actions:  # a command added with plain add_parser(help=...) is listed too
        COMMANDS.setdefault(action.dest, ("other", action.help or ""))
    sub.help = argparse.SUPPRESS
    p.description += "\n\n" + commands_help()
    p.epilog = examples_text(EXAMPLES) + "\n\n" + textwrap.fill(ENVIRONMENT, 78, subsequent_indent="  ")
    return p


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _setup_logging() -> None:
    level = os.environ.get("K2_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in _LEVELS:
        raise K2Error(f"K2_LOG_LEVEL must be one of {', '.join(_LEVELS)}, got {os.environ['K2_LOG_LEVEL']!r}")
    from k2.terminal import fancy

    # on a terminal a person reads the time of day; in a log file the date too
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr,
                        datefmt="%H:%M:%S" if fancy(sys.stderr) else None)
    # the HTTP client libraries log each failed attempt (with a retry line and the whole URL): K2
    # reports a network failure once, with the endpoint (its own messages)
    for name in ("urllib3.connectionpool", "clickhouse_connect"):  # (clickhouse_connect resets "urllib3")
        logging.getLogger(name).setLevel(max(logging.ERROR, logging.getLogger().level))
    # picows logs each WebSocket it opens and closes (buffer sizes, mask_impl=avx2) under
    # "picows.<logger_name>": K2 logs "connected to" and "disconnected" itself, so picows's lines
    # are for K2_LOG_LEVEL=DEBUG only
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("picows").setLevel(logging.WARNING)


def _crash_log(exc: BaseException) -> str:
    """The traceback, in the user's own crash log (k2.runfile: 0600, never a shared /tmp path)."""
    from k2.runfile import append_crash_log

    try:
        return str(append_crash_log("".join(traceback.format_exception(exc)) + "\n"))
    except OSError:
        return "(could not write the log)"


def os_error_text(exc: OSError) -> str:
    """An OSError in one line, as the system says it, with the file it was about when it says one
    ("No space left on device: /data/k2/...")."""
    text = exc.strerror or first_line(exc)
    return f"{text}: {exc.filename}" if exc.filename else text


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    sigterm_stops_cleanly()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        if getattr(args, "no_progress", False):
            os.environ["K2_NO_PROGRESS"] = "1"  # k2.terminal: plain lines, no bars or live status
        _setup_logging()
        return int(args.func(args) or 0)
    except K2Error as exc:
        print(f"k2: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("k2: stopped (SIGTERM)", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("k2: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except SystemExit:
        raise
    except OSError as exc:  # the machine refused: a disk, a device, a file, the network -- not a K2 bug
        where = _crash_log(exc)
        print(f"k2: error: {os_error_text(exc)} (details in {where})", file=sys.stderr)
        return 1
    except Exception as exc:
        where = _crash_log(exc)
        print(f"k2: internal error: {first_line(exc)} (traceback in {where})", file=sys.stderr)
        return 1
