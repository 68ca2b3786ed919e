"""What a person sees: the CLI driven in a pseudo-terminal of 80 columns (its output fed to a
terminal emulator, pyte, and the screen read back) and piped (no escape codes, every column).

Covers the live status of `k2 run`, progress bars, tables that fit the terminal, grouped help with
examples, `--exchange a,b` on the read commands and `--metrics-addr` (issue 20)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest

from k2.simulator.process import SimulatorProcess
from k2.terminal import format_table, parse_tsv

ESC = "\x1b"


def _k2() -> list[str]:
    script = Path(sys.executable).with_name("k2")
    return [str(script)] if script.exists() else [sys.executable, "-m", "k2"]


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_") and k not in ("NO_COLOR", "COLUMNS")}
    env.update(K2_LOG_DIR=str(tmp_path), K2_INSTRUMENTS_REFRESH="0", TERM="xterm-256color", **more)
    return env


def in_terminal(args: list[str], env: dict[str, str], cols: int = 80, rows: int = 60,
                timeout: float = 120) -> tuple[int, list[str], str]:
    """Run k2 with stdin, stdout and stderr on a pseudo-terminal of `cols` x `rows`; return its exit
    status, the screen a person would see at the end (pyte) and the raw output."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen([*_k2(), *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    raw = bytearray()
    deadline = time.monotonic() + timeout
    poller = select.poll()  # not select(): in a long test session the descriptor may be above 1024
    poller.register(master, select.POLLIN)
    try:
        while time.monotonic() < deadline:
            if poller.poll(500):
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                raw += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    screen = pyte.Screen(cols, rows)
    stream = pyte.ByteStream(screen)
    stream.feed(bytes(raw).replace(b"\n", b"\r\n") if b"\r\n" not in raw else bytes(raw))
    return code, [line.rstrip() for line in screen.display], bytes(raw).decode("utf-8", "replace")


def piped(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*_k2(), *args], env=env, capture_output=True, text=True, timeout=timeout)


# -- help ---------------------------------------------------------------------------------------------
def _subparsers():
    from k2.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return parser, action.choices


def test_every_command_is_in_a_group_has_an_example_and_describes_every_option():
    from k2.cli.options import COMMANDS

    _parser, commands = _subparsers()
    assert set(commands) <= set(COMMANDS)
    for name, sp in commands.items():
        assert COMMANDS[name][0] != "other", f"k2 {name} is in no group"
        assert sp.epilog and sp.epilog.startswith("examples:"), name
        assert any(line.strip().startswith(f"k2 {name}") for line in sp.epilog.splitlines()), name
        for action in sp._actions:
            if action.option_strings and action.help != "==SUPPRESS==":
                assert action.help and action.help.strip(), f"k2 {name} {action.option_strings[0]} has no help"
        for action in sp._actions:
            if not action.option_strings:
                assert action.help, f"k2 {name} {action.dest} has no help"


def test_k2_help_lists_commands_by_job_and_fits_80_columns(tmp_path):
    r = piped(["--help"], {**_env(tmp_path), "COLUMNS": "80"})
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    headings = [line for line in lines if line in ("Run the pipeline:", "Read the warehouse:", "Bring in history:",
                                                   "Operate and check:")]
    assert headings == ["Run the pipeline:", "Read the warehouse:", "Bring in history:", "Operate and check:"]
    first = {m.group(1): i for i, line in reversed(list(enumerate(lines)))
             if (m := re.match(r"  (\w+)\s{2,}\S", line))}
    assert first["run"] < first["ohlcv"] < first["load"] < first["schema"]
    assert "examples:" in r.stdout and "Other commands:" not in r.stdout
    for cmd in ("run", "ohlcv", "load", "record"):
        sub = piped([cmd, "--help"], {**_env(tmp_path), "COLUMNS": "80"})
        assert sub.returncode == 0 and "examples:" in sub.stdout, sub.stdout
        assert all(len(line) <= 80 for line in sub.stdout.splitlines()), cmd
    assert "the one exchange to record" in piped(["record", "--help"], _env(tmp_path)).stdout


# -- tables ---------------------------------------------------------------------------------------------
TSV = ("bucket\texchange\topen\tvolume\ttrade_count\ttrade_id\tvwap\n"
       "String\tString\tDecimal(38, 18)\tDecimal(38, 18)\tUInt64\tUInt64\tDecimal(38, 18)\n"
       "2026-12-05T17:43:00Z\tkraken\t97503.200000000000000000\t0.431330460000000000\t1308\t3601234567"
       "\t97492.170771964493302884\n"
       "2026-12-05T17:44:00Z\tkraken\t97499\t12.5\t7\t3601234568\t97468.806028960426582078\n")


def test_a_table_is_formatted_for_reading():
    names, types, rows = parse_tsv(TSV)
    text, hidden = format_table(names, types, rows)
    lines = text.splitlines()
    assert hidden == [] and ESC not in text
    assert lines[0].split() == ["bucket", "(UTC)", "exchange", "open", "volume", "trade_count", "trade_id", "vwap"]
    assert lines[2].split() == ["2026-12-05", "17:43", "kraken", "97,503.20", "0.43133046", "1,308", "3601234567",
                                "97,492.1708"]
    assert lines[3].split()[3:] == ["97,499.00", "12.50000000", "7", "3601234568", "97,468.8060"]
    assert len({len(line) for line in lines[1:]}) == 1  # numbers right-aligned in fixed columns


def test_a_narrow_table_leaves_out_columns_in_the_given_order_and_says_which():
    names, types, rows = parse_tsv(TSV)
    full = format_table(names, types, rows)[0]
    text, hidden = format_table(names, types, rows, width=60, drop_first=("vwap", "trade_id"))
    assert max(len(line) for line in full.splitlines()) > 60
    assert all(len(line) <= 60 for line in text.splitlines())
    assert hidden[:2] == ["vwap", "trade_id"] and "open" not in hidden
    assert "vwap" not in text.splitlines()[0]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, fixtures_dir):
    """A data dir with Kraken and Coinbase trades (BTC/USD on both) and Binance and Kraken rejects."""
    tmp = tmp_path_factory.mktemp("term")
    data = tmp / "d"
    env = _env(tmp)
    for name, ex in (("kraken_session", "kraken"), ("coinbase_session", "coinbase"),
                     ("binance_malformed", "binance"), ("kraken_malformed", "kraken")):
        r = piped(["load", str(fixtures_dir / f"{name}.jsonl"), "--exchange", ex, "--data-dir", str(data)], env)
        assert r.returncode == 0, r.stderr
    return data, env


@pytest.mark.parametrize("cols", [80, 140])
def test_candles_fit_the_terminal_and_keep_every_column_piped(loaded, cols):
    data, env = loaded
    args = ["ohlcv", "BTC/USD", "--interval", "1m", "--exchange", "kraken,coinbase", "--data-dir", str(data)]
    code, screen, raw = in_terminal(args, env, cols=cols)
    assert code == 0, raw
    rows = [line for line in screen if re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d ", line)]
    assert rows and {line.split()[2] for line in rows} == {"kraken", "coinbase"}, screen
    header = next(line for line in screen if line.startswith("bucket (UTC)"))
    shown = header.split()
    assert [c for c in shown if c in ("exchange", "open", "high", "low", "close")] == [
        "exchange", "open", "high", "low", "close"]
    # every row is one line of the screen (a wrapped row would start a line without a date)
    table = screen[screen.index(header):screen.index(header) + 2 + len(rows)]
    assert all(re.match(r"\d{4}-", line) for line in table[2:]), screen
    note = " ".join(line for line in screen if line)
    if cols == 80:
        assert "k2: note: left out" in note and "--format csv" in note
    else:  # wider: more columns, fewer (or none) left out, and the note names exactly those
        assert "volume" in shown and "trade_count" in shown
        left_out = re.search(r"k2: note: left out (.*?) to fit", note)
        all_columns = {"symbol", "open", "high", "low", "close", "volume", "quote_volume", "trade_count", "vwap",
                       "buy_volume", "sell_volume"}
        missing = all_columns - set(shown)
        assert set(left_out.group(1).split(", ") if left_out else []) == missing, note
    r = piped(args, env)
    assert r.returncode == 0 and ESC not in r.stdout + r.stderr and r.stderr == ""
    head = r.stdout.splitlines()[0].split()
    assert head[:4] == ["bucket", "(UTC)", "exchange", "symbol"] and head[-1] == "sell_volume"
    csv_rows = piped([*args, "--format", "csv"], env).stdout.splitlines()
    assert len(csv_rows) - 1 == len(r.stdout.splitlines()) - 2 == len(rows)


def test_every_read_command_takes_an_exchange_list(loaded):
    data, env = loaded
    for cmd in (["rejects"], ["gaps"], ["trades", "BTC/USD"], ["ohlcv", "BTC/USD", "--interval", "1m"]):
        both = piped([*cmd, "--exchange", "binance,kraken,coinbase", "--format", "json", "--data-dir", str(data)], env)
        assert both.returncode == 0, both.stderr
        bad = piped([*cmd, "--exchange", "binance,krakn", "--data-dir", str(data)], env)
        assert bad.returncode == 2 and bad.stderr.startswith("k2: error:") and "krakn" in bad.stderr, bad.stderr
    rejects = piped(["rejects", "--exchange", "binance,kraken", "--format", "json", "--data-dir", str(data)], env)
    seen = {json.loads(line)["exchange"] for line in rejects.stdout.splitlines()}
    assert seen == {"binance", "kraken"}, rejects.stdout
    only = piped(["rejects", "--exchange", "kraken", "--format", "json", "--data-dir", str(data)], env)
    assert {json.loads(line)["exchange"] for line in only.stdout.splitlines()} == {"kraken"}
    trades = piped(["trades", "BTC/USD", "--exchange", "coinbase,kraken", "--format", "json", "--data-dir", str(data)],
                   env)
    assert {json.loads(line)["exchange"] for line in trades.stdout.splitlines()} == {"coinbase", "kraken"}


# -- progress -------------------------------------------------------------------------------------------
def _frames(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"e": "trade", "E": 1784116800123 + i, "s": "BTCUSDT", "t": 3601234567 + i,
                                "p": "97512.34000000", "q": "0.00120000", "T": 1784116800122 + i, "m": True,
                                "M": True}, separators=(",", ":")) + "\n")


def test_load_draws_a_progress_bar_in_a_terminal_and_nothing_to_clean_up_piped(tmp_path):
    frames = tmp_path / "frames.jsonl"
    _frames(frames, 60_000)
    env = _env(tmp_path)
    code, screen, raw = in_terminal(["load", str(frames), "--exchange", "binance", "--data-dir",
                                     str(tmp_path / "a")], env)
    assert code == 0, raw
    bar = [line for line in screen if line.startswith("load frames.jsonl")]
    assert len(bar) == 1, screen  # redrawn in place: one line, not one per update
    assert "100%" in bar[0] and "MiB/s" in bar[0] and "ETA" in bar[0], bar
    assert any("60,000 trades" in line or "60000 trades" in line for line in screen), screen
    r = piped(["load", str(frames), "--exchange", "binance", "--data-dir", str(tmp_path / "b")], env)
    assert r.returncode == 0 and ESC not in r.stderr + r.stdout and "\r" not in r.stderr, r.stderr
    code, screen, raw = in_terminal(["load", str(frames), "--exchange", "binance", "--no-progress", "--data-dir",
                                     str(tmp_path / "c")], env)
    assert code == 0 and "\x1b[" not in raw and "━" not in raw, raw  # --no-progress: plain text only


def test_rebuild_progress_is_plain_lines_off_a_terminal(tmp_path, fixtures_dir):
    env = _env(tmp_path)
    data = tmp_path / "d"
    assert piped(["load", str(fixtures_dir / "kraken_session.jsonl"), "--exchange", "kraken", "--data-dir",
                  str(data)], env).returncode == 0
    r = piped(["rebuild", "--exchange", "kraken", "--progress", "--data-dir", str(data)], env)
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stderr.splitlines() if line.startswith("rebuild kraken"))
    assert re.fullmatch(r"rebuild kraken: [\d,]+/[\d,]+ rows, 100%, [\d,.]+k? rows/s, done in \d+:\d\d:\d\d", line), line
    assert ESC not in r.stderr


# -- k2 run -----------------------------------------------------------------------------------------------
def test_k2_run_shows_a_live_status_table_in_80_columns_with_logs_above(tmp_path):
    with SimulatorProcess("--exchange", "binance,kraken", "--rate", "40") as sim:
        env = _env(tmp_path)
        for name in ("binance", "kraken"):
            env[f"K2_{name.upper()}_WS_URL"] = sim.urls[name]["ws"]
            env[f"K2_{name.upper()}_REST_URL"] = sim.urls[name]["rest"]
        args = ["run", "--exchange", "binance,kraken", "--duration", "6", "--metrics-addr", "127.0.0.1:0",
                "--data-dir", str(tmp_path / "d")]
        code, screen, raw = in_terminal(args, env, rows=80)
        assert code == 0, raw
        headers = [i for i, line in enumerate(screen) if line.split()[:3] == ["venue", "connection", "state"]]
        assert len(headers) == 1, screen  # redrawn in place, not printed again each second
        h = headers[0]
        assert screen[h].split() == ["venue", "connection", "state", "trades", "/s", "last", "msg", "gaps",
                                     "latency"]
        assert screen[h - 1].startswith("k2 run: healthy"), screen
        rows = {line.split()[0]: line.split() for line in screen[h + 2:h + 4]}
        assert set(rows) == {"binance", "kraken"}, screen
        for name, cells in rows.items():
            assert cells[1] == f"{name}-0" and int(cells[3].replace(",", "")) > 0, cells
        connected = [i for i, line in enumerate(screen) if "connected to ws://" in line]
        assert connected and max(connected) < h  # log lines print above the table
        text = "\n".join(screen)
        assert "mask_impl" not in raw and "released" not in raw and "Disconnected" not in raw, text
        assert "ran " in text  # the end-of-run summary follows the last status

        # piped: no live table, no escape codes, one line per event
        r = piped(args, env)
        assert r.returncode == 0, r.stderr
        assert ESC not in r.stderr and "\r" not in r.stderr, r.stderr
        assert not re.search(r"^\s*venue\s+conn", r.stderr, re.M), r.stderr  # no status table header
        assert "connected to ws://" in r.stderr and "mask_impl" not in r.stderr


def test_reads_are_the_same_through_a_running_k2_as_after_it_stopped(tmp_path):
    """A read during `k2 run` goes through the running process; after, it opens the data dir. A
    finished range reads the same both ways, with no escape codes."""
    with SimulatorProcess("--exchange", "binance", "--rate", "50") as sim:
        env = _env(tmp_path, K2_BINANCE_WS_URL=sim.urls["binance"]["ws"],
                   K2_BINANCE_REST_URL=sim.urls["binance"]["rest"])
        data = tmp_path / "d"
        run = subprocess.Popen([*_k2(), "run", "--exchange", "binance", "--duration", "40", "--metrics-addr",
                                "127.0.0.1:0", "--data-dir", str(data)], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not (data / "k2.run.json").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(4)
            until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
            time.sleep(3)  # trades before `until` are written by now
            args = ["trades", "BTC/USDT", "--until", until, "--data-dir", str(data)]
            during = piped(args, env)
            assert during.returncode == 0 and run.poll() is None, during.stderr
        finally:
            run.terminate()
            run.wait(timeout=60)
        after = piped(args, env)
    assert after.returncode == 0, after.stderr
    assert len(during.stdout.splitlines()) > 3 and ESC not in during.stdout
    assert during.stdout == after.stdout


def test_an_address_in_use_names_it_and_the_flag_to_change_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addr = f"127.0.0.1:{taken.getsockname()[1]}"
        env = _env(tmp_path, K2_KRAKEN_WS_URL="ws://127.0.0.1:9", K2_KRAKEN_REST_URL="http://127.0.0.1:9")
        r = piped(["run", "--exchange", "kraken", "--duration", "5", "--metrics-addr", addr,
                   "--data-dir", str(tmp_path / "d")], env, timeout=90)
    errors = [line for line in r.stderr.splitlines() if line.startswith("k2: error:")]
    assert r.returncode == 2 and len(errors) == 1, r.stderr
    assert f"cannot listen on {addr} (from --metrics-addr): Address already in use" in errors[0]
    assert "--metrics-addr HOST:PORT" in errors[0]
    bad = piped(["run", "--metrics-addr", "nonsense", "--data-dir", str(tmp_path / "d")], env)
    assert bad.returncode == 2 and "--metrics-addr must be HOST:PORT" in bad.stderr, bad.stderr


def test_topics_list_against_a_dead_broker_gives_up_and_says_why(tmp_path):
    started = time.monotonic()
    r = piped(["topics", "list", "--kafka", "127.0.0.1:9", "--timeout", "2"], _env(tmp_path), timeout=60)
    assert r.returncode == 2 and time.monotonic() - started < 40, r.stderr
    assert r.stderr.splitlines()[-1].startswith("k2: error: kafka: cannot reach 127.0.0.1:9 after 2 s"), r.stderr


def test_the_terminal_module_loads_no_rich_until_it_draws():
    code = ("import sys, k2.terminal, k2.cli; k2.cli.build_parser(); "
            "print('rich' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr

