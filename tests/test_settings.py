"""Settings and times: every value is checked before any work starts, and every mistake a user can
make is one line on stderr with exit status 2 (issue 23, and the settings/time parts of issues 16
and 20).

  * k2.toml: unknown sections and keys, wrong types, out-of-range numbers name the file and key;
    a relative data_dir is relative to the file, not to the current folder.
  * K2_* variables: every numeric one range-checked (K2_BATCH_MAX_ROWS=0 used to spin at 100 %
    CPU), booleans strict, URLs of the right scheme.
  * --since/--until: ISO-8601, epoch seconds or milliseconds, relative (1h, 7d), one parser.
  * --config before or after the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from k2.config import load_settings
from k2.errors import K2Error
from k2.times import parse_time

NOW = datetime(2026, 7, 15, 12, 0, 0, tzinfo=timezone.utc)


# -- times ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("2026-07-15", "2026-07-15 00:00:00.000000"),
    ("2026-07-15T12:30:00Z", "2026-07-15 12:30:00.000000"),
    ("2026-07-15 14:30:00+02:00", "2026-07-15 12:30:00.000000"),
    ("2026-07-15T12:30:00.123456", "2026-07-15 12:30:00.123456"),
    ("1784116800", "2026-07-15 12:00:00.000000"),  # epoch seconds
    ("1784116800.25", "2026-07-15 12:00:00.250000"),
    ("1784116800123", "2026-07-15 12:00:00.123000"),  # epoch milliseconds
    ("0", "1970-01-01 00:00:00.000000"),
    ("30m", "2026-07-15 11:30:00.000000"),  # relative: that long before now
    ("1h", "2026-07-15 11:00:00.000000"),
    ("7d", "2026-07-08 12:00:00.000000"),
    ("2w", "2026-07-01 12:00:00.000000"),
    ("90s", "2026-07-15 11:58:30.000000"),
    ("now", "2026-07-15 12:00:00.000000"),
])
def test_times_in_every_accepted_form(text, expected):
    assert parse_time(text, "--since", "", now=NOW) == expected


def parse_range(since, until, now=None):
    from k2.times import parse_range

    return parse_range(since, until, now)


@pytest.mark.parametrize("text, message", [
    ("0001-01-01", "out of range"),  # was an internal error
    ("1969-12-31T23:59:59Z", "out of range"),
    ("2200-01-01", "out of range"),
    ("99999999999999999", "out of range"),
    ("999999999d", "out of range"),
    ("yesterday", "not a time"),
    ("2026-13-45", "not a time"),
    ("1.5h", "not a time"),
    ("-1h", "not a time"),
])
def test_bad_times_are_errors(text, message):
    with pytest.raises(K2Error, match=message):
        parse_time(text, "--since", "", now=NOW)


def test_a_range_that_cannot_hold_anything_is_an_error():
    assert parse_range("2h", "1h", now=NOW) == ("2026-07-15 10:00:00.000000", "2026-07-15 11:00:00.000000")
    with pytest.raises(K2Error, match="is not before --until"):
        parse_range("1h", "2h", now=NOW)
    with pytest.raises(K2Error, match="is not before --until"):
        parse_range("2026-07-15", "2026-07-15")


# -- k2.toml --------------------------------------------------------------------------------------------
def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "k2.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ('[k2]\ndata-dir = "x"\n', "unknown key [k2] data-dir; did you mean data_dir?"),
    ('[exchanges.krakn]\nsymbols = ["XBT/USD"]\n', "unknown exchange [exchanges.krakn]; did you mean kraken?"),
    ('[reconect]\nbase_s = 1\n', "unknown section [reconect]; did you mean reconnect?"),
    ('[k2]\nexchanges = "kraken"\n', "[k2] exchanges: expected an array of strings, got a string 'kraken'"),
    ('[k2]\nexchanges = ["kraken", "ftx"]\n', "unknown exchange 'ftx'"),
    ('[k2]\nsymbols = ["BTC/USD", 3]\n', "[k2] symbols: expected an array of strings"),
    ('[reconnect]\nmax_attempts = "5"\n', "[reconnect] max_attempts: expected an integer, got a string '5'"),
    ('[reconnect]\nbase_s = -1\n', "[reconnect] base_s must be between"),
    ('[reconnect]\nbase_s = 5.0\ncap_s = 1.0\n', "must not be below"),
    ('[writer]\nbatch_max_rows = 0\n', "[writer] batch_max_rows must be between 1 and"),
    ('[writer]\nqueue_max_rows = 0\n', "[writer] queue_max_rows must be between 1 and"),
    ('[backfill]\nenabled = "yes"\n', "[backfill] enabled: expected true or false"),
    ('[k2]\nmetrics_addr = "localhost"\n', "must be HOST:PORT"),
    ('[exchanges.kraken]\nws_url = "http://ws.kraken.com"\n', "ws:// or wss://"),
    ('[exchanges.kraken]\napi = "v3"\n', "unknown API 'v3' for kraken"),
    ('[exchanges.kraken]\nstale_after_s = 0\n', "[exchanges.kraken] stale_after_s must be between"),
    ('[exchanges.kraken]\nsymbol = ["XBT/USD"]\n', "unknown key [exchanges.kraken] symbol; did you mean symbols?"),
    ('[kafka]\nbootstrap = "x:9092"\n', "unknown key [kafka] bootstrap"),
    ("k2 = 3\n", "expected a table [k2]"),
])
def test_config_mistakes_name_the_file_and_the_key(tmp_path, text, message):
    path = config(tmp_path, text)
    with pytest.raises(K2Error) as err:
        load_settings(env={}, config_path=str(path))
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value), str(err.value)
    assert "a int" not in str(err.value)


def test_every_setting_can_come_from_the_file(tmp_path):
    path = config(tmp_path, """
[k2]
data_dir = "store"
exchanges = ["kraken", "gemini"]
symbols = ["BTC/USD"]
metrics_addr = "127.0.0.1:0"
instruments_refresh = false
[reconnect]
base_s = 0.5
cap_s = 4
max_attempts = 3
[writer]
batch_max_rows = 1000
batch_max_delay_s = 0.05
queue_max_rows = 5000
[backfill]
enabled = false
max_trades = 10
[exchanges.kraken]
api = "v2"
stale_after_s = 5
""")
    s = load_settings(env={}, config_path=str(path))
    assert s.data_dir == tmp_path / "store" and s.data_dir_source == f"data_dir in {path}"
    assert (s.exchanges, s.symbols, s.metrics_addr) == (["kraken", "gemini"], ["BTC/USD"], "127.0.0.1:0")
    assert (s.reconnect_base_s, s.reconnect_cap_s, s.reconnect_max_attempts) == (0.5, 4.0, 3)
    assert (s.batch_max_rows, s.batch_max_delay_s, s.queue_max_rows) == (1000, 0.05, 5000)
    assert (s.instruments_refresh, s.backfill, s.backfill_max_trades) == (False, False, 10)
    assert s.exchange("kraken").adapter.bronze_table == "bronze_trades_kraken_v2"
    assert s.exchange("kraken").options == {"stale_after_s": 5.0}


# -- K2_* variables --------------------------------------------------------------------------------------
#: every numeric K2_* variable, its setting and its range (the contract README's table states)
NUMERIC_VARIABLES = [
    ("K2_RECONNECT_BASE_S", "reconnect_base_s", float, 0.001, 3600.0),
    ("K2_RECONNECT_CAP_S", "reconnect_cap_s", float, 0.001, 86400.0),
    ("K2_RECONNECT_MAX_ATTEMPTS", "reconnect_max_attempts", int, -1, None),
    ("K2_BATCH_MAX_ROWS", "batch_max_rows", int, 1, 10_000_000),
    ("K2_BATCH_MAX_DELAY_S", "batch_max_delay_s", float, 0.001, 60.0),
    ("K2_QUEUE_MAX_ROWS", "queue_max_rows", int, 1, 100_000_000),
    ("K2_BACKFILL_MAX_TRADES", "backfill_max_trades", int, 1, None),
    ("K2_READ_TIMEOUT_S", "read.timeout_s", float, 0.1, 86400.0),
    ("K2_READ_MAX_MEMORY_MB", "read.max_memory_mb", int, 16, 1_000_000),
    ("K2_READ_MAX_THREADS", "read.max_threads", int, 1, 256),
    ("K2_READ_NICE", "read.nice", int, 0, 19),
    ("K2_READ_MAX_RESULT_MB", "read.max_result_mb", int, 1, 1_000_000),
    ("K2_READ_MAX_CONCURRENT", "read.max_concurrent", int, 1, 256),
    ("K2_READ_QUEUE_TIMEOUT_S", "read.queue_timeout_s", float, 0.0, 3600.0),
    ("K2_READ_MAX_CONNECTIONS", "read.max_connections", int, 1, 100_000),
    ("K2_READ_IDLE_TIMEOUT_S", "read.idle_timeout_s", float, 0.1, 86400.0),
    ("K2_RECONCILE_INTERVAL_S", "reconcile_interval_s", float, 10.0, 86400.0),
    ("K2_RECONCILE_HOURS", "reconcile_hours", float, 0.05, 168.0),
    ("K2_HEALTH_STALE_FACTOR", "health.stale_factor", float, 1.0, 1000.0),
    ("K2_HEALTH_STALE_MIN_S", "health.stale_min_s", float, 0.1, 86400.0),
    ("K2_HEALTH_DIVERGENCE_BPS", "health.divergence_bps", float, 0.1, 1_000_000.0),
    ("K2_HEALTH_STATUS_POLL_S", "health.status_poll_s", float, 0.0, 86400.0),
    ("K2_FEED_READ_COALESCE_MS", "feed_read_coalesce_ms", float, 0.0, 100.0),
]


def test_the_list_covers_every_numeric_variable():
    from k2.config import NUMBERS

    assert sorted((n, a, k, lo, hi) for a, n, _, k, lo, hi in NUMBERS) == sorted(NUMERIC_VARIABLES)


@pytest.mark.parametrize("name, attr, kind, lowest, highest", NUMERIC_VARIABLES)
def test_every_numeric_variable_is_range_checked(name, attr, kind, lowest, highest):
    for bad in ("x", "nan", "inf", "1e999", str(lowest - 1), *([str(highest * 10)] if highest else [])):
        if kind is int and bad in ("nan", "inf"):
            continue
        with pytest.raises(K2Error, match=name):
            load_settings(env={name: bad})
    good = str(lowest if kind is int else max(lowest, 0.5))
    if attr == "reconnect_cap_s":
        assert load_settings(env={name: "30"}).reconnect_cap_s == 30.0
    else:
        settings = load_settings(env={name: good})
        owner, _, field = attr.rpartition(".")  # read.x is Settings.read.x
        assert getattr(getattr(settings, owner) if owner else settings, field) == kind(good)


@pytest.mark.parametrize("env, message", [
    ({"K2_BACKFILL": "maybe"}, "K2_BACKFILL must be one of"),
    ({"K2_INSTRUMENTS_REFRESH": "2"}, "K2_INSTRUMENTS_REFRESH must be one of"),
    ({"K2_RELEASE_STARTUP_PAGES": "yes please"}, "K2_RELEASE_STARTUP_PAGES must be one of"),
    ({"K2_METRICS_ADDR": "9108"}, "K2_METRICS_ADDR must be HOST:PORT"),
    ({"K2_METRICS_ADDR": "127.0.0.1:70000"}, "port from 0 to 65535"),
    ({"K2_EXCHANGES": "kraken,ftx"}, "K2_EXCHANGES: unknown exchange 'ftx'"),
    ({"K2_EXCHANGES": " , "}, "no exchange given"),
    ({"K2_KRAKEN_API": "v3"}, "K2_KRAKEN_API: unknown API 'v3'"),
    ({"K2_BINANCE_WS_URL": "https://stream.binance.com"}, "K2_BINANCE_WS_URL must be a ws:// or wss:// URL"),
    ({"K2_GEMINI_REST_URL": "api.gemini.com"}, "K2_GEMINI_REST_URL must be a http:// or https:// URL"),
    ({"K2_RECONNECT_BASE_S": "10", "K2_RECONNECT_CAP_S": "2"}, "must not be below K2_RECONNECT_BASE_S"),
])
def test_other_variables_are_checked(env, message):
    with pytest.raises(K2Error, match=message):
        load_settings(env=env)


# -- the command line -------------------------------------------------------------------------------------
def test_relative_data_dir_in_a_config_file_is_relative_to_the_file(tmp_path, k2_cli, fixtures_dir):
    """A query run from another folder reads the store the file names, not a new empty one."""
    project = tmp_path / "project"
    project.mkdir()
    cfg = config(project, '[k2]\ndata_dir = "k2data"\n')
    env = {"K2_DATA_DIR": ""}  # (k2_cli sets one; the variable would beat the file)
    assert k2_cli("load", fixtures_dir / "kraken_session.jsonl", "--exchange", "kraken", cwd=project,
                  env={**env, "K2_CONFIG": str(cfg)}).returncode == 0
    assert (project / "k2data").is_dir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = k2_cli("query", "SELECT count() FROM silver_trades_v2", "--format", "csv", "--config", cfg, cwd=elsewhere,
               env=env)
    assert r.returncode == 0 and r.stdout.splitlines()[-1] == "11", r.stderr
    assert not (elsewhere / "k2data").exists()


def test_config_before_or_after_the_command(tmp_path, k2_cli):
    cfg = config(tmp_path, '[k2]\ndata_dir = "nowhere"\n')
    for argv in (["--config", cfg, "ohlcv", "BTC/USD", "--interval", "1m"],
                 ["ohlcv", "BTC/USD", "--interval", "1m", "--config", cfg]):
        r = k2_cli(*argv, env={"K2_DATA_DIR": ""})
        assert r.returncode == 2, r.stderr
        assert r.stderr.strip() == (f"k2: error: data dir {tmp_path / 'nowhere'} (from data_dir in {cfg}) does not "
                                    "exist; check the path (k2 run and k2 load create a new one)")


@pytest.mark.parametrize("source", ["flag", "env", "config"])
def test_a_missing_data_dir_is_an_error_naming_how_it_was_chosen(tmp_path, k2_cli, source):
    """It used to create an empty store there, print "(no rows)" and exit 0."""
    missing = tmp_path / "k2dta"
    cfg = config(tmp_path, f'[k2]\ndata_dir = "{missing}"\n')
    args, env, how = {"flag": (["--data-dir", missing], {}, "--data-dir"),
                      "env": ([], {"K2_DATA_DIR": str(missing)}, "K2_DATA_DIR"),
                      "config": (["--config", cfg], {"K2_DATA_DIR": ""}, f"data_dir in {cfg}")}[source]
    for command in (["ohlcv", "BTC/USD", "--interval", "1m"], ["trades", "BTC/USD"], ["query", "SELECT 1"],
                    ["validate"], ["gaps"], ["rejects"], ["rebuild"], ["status"],
                    ["chart", "BTC/USD", "--interval", "1m", "--out", tmp_path / "c.html"]):
        r = k2_cli(*command, *args, env=env)
        assert r.returncode == 2 and r.stdout == "", (command, r.stdout, r.stderr)
        assert r.stderr.splitlines() == [f"k2: error: data dir {missing} (from {how}) does not exist; check the "
                                         "path (k2 run and k2 load create a new one)"], (command, r.stderr)
    assert not missing.exists() and not (tmp_path / "c.html").exists()


def _one_line(r: subprocess.CompletedProcess, message: str, status: int = 2) -> None:
    assert r.returncode == status, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stdout + r.stderr and "internal error" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("k2: error:") and message in lines[0], r.stderr


def test_user_mistakes_are_one_line_and_exit_2(tmp_path, k2_cli, fixtures_dir):
    """Each was an "internal error" with a traceback file, or a quiet surprise."""
    data = tmp_path / "d"
    assert k2_cli("load", fixtures_dir / "kraken_session.jsonl", "--exchange", "kraken",
                  "--data-dir", data).returncode == 0
    afile = tmp_path / "afile"
    afile.write_text("x")
    cases = [
        (["trades", "BTC/USD", "--limit", "-1", "--data-dir", data], "--limit: must be 0 (no limit)"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--since", "0001-01-01", "--data-dir", data], "out of range"),
        (["trades", "BTC/USD", "--since", "1h", "--until", "2h", "--data-dir", data], "is not before --until"),
        (["record", "--exchange", "kraken", "--out", "/tmp", "--duration", "1"], "is a directory"),
        (["record", "--exchange", "kraken", "--out", tmp_path / "no" / "x.jsonl"], "does not exist"),
        (["run", "--exchange", "kraken", "--data-dir", afile / "d", "--duration", "1"], f"{afile} is a file"),
        (["load", fixtures_dir / "kraken_session.jsonl", "--exchange", "kraken", "--data-dir", afile / "d"],
         f"{afile} is a file"),
        (["chart", "BTC/USD", "--interval", "1m", "--out", "/nonexistent/x.html", "--data-dir", data],
         "folder /nonexistent does not exist"),
        (["chart", "BTC/USD", "--interval", "1m", "--out", "x.html", "--max-candles", "-5", "--data-dir", data],
         "--max-candles"),
        (["run", "--duration", "nan"], "--duration"),
        (["demo", "--rate", "0"], "--rate"),
        (["topics", "create", "--partitions", "0", "--kafka", "127.0.0.1:9"], "--partitions"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--warehouse", "mysql://h/db"], "scheme must be"),
    ]
    for argv, message in cases:
        _one_line(k2_cli(*argv), message)
    assert not Path("/nonexistent").exists()
    assert not (tmp_path / "no").exists()


def test_bad_variables_stop_every_command_before_it_starts(tmp_path, k2_cli):
    """K2_BATCH_MAX_ROWS=0 spun at 100 % CPU ignoring --duration and SIGTERM; K2_QUEUE_MAX_ROWS=0
    starved the feeds; a negative backoff was an internal error after startup. Now none starts."""
    for env, message in (({"K2_BATCH_MAX_ROWS": "0"}, "K2_BATCH_MAX_ROWS must be between 1"),
                         ({"K2_QUEUE_MAX_ROWS": "0"}, "K2_QUEUE_MAX_ROWS must be between 1"),
                         ({"K2_RECONNECT_BASE_S": "-1"}, "K2_RECONNECT_BASE_S must be between"),
                         ({"K2_LOG_LEVEL": "chatty"}, "K2_LOG_LEVEL must be one of")):
        started = time.monotonic()
        r = k2_cli("run", "--exchange", "kraken", "--duration", "30", "--data-dir", tmp_path / "d", env=env,
                   timeout=60)
        _one_line(r, message)
        assert time.monotonic() - started < 30  # refused, not run
    assert not (tmp_path / "d").exists()


def test_an_address_k2_cannot_listen_on_is_one_line(tmp_path, k2_cli):
    """192.0.2.1 (TEST-NET-1) is no address of this machine: binding fails without any lookup."""
    r = k2_cli("run", "--exchange", "kraken", "--duration", "5", "--data-dir", tmp_path / "d",
               env={"K2_METRICS_ADDR": "192.0.2.1:0", "K2_KRAKEN_WS_URL": "ws://127.0.0.1:9",
                    "K2_KRAKEN_REST_URL": "http://127.0.0.1:9"}, timeout=90)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("k2: error:")]
    assert errors == [f"k2: error: cannot listen on 192.0.2.1:0 (from K2_METRICS_ADDR): {os.strerror(99)}"], r.stderr


def test_an_inflight_journal_of_the_wrong_shape_is_one_line(tmp_path, k2_cli, fixtures_dir):
    data = tmp_path / "d"
    assert k2_cli("load", fixtures_dir / "kraken_session.jsonl", "--exchange", "kraken",
                  "--data-dir", data).returncode == 0
    for text in ("[]", '{"bronze_table": 3}', '{"bronze_table": "bronze_trades_kraken", "first_time_us": "x"}'):
        (data / "inflight.json").write_text(text)
        _one_line(k2_cli("validate", "--data-dir", data), "inflight.json is not K2's insert journal")


def test_the_suite_needs_nothing_beside_the_repository():
    """The suite carries its own sample frames (tests/fixtures/samples): no test reads ../shared."""
    tests = Path(__file__).resolve().parent
    needle = "/ " + '"sha' + 'red"'  # a path built into the folder beside the repository
    for path in [*tests.glob("*.py"), *tests.glob("fixtures/*.py")]:
        assert needle not in path.read_text(), path
    assert len(list((tests / "fixtures" / "samples").glob("*.jsonl"))) == 10
    r = subprocess.run([sys.executable, "-c", "import conftest; print(conftest.SAMPLES)"], cwd=tests,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and Path(r.stdout.strip()) == tests / "fixtures" / "samples", r.stderr
