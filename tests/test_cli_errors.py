"""The `k2` command line: load, ohlcv, trades and query output formats, and bad input.

Bad input of any kind is exactly one line on stderr starting with `k2: error:`, a non-zero exit
status, nothing on stdout and never a traceback. Those cases run the installed console script in
a subprocess, as a user would; the output-format cases call k2.cli.main in this process (faster).
"""

from __future__ import annotations

import csv
import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from fixtures import reference as ref

OHLCV_KEYS = ["bucket", "exchange", "symbol", "open", "high", "low", "close", "volume", "quote_volume",
              "trade_count", "vwap", "buy_volume", "sell_volume"]
DECIMAL_KEYS = ["open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume"]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory, fixtures_dir, k2_cli):
    """A data dir holding both fixture sessions, loaded with `k2 load`; -> (dir, {exchange: result})."""
    data_dir = tmp_path_factory.mktemp("cli") / "k2data"
    results = {
        exchange: k2_cli("load", fixtures_dir / f"{exchange}_session.jsonl", "--exchange", exchange,
                         "--data-dir", data_dir)
        for exchange in ("kraken", "binance")
    }
    return data_dir, results


@pytest.fixture(scope="module")
def trades(fixtures_dir):
    lines = {e: (fixtures_dir / f"{e}_session.jsonl").read_bytes().splitlines() for e in ("binance", "kraken")}
    return ref.binance_trades(lines["binance"]) + ref.kraken_trades(lines["kraken"])


def json_lines(text: str) -> list[dict]:
    def no_float(s):
        raise AssertionError(f"a float in JSON output: {s}")

    return [json.loads(line, parse_float=no_float) for line in text.splitlines() if line.strip()]


def expected_json(trades, symbol: str, interval: str, exchange: str = "all") -> list[dict]:
    cross = exchange == "all"
    model = ref.candles([t for t in trades if cross or t.exchange == exchange], interval, cross)
    out = []
    for (ex, sym, window), c in sorted(model.items(), key=lambda kv: kv[0][2]):
        if sym != symbol:
            continue
        out.append({"bucket": datetime.fromtimestamp(window, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "exchange": ex, "symbol": sym, **{k: c[k] for k in DECIMAL_KEYS},
                    "trade_count": c["trade_count"]})
    return out


def normalize(obj: dict) -> dict:
    """JSON/CSV text values -> Decimal / int, checking decimals arrive as strings."""
    out = dict(obj)
    for k in DECIMAL_KEYS:
        assert isinstance(obj[k], str), (k, obj[k])
        out[k] = Decimal(obj[k])
    out["trade_count"] = int(obj["trade_count"])
    return out


# -- k2 load --------------------------------------------------------------------------------------
def test_load_prints_frames_trades_rejects(loaded):
    _, results = loaded
    for exchange, (frames, trades) in {"kraken": (19, 11), "binance": (13, 9)}.items():
        r = results[exchange]
        assert r.returncode == 0, r.stderr
        assert f"{frames} frames" in r.stdout and f"{trades} trades" in r.stdout and "0 rejected" in r.stdout
        assert "Traceback" not in r.stdout + r.stderr


def test_load_with_rejects_and_reload(tmp_path, fixtures_dir, k2_cli):
    path = fixtures_dir / "kraken_malformed.jsonl"
    first = k2_cli("load", path, "--exchange", "kraken", "--data-dir", tmp_path / "d")
    assert first.returncode == 0, first.stderr
    assert "14 frames" in first.stdout and "2 trades (2 new" in first.stdout and "12 rejected" in first.stdout
    again = k2_cli("load", path, "--exchange", "kraken", "--data-dir", tmp_path / "d")
    assert again.returncode == 0 and "(0 new, 2 already stored)" in again.stdout
    count = k2_cli("query", "SELECT count() FROM rejects", "--format", "csv", "--data-dir", tmp_path / "d")
    assert count.stdout.splitlines() == ['"count()"', "12"]


# -- k2 ohlcv -------------------------------------------------------------------------------------
def test_ohlcv_json_is_exact(loaded, trades, k2_main):
    data_dir, _ = loaded
    rc, out, err = k2_main("ohlcv", "BTC/USD", "--interval", "1m", "--format", "json", "--data-dir", data_dir)
    assert rc == 0, err
    rows = json_lines(out)
    assert [list(r) for r in rows] == [OHLCV_KEYS] * 2  # exactly these keys, in this order
    assert [normalize(r) for r in rows] == expected_json(trades, "BTC/USD", "1m")
    first = rows[0]
    assert (first["bucket"], first["exchange"], first["symbol"]) == ("2026-07-15T12:00:00Z", "all", "BTC/USD")
    assert (first["open"], first["close"], first["volume"], first["sell_volume"]) == ("97500", "97510", "1.7615", "1.75")
    assert first["quote_volume"] == "171761.39245"  # 97512.3*.0015 + 97512.4*.01 + 3*97510*.5 + 97500*.25
    assert first["vwap"] == "97508.596338347998864604"  # truncated, not rounded
    assert rows[1]["volume"] == "0.00000001" and rows[1]["bucket"] == "2026-07-15T12:01:00Z"


@pytest.mark.parametrize("interval", list(ref.INTERVALS))
@pytest.mark.parametrize("symbol, exchange", [("BTC/USD", "all"), ("BTC/USD", "kraken"), ("BTC/USDT", "all"),
                                              ("BTC/USDT", "binance"), ("SOL/USDT", "all")])
def test_ohlcv_every_interval_and_exchange(loaded, trades, k2_main, interval, symbol, exchange):
    data_dir, _ = loaded
    rc, out, err = k2_main("ohlcv", symbol, "--interval", interval, "--exchange", exchange, "--format", "json",
                           "--data-dir", data_dir)
    assert rc == 0, err
    assert [normalize(r) for r in json_lines(out)] == expected_json(trades, symbol, interval, exchange)


def test_ohlcv_csv_has_a_header(loaded, trades, k2_main):
    data_dir, _ = loaded
    rc, out, err = k2_main("ohlcv", "BTC/USDT", "--interval", "1h", "--format", "csv", "--data-dir", data_dir)
    assert rc == 0, err
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == OHLCV_KEYS
    got = [normalize(dict(zip(rows[0], r))) for r in rows[1:]]
    assert got == expected_json(trades, "BTC/USDT", "1h")
    assert got[0]["trade_count"] == 5 and got[0]["exchange"] == "all"


def test_ohlcv_table_format_and_filters(loaded, k2_main):
    data_dir, _ = loaded
    rc, out, _ = k2_main("ohlcv", "BTC/USD", "--interval", "1m", "--data-dir", data_dir)
    assert rc == 0 and "97,500.00" in out and "BTC/USD" in out
    rc, out, _ = k2_main("ohlcv", "BTC/USD", "--interval", "1m", "--format", "json", "--since",
                         "2026-07-15T12:01:00Z", "--data-dir", data_dir)
    assert rc == 0 and [r["bucket"] for r in json_lines(out)] == ["2026-07-15T12:01:00Z"]
    rc, out, _ = k2_main("ohlcv", "BTC/USD", "--interval", "1m", "--format", "json", "--until",
                         "2026-07-15T14:01:00+02:00", "--data-dir", data_dir)
    assert rc == 0 and [r["bucket"] for r in json_lines(out)] == ["2026-07-15T12:00:00Z"]
    # a native symbol is resolved through the instruments table
    rc, out, _ = k2_main("ohlcv", "XBT/USD", "--interval", "1d", "--format", "json", "--data-dir", data_dir)
    assert rc == 0 and [r["symbol"] for r in json_lines(out)] == ["BTC/USD"]
    # a known pair with no trades on that exchange: no rows, not an error
    rc, out, err = k2_main("ohlcv", "BTC/USD", "--interval", "1m", "--exchange", "binance", "--format", "json",
                           "--data-dir", data_dir)
    assert rc == 0 and out == "" and "no rows" in err


# -- k2 trades, k2 query --------------------------------------------------------------------------
def test_trades_json(loaded, trades, k2_main):
    data_dir, _ = loaded
    rc, out, err = k2_main("trades", "BTC/USD", "--format", "json", "--data-dir", data_dir)
    assert rc == 0, err
    rows = json_lines(out)
    expected = sorted((t for t in trades if t.canonical == "BTC/USD"), key=ref.order_key)
    assert [r["trade_id"] for r in rows] == [t.trade_id for t in expected]
    assert [(Decimal(r["price"]), Decimal(r["quantity"]), r["side"]) for r in rows] == [
        (t.price, t.qty, t.side) for t in expected]
    assert rows[0]["time"] == "2026-07-15T12:00:00.000000Z"
    assert rows[1]["time"] == "2026-07-15T12:00:00.412345Z"
    assert {r["native_symbol"] for r in rows} == {"XBT/USD"} and {r["exchange"] for r in rows} == {"kraken"}


def test_query_runs_in_database_k2(loaded, k2_main):
    data_dir, _ = loaded
    rc, out, err = k2_main("query", "SELECT count() FROM silver_trades_v2", "--format", "csv", "--data-dir", data_dir)
    assert rc == 0, err
    assert out.splitlines() == ['"count()"', "20"]
    rc, out, _ = k2_main("query", "SELECT exchange, count() AS n FROM silver_trades_v2 GROUP BY exchange "
                         "ORDER BY exchange", "--format", "json", "--data-dir", data_dir)
    assert [(r["exchange"], int(r["n"])) for r in json_lines(out)] == [("binance", 9), ("kraken", 11)]


def test_console_script_end_to_end(loaded, k2_cli):
    data_dir, _ = loaded
    r = k2_cli("ohlcv", "BTC/USD", "--interval", "1m", "--format", "json", "--data-dir", data_dir)
    assert r.returncode == 0, r.stderr
    assert [list(o) for o in json_lines(r.stdout)] == [OHLCV_KEYS] * 2


# -- bad input ------------------------------------------------------------------------------------
def bad_inputs(data_dir, fixtures_dir, tmp):
    kraken = fixtures_dir / "kraken_session.jsonl"
    return [
        (["load", kraken, "--exchange", "nasdaq", "--data-dir", data_dir], "unknown exchange 'nasdaq'"),
        (["load", tmp / "missing.jsonl", "--exchange", "kraken", "--data-dir", data_dir], "no such file"),
        (["load", tmp, "--exchange", "kraken", "--data-dir", data_dir], "is a directory"),
        (["load", kraken, "--exchange", "kraken", "--batch-size", "0", "--data-dir", data_dir], "--batch-size"),
        (["load", kraken], "--exchange"),
        (["load"], "required"),
        (["ohlcv", "BTC/USD", "--interval", "7m", "--data-dir", data_dir], "unknown interval '7m'"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--exchange", "ftx", "--data-dir", data_dir], "unknown exchange 'ftx'"),
        (["ohlcv", "NOPE/USD", "--interval", "1m", "--data-dir", data_dir], "unknown symbol 'NOPE/USD'"),
        (["ohlcv", " ", "--interval", "1m", "--data-dir", data_dir], "symbol is empty"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--since", "yesterday", "--data-dir", data_dir], "--since"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--until", "2026-13-45", "--data-dir", data_dir], "--until"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--format", "xml", "--data-dir", data_dir], "invalid choice"),
        (["ohlcv", "BTC/USD", "--data-dir", data_dir], "--interval"),
        (["ohlcv", "--interval", "1m"], "required"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--limit", "many"], "not a whole number"),
        (["ohlcv", "BTC/USD", "--interval", "1m", "--data-dir", kraken], "not a directory"),
        (["trades", "NOPE/USD", "--data-dir", data_dir], "unknown symbol"),
        (["trades", "BTC/USD", "--exchange", "nyse", "--data-dir", data_dir], "unknown exchange"),
        (["query", "SELEC 1", "--data-dir", data_dir], "query failed"),
        (["query", "SELECT * FROM no_such_table", "--data-dir", data_dir], "query failed"),
        (["query", "  ", "--data-dir", data_dir], "query is empty"),
        (["frobnicate"], "invalid choice"),
        (["--no-such-flag"], "unrecognized arguments"),
    ]


def test_bad_input_is_one_line_on_stderr(loaded, fixtures_dir, tmp_path, k2_cli):
    data_dir, _ = loaded
    # two workers, each with its own data dir (chDB allows one process per directory); the second
    # one is empty: every error here is found before the data is read
    copy = tmp_path / "empty"
    copy.mkdir()  # an existing, empty data dir (a missing one is an error of its own)
    cases = bad_inputs(data_dir, fixtures_dir, tmp_path)
    jobs = [argv for argv, _ in cases[0::2]] + [argv for argv, _ in bad_inputs(copy, fixtures_dir, tmp_path)[1::2]]
    messages = [m for _, m in cases[0::2]] + [m for _, m in cases[1::2]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        half = len(cases[0::2])
        first = pool.submit(lambda: [k2_cli(*argv) for argv in jobs[:half]])
        second = pool.submit(lambda: [k2_cli(*argv) for argv in jobs[half:]])
        results = first.result() + second.result()
    for argv, message, r in zip(jobs, messages, results):
        shown = " ".join(map(str, argv))
        assert r.returncode != 0, shown
        assert "Traceback" not in r.stdout + r.stderr, shown
        assert r.stdout == "", shown
        lines = r.stderr.splitlines()
        assert len(lines) == 1, (shown, r.stderr)
        assert lines[0].startswith("k2: error:"), (shown, r.stderr)
        assert message in lines[0], (shown, lines[0])


def test_bad_input_in_process_too(loaded, fixtures_dir, tmp_path, k2_main):
    """The same through k2.cli.main: it returns the status instead of raising."""
    data_dir, _ = loaded
    for argv, message in bad_inputs(data_dir, fixtures_dir, tmp_path)[:12]:
        rc, out, err = k2_main(*argv)
        assert rc != 0 and out == "", argv
        assert err.startswith("k2: error:") and message in err and len(err.splitlines()) == 1, (argv, err)


def test_bad_input_leaves_the_data_alone(loaded, k2_main):
    data_dir, _ = loaded
    rc, out, _ = k2_main("query", "SELECT count() FROM silver_trades_v2", "--format", "csv", "--data-dir", data_dir)
    assert rc == 0 and out.splitlines()[-1] == "20"


def test_sigterm_is_a_one_line_stop_not_a_kill(loaded, tmp_path):
    """SIGTERM to a k2 command before a service takes the signal over (k2 run repairing its data dir
    at start, a long query) ends it with a line and exit status 143, not by the signal's default
    action (no line, killed mid-statement: what the storm saw when a restart was stopped early)."""
    import os
    import signal
    import subprocess
    import time

    from conftest import _k2_command

    data_dir, _ = loaded
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    env.update(K2_LOG_DIR=str(tmp_path), K2_INSTRUMENTS_REFRESH="0")
    proc = subprocess.Popen([*_k2_command(), "query", "SELECT sleep(3) FROM numbers(20)", "--data-dir", str(data_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(3)  # the query is running (start-up takes ~1 s)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (proc.returncode, err[-2000:])
    assert err.strip() == "k2: stopped (SIGTERM)" and out == "", err[-2000:]
    assert time.monotonic() - started < 10  # at once, not after the query's 60 s
