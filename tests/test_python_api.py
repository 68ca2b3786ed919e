"""The Python API (k2.connect) on an embedded data dir with nothing running: exact candles and
trades as Arrow, pandas and polars; it never locks out the CLI or `k2 serve`; the same answers
through a K2 endpoint (url=); errors are one line.

The data dir is `history_dir` (three days loaded with `k2 load`). This process opens it through
the API; the module gives it up at the end so other modules can open theirs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest

import k2
from k2.read.api import _close_held_engine, _HeldEngine

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module", autouse=True)
def give_up_the_engine():
    yield
    _close_held_engine()


@pytest.fixture
def db(history_dir):
    with k2.connect(history_dir, keep_open_s=600) as conn:
        yield conn


def cli_json(k2_cli, history_dir, *args) -> list[dict]:
    r = k2_cli(*args, "--format", "json", "--data-dir", history_dir)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines()]


def test_import_k2_is_light_and_offers_the_api():
    code = ("import sys, k2; heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('chdb', 'pyarrow', 'pandas', 'numpy') or m.startswith('k2.read')); "
            "print(heavy, callable(k2.connect), k2.Connection.__name__, k2.QueryError.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[] True Connection QueryError"


def test_candles_are_exact_in_arrow_pandas_and_polars(db, k2_cli, history_dir):
    table = db.ohlcv("BTC/USDT", "1h", exchange="binance", since="2026-07-15", until="2026-07-16")
    assert table.num_rows == 24
    for name in ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume"):
        assert str(table.schema.field(name).type) == "decimal128(38, 18)", name
    assert str(table.schema.field("time").type) == "timestamp[s, tz=UTC]"
    cli = cli_json(k2_cli, history_dir, "ohlcv", "BTC/USDT", "--interval", "1h", "--exchange", "binance",
                   "--since", "2026-07-15", "--until", "2026-07-16")
    rows = table.to_pylist()
    assert len(cli) == len(rows)
    for got, want in zip(rows, cli):
        assert got["time"] == datetime.strptime(want["bucket"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        for name in ("open", "high", "low", "close", "volume", "quote_volume", "vwap", "buy_volume", "sell_volume"):
            assert got[name] == Decimal(want[name]), name
        assert got["trade_count"] == int(want["trade_count"]) == 60

    df = db.ohlcv("BTC/USDT", "1h", exchange="binance", since="2026-07-15", until="2026-07-16", format="pandas")
    assert str(df["time"].dtype) == "datetime64[s, UTC]"
    assert isinstance(df["close"].iloc[0], Decimal) and df["close"].iloc[0] == rows[0]["close"]
    pl = pytest.importorskip("polars")
    frame = db.ohlcv("BTC/USDT", "1h", exchange="binance", since="2026-07-15", until="2026-07-16", format="polars")
    assert isinstance(frame, pl.DataFrame) and str(frame.schema["close"]) == "Decimal(precision=38, scale=18)"
    assert frame["close"].to_list() == [r["close"] for r in rows]


def test_cross_exchange_candles_native_symbols_and_trades(db):
    # Kraken's XBT/USD is BTC/USD; a native name is mapped like the CLI maps it
    assert db.ohlcv("XBT/USD", "1d").num_rows == db.ohlcv("BTC/USD", "1d").num_rows == 3
    trades = db.trades("BTC/USD", since=datetime(2026, 7, 15, 12, tzinfo=timezone.utc), until="2026-07-15T13:00:00Z")
    assert trades.num_rows == 40  # one every 90 s
    first = trades.slice(0, 1).to_pylist()[0]
    assert first["exchange"] == "kraken" and first["native_symbol"] == "XBT/USD" and first["side"] in ("BUY", "SELL")
    assert str(first["price"]).count(".") == 1 and len(str(first["price"]).split(".")[1]) == 18
    times = trades["time"].to_pylist()
    assert times == sorted(times) and times[0].tzinfo is not None


def test_query_binds_parameters_and_stays_read_only(db):
    t = db.query("SELECT exchange, count() AS n FROM silver_trades_v2 WHERE timestamp >= {since:DateTime64(6)} "
                 "AND canonical_symbol IN {syms:Array(String)} GROUP BY exchange ORDER BY exchange",
                 {"since": datetime(2026, 7, 17, tzinfo=timezone.utc), "syms": ["BTC/USDT", "BTC/USD"]})
    assert t.to_pylist() == [{"exchange": "binance", "n": 1440}, {"exchange": "kraken", "n": 960}]
    for sql in ("DROP TABLE k2.gaps", "SELECT * FROM file('/etc/passwd')", "SELECT 1; SELECT 2"):
        with pytest.raises(k2.QueryError):
            db.query(sql)
    assert db.query("SELECT count() AS n FROM k2.gaps").to_pylist() == [{"n": 0}]


@pytest.mark.parametrize("call, message", [
    (lambda db: db.ohlcv("NOPE/USD", "1m"), "unknown symbol 'NOPE/USD'"),
    (lambda db: db.ohlcv("BTC/USDT", "2m"), "unknown interval '2m'"),
    (lambda db: db.ohlcv("BTC/USDT", "1m", exchange="nasdaq"), "nasdaq"),
    (lambda db: db.trades("BTC/USDT", since="yesterday"), "since: not a time"),
    (lambda db: db.trades("BTC/USDT", format="excel"), "unknown format 'excel'"),
    (lambda db: db.query("SELEC 1"), "Syntax error"),
    (lambda db: db.coverage(exchange="nasdaq"), "nasdaq"),
])
def test_mistakes_are_one_line_k2_errors(db, call, message):
    with pytest.raises(k2.K2Error) as info:
        call(db)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_coverage_is_what_k2_coverage_says(db, k2_cli, history_dir):
    """One row per exchange, symbol and UTC day, with the same days, counts and verdicts as the
    command; trades add up to silver's."""
    r = k2_cli("coverage", "--format", "json", "--data-dir", history_dir)
    assert r.returncode == 0, r.stderr
    cli_days = json.loads(r.stdout)["days"]
    t = db.coverage()
    assert t.num_rows == len(cli_days) > 0
    got = [(d["exchange"], d["symbol"], d["day"].isoformat(), d["trades"], d["proven_complete"], d["status"])
           for d in t.to_pylist()]
    assert got == [(d["exchange"], d["symbol"], d["day"], d["trades"], d["proven"], d["status"]) for d in cli_days]
    silver = db.query("SELECT count() AS n FROM k2.silver_trades_v2").to_pylist()[0]["n"]
    assert sum(d["trades"] for d in t.to_pylist()) == silver
    one = db.coverage("binance", "BTCUSDT", format="pandas")
    assert set(one["symbol"]) == {"BTCUSDT"} and len(one) < t.num_rows


def test_no_data_dir_is_a_clear_error(tmp_path):
    with pytest.raises(k2.K2Error, match="no K2 data in"):
        k2.connect(tmp_path / "nothing")


def test_a_notebook_never_locks_out_the_cli(db, k2_cli, history_dir):
    before = db.ohlcv("ETH/USDT", "1d", exchange="binance")
    assert _HeldEngine.current is not None  # this process holds the data dir (keep_open_s=600)
    t0 = time.monotonic()
    cli = cli_json(k2_cli, history_dir, "ohlcv", "ETH/USDT", "--interval", "1d", "--exchange", "binance")
    assert time.monotonic() - t0 < 60
    assert [Decimal(c["close"]) for c in cli] == before["close"].to_pylist()
    assert _HeldEngine.current is None  # it gave the directory up when the CLI asked
    after = db.ohlcv("ETH/USDT", "1d", exchange="binance")  # and opens it again on the next call
    assert after.equals(before)


def _start_serve(history_dir, extra_env=None) -> tuple[subprocess.Popen, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    env.update(K2_METRICS_ADDR="127.0.0.1:0", **(extra_env or {}))
    proc = subprocess.Popen([sys.executable, "-m", "k2", "serve", "--data-dir", str(history_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run_file = history_dir / "k2.run.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if run_file.exists():
            try:
                return proc, json.loads(run_file.read_text())
            except ValueError:
                pass
        if proc.poll() is not None:
            raise AssertionError(f"k2 serve exited: {proc.stderr.read()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("k2 serve did not start")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def test_k2_serve_takes_the_data_dir_over_and_urls_read_the_same(db, history_dir):
    local = db.ohlcv("BTC/USD", "1h", since="2026-07-16")
    assert _HeldEngine.current is not None
    proc, info = _start_serve(history_dir)  # asks this process to give the directory up
    try:
        assert _HeldEngine.current is None
        through_serve = db.ohlcv("BTC/USD", "1h", since="2026-07-16")  # the run file sends it to k2 serve
        assert _HeldEngine.current is None and through_serve.equals(local)
        by_url = k2.connect(url=f"http://{info['addr']}").ohlcv("BTC/USD", "1h", since="2026-07-16")
        assert by_url.equals(local)
        df = k2.connect(url=f"http://{info['addr']}").trades("BTC/USDT", limit=5, format="pandas")
        assert len(df) == 5 and isinstance(df["price"].iloc[0], Decimal)
    finally:
        _stop(proc)
    assert db.ohlcv("BTC/USD", "1h", since="2026-07-16").equals(local)  # and back to the data dir


def test_a_password_protects_the_endpoint(history_dir):
    _close_held_engine()
    proc, info = _start_serve(history_dir, {"K2_READ_PASSWORD": "s3cret"})
    try:
        with pytest.raises(k2.QueryError) as info_err:
            k2.connect(url=f"http://{info['addr']}").query("SELECT 1")
        assert info_err.value.code == 516
        ok = k2.connect(url=f"http://{info['addr']}", password="s3cret").query("SELECT 1 AS x")
        assert ok.to_pylist() == [{"x": 1}]
    finally:
        _stop(proc)
