"""The `k2` command line. Thin: parse arguments, call one function, print.

Commands are grouped by job, one module each: run.py (run, demo, feed, sink, record, simulate),
read.py (ohlcv, trades, query, chart), history.py (load), operate.py (status, validate, gaps,
rejects, rebuild, schema, topics), markets.py (spreads, health); options.py holds what they share. A handler imports the module
that does its job when it runs, so `k2 feed` loads no warehouse and `k2 --help` no service.

A mistake the user can make (bad flag, unknown exchange, missing file) is one line on stderr
and exit status 2; an unexpected error is one line on the terminal and a traceback in the log.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Sequence

from k2 import __version__
from k2.cli import history, markets, operate, read, run
from k2.cli.options import ArgumentParser, config_option
from k2.errors import K2Error, first_line

log = logging.getLogger("k2")


def build_parser() -> ArgumentParser:
    p = ArgumentParser(prog="k2", description="K2: crypto trades -> bronze -> silver -> gold candles.")
    p.add_argument("--version", action="version", version=f"k2 {__version__}")
    config_option(p, top=True)
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for group in (run, read, history, operate, markets):
        group.register(sub)
    for command in sub.choices.values():  # also after the command: k2 ohlcv ... --config FILE
        config_option(command)
    return p


_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _setup_logging() -> None:
    level = os.environ.get("K2_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in _LEVELS:
        raise K2Error(f"K2_LOG_LEVEL must be one of {', '.join(_LEVELS)}, got {os.environ['K2_LOG_LEVEL']!r}")
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    # the HTTP client libraries log each failed attempt (with a retry line and the whole URL): K2
    # reports a network failure once, with the endpoint (its own messages)
    for name in ("urllib3.connectionpool", "clickhouse_connect"):  # (clickhouse_connect resets "urllib3")
        logging.getLogger(name).setLevel(max(logging.ERROR, logging.getLogger().level))


def _crash_log(exc: BaseException) -> str:
    """The traceback, in the user's own crash log (k2.runfile: 0600, never a shared /tmp path)."""
    from k2.runfile import append_crash_log

    try:
        return str(append_crash_log("".join(traceback.format_exception(exc)) + "\n"))
    except OSError:
        return "(could not write the log)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        _setup_logging()
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
        print(f"k2: internal error: {first_line(exc)} (traceback in {where})", file=sys.stderr)
        return 1
