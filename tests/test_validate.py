"""`k2 validate`: passes on good data, fails (exit 1) and names the check when something is broken.

Each test builds its state in one data dir through a warehouse opened in this process, closes it,
then runs `k2 validate` on that dir (chDB lets one user hold a directory at a time).
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import pytest

from fixtures import k2db
from fixtures import make_frames as mf
from k2.exchanges import get_adapter
from k2.history.load import load_file
from k2.warehouse import open_warehouse

SECTIONS = ["[1 bronze]", "[2 silver]", "[3 cross-exchange]", "[4 gold]", "[5 data quality]"]
INTERVALS = ["1m", "5m", "15m", "1h", "1d"]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("validate") / "k2data"


@contextmanager
def opened(data_dir):
    wh = open_warehouse(data_dir)
    try:
        yield wh
    finally:
        wh.close()


@pytest.fixture
def good(data_dir, fixtures_dir):
    """-> a context manager: the data dir holding both fixture sessions, open for corruption."""

    @contextmanager
    def session():
        with opened(data_dir) as wh:
            k2db.truncate_all(wh)
            for exchange in ("binance", "kraken"):
                load_file(wh, get_adapter(exchange), fixtures_dir / f"{exchange}_session.jsonl")
            yield wh

    return session


def validate(k2_main, data_dir) -> tuple[int, str, set[str]]:
    """-> (exit status, report, labels of the failed checks)."""
    rc, out, err = k2_main("validate", "--data-dir", data_dir)
    assert "Traceback" not in out + err
    failed = {m.group(1) for m in re.finditer(r"^\s+FAIL\s+(.+?): ", out, re.M)}
    return rc, out, failed


def test_passes_on_good_data(good, data_dir, k2_main):
    with good():
        pass
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 0, out
    assert failed == set()
    assert out.rstrip().endswith("RESULT: PASS")
    for section in SECTIONS:
        assert section in out
    for interval in INTERVALS:
        assert f"PASS  gold.per_exchange [{interval}]" in out
        assert f"PASS  gold.cross_exchange [{interval}]" in out
    assert "cross.venues" in out and "BTC/USDT [binance,kraken]" in out


def test_an_empty_warehouse_fails_and_says_so(data_dir, k2_main):
    """No trades proves nothing: a new or mistyped data dir is not a PASS (it was 52 PASS)."""
    with opened(data_dir) as wh:
        k2db.truncate_all(wh)
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 1 and failed == {"bronze.any_trades"}, out
    assert "no trades in bronze or silver" in out and out.rstrip().endswith("RESULT: FAIL")


def test_a_data_dir_that_does_not_exist_is_an_error(tmp_path, k2_main):
    rc, out, err = k2_main("validate", "--data-dir", tmp_path / "k2dta")
    assert rc == 2 and out == "" and err.count("\n") == 1, err
    assert f"data dir {tmp_path / 'k2dta'} (from --data-dir) does not exist" in err
    assert not (tmp_path / "k2dta").exists()  # nothing created


def test_duplicate_silver_row_fails(good, data_dir, k2_main, k2_cli):
    with good() as wh:
        wh.execute("INSERT INTO k2.silver_trades_v2 SETTINGS insert_deduplicate = 0 "
                   "SELECT * FROM k2.silver_trades_v2 WHERE exchange = 'kraken' AND symbol = 'XDG/USD'")
        assert k2db.count(wh, "silver_trades_v2") == 21
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 1
    assert out.rstrip().endswith("RESULT: FAIL")
    assert "quality.unique_trade_ids" in failed
    complete = {label for label in failed if label.startswith("silver.complete")}
    assert len(complete) == 1 and complete.pop().endswith("kraken]")  # not binance
    assert "bronze 11, silver 12" in out
    # the real console script exits with status 1 too
    r = k2_cli("validate", "--data-dir", data_dir)
    assert r.returncode == 1 and "RESULT: FAIL" in r.stdout and "Traceback" not in r.stderr


def test_extra_gold_state_row_fails(good, data_dir, k2_main):
    with good() as wh:
        wh.execute("INSERT INTO k2.gold_ohlcv_1m SETTINGS insert_deduplicate = 0 "
                   "SELECT * FROM k2.gold_ohlcv_1m WHERE canonical_symbol = 'BTC/USD' "
                   "ORDER BY window_start LIMIT 1")
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 1
    # the extra state flows up through every interval; silver itself is fine
    assert {f"gold.per_exchange [{i}]" for i in INTERVALS} <= failed
    assert {f"gold.cross_exchange [{i}]" for i in INTERVALS} <= failed
    assert all(label.startswith("gold.") for label in failed), failed
    assert "kraken BTC/USD 2026-07-15 12:00:00" in out


def test_tampered_silver_price_fails(good, data_dir, k2_main):
    with good() as wh:
        wh.execute("ALTER TABLE k2.silver_trades_v2 UPDATE price = price + 1 "
                   "WHERE exchange = 'binance' AND trade_id = '998' SETTINGS mutations_sync = 2")
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 1
    assert "silver.exact_decimals" in failed
    assert "gold.per_exchange [1m]" in failed  # gold no longer equals silver


def test_missing_binance_ids_fail(good, data_dir, k2_main, fixtures_dir):
    with good() as wh:
        load_file(wh, get_adapter("binance"), fixtures_dir / "binance_gap.jsonl")  # ..793, ..795
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 1
    assert failed == {"quality.sequential_ids"}
    assert "BTCUSDT 1" in out  # one id missing between the first and the last


def test_non_native_bronze_pair_fails(good, data_dir, k2_main):
    with good() as wh:
        wh.execute("INSERT INTO k2.bronze_trades_kraken (channel_id, pair, price, volume, timestamp, side, "
                   "order_type, misc, received_at, source, batch_id) VALUES (1, 'BTC/USD', '97000.0', '0.1', "
                   "'1784116900.000001', 'b', 'l', '', now64(6), 'test', 'manual')")
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 1
    assert "bronze.kraken.native_pairs" in failed


def test_invalid_silver_rows_fail(good, data_dir, k2_main, tmp_path):
    with good() as wh:
        path = mf.write_lines(tmp_path / "unknown.jsonl",
                              [mf.binance_trade("FOOBARBAZ", 1, "1.0", "1.0", 1784116800000, False)])
        load_file(wh, get_adapter("binance"), path)
    rc, out, failed = validate(k2_main, data_dir)
    assert rc == 1
    assert "silver.invalid_rows" in failed
    assert "unknown_instrument" in out
