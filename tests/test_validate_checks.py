"""Every `k2 validate` check can fail: for each one, a test plants the violation it guards against
in an otherwise clean warehouse and asserts that the check reports it -- and the clean warehouse
passes every check. A check without a planted violation fails `test_every_check_has_a_plant`: a
check that no test can make fail is a defect (it would PASS whatever the data).

The warehouse is opened in this process and the checks run on it directly (k2.quality.validate),
one check at a time, so each plant costs a reload of the fixture sessions and a few queries.
Info checks only inform (they have no pass or fail) and are the only ones without a plant.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures import k2db
from k2.exchanges import get_adapter
from k2.history.load import load_file
from k2.quality.validate import INTERVAL_SECONDS, _instances, load_checks, report, run_checks

#: the fixture sessions loaded into one warehouse. Coinbase Exchange and Advanced Trade (and
#: Kraken v1 and v2) share an exchange name, so they never share a data dir: two clean sets
MAIN = [("binance", None), ("kraken", None), ("coinbase", None), ("bybit", None), ("okx", None),
        ("bitfinex", None), ("gemini", None)]
APIS = [("binance", None), ("kraken", "v2"), ("coinbase", "advanced")]
FILES = {("kraken", "v2"): "kraken_v2_session.jsonl", ("coinbase", "advanced"): "coinbase_advanced_session.jsonl"}


@pytest.fixture(scope="module")
def wh(warehouse):
    return warehouse


def load_set(wh, fixtures_dir, sessions) -> None:
    k2db.truncate_all(wh)
    for exchange, api in sessions:
        name = FILES.get((exchange, api), f"{exchange}_session.jsonl")
        load_file(wh, get_adapter(exchange, api), fixtures_dir / name)


def statuses(wh, check_id: str) -> dict[str, str]:
    return {r.label: r.status for r in run_checks(wh, only={check_id})}


# -- ways to plant a violation ------------------------------------------------------------------------
def bronze_copy(table: str, replace: str, where: str = "1"):
    """Insert one bronze row changed by `replace` (`expr AS column, ...`): the materialized views
    carry it on to silver and gold as they would a live row."""
    def plant(wh):
        # the row is chosen in a subquery: in ClickHouse a WHERE after REPLACE sees the new values
        wh.execute(f"INSERT INTO k2.{table} SETTINGS insert_deduplicate = 0 SELECT * REPLACE ({replace}) "
                   f"FROM (SELECT * FROM k2.{table} WHERE {where} ORDER BY received_at LIMIT 1)")
    return plant


def silver_update(bronze_table: str, assignment: str, where: str = "1"):
    """Change one silver row in place (columns outside silver's sort key)."""
    def plant(wh):
        tid = _one_trade(wh, bronze_table, where)
        wh.execute(f"ALTER TABLE k2.silver_trades_v2 UPDATE {assignment} WHERE bronze_table = '{bronze_table}' "
                   f"AND trade_id = '{tid}' SETTINGS mutations_sync = 2")
    return plant


def silver_replace(bronze_table: str, replace: str, where: str = "1"):
    """Replace one silver row by a changed copy (sort-key columns cannot be updated in place)."""
    def plant(wh):
        tid = _one_trade(wh, bronze_table, where)
        one = f"bronze_table = '{bronze_table}' AND trade_id = '{tid}'"
        wh.execute("DROP TABLE IF EXISTS k2.plant_copy")
        wh.execute("CREATE TABLE k2.plant_copy AS k2.silver_trades_v2 ENGINE = Memory")
        wh.execute(f"INSERT INTO k2.plant_copy SELECT * REPLACE ({replace}) "
                   f"FROM (SELECT * FROM k2.silver_trades_v2 WHERE {one})")
        assert int(wh.scalar("SELECT count() FROM k2.plant_copy")) == 1
        wh.execute(f"ALTER TABLE k2.silver_trades_v2 DELETE WHERE {one} SETTINGS mutations_sync = 2")
        wh.execute("INSERT INTO k2.silver_trades_v2 SETTINGS insert_deduplicate = 0 SELECT * FROM k2.plant_copy")
        wh.execute("DROP TABLE k2.plant_copy")
    return plant


def silver_duplicate(bronze_table: str):
    """One silver row twice (a trade counted twice)."""
    def plant(wh):
        tid = _one_trade(wh, bronze_table, "1")
        wh.execute("INSERT INTO k2.silver_trades_v2 SETTINGS insert_deduplicate = 0 SELECT * FROM k2.silver_trades_v2 "
                   f"WHERE bronze_table = '{bronze_table}' AND trade_id = '{tid}'")
    return plant


def silver_delete(bronze_table: str):
    def plant(wh):
        tid = _one_trade(wh, bronze_table, "1")
        wh.execute(f"ALTER TABLE k2.silver_trades_v2 DELETE WHERE bronze_table = '{bronze_table}' "
                   f"AND trade_id = '{tid}' SETTINGS mutations_sync = 2")
    return plant


def _one_trade(wh, bronze_table: str, where: str) -> str:
    tid = wh.scalar(f"SELECT trade_id FROM k2.silver_trades_v2 WHERE bronze_table = '{bronze_table}' AND {where} "
                    "ORDER BY timestamp, trade_id LIMIT 1")
    assert tid is not None, f"no {bronze_table} trade matching {where} in the fixtures"
    return tid


def extra_gold_state(table: str):
    """One gold state row twice: that candle's volume and count double."""
    def plant(wh):
        wh.execute(f"INSERT INTO k2.{table} SETTINGS insert_deduplicate = 0 SELECT * FROM k2.{table} "
                   "WHERE canonical_symbol = 'BTC/USDT' AND exchange = 'binance' ORDER BY window_start LIMIT 1")
    return plant


def truncate(wh):
    k2db.truncate_all(wh)


def price_skew(wh):
    """Binance BTC/USDT 15 % above Kraken's in the same hour (~97,000: where Decimal division overflowed)."""
    wh.execute("INSERT INTO k2.bronze_trades_binance SETTINGS insert_deduplicate = 0 "
               "SELECT * REPLACE (toString(toDecimal128(price, 8) * toDecimal128('1.15', 2)) AS price, "
               "'1000' AS quantity, trade_id + 100 AS trade_id) "
               "FROM (SELECT * FROM k2.bronze_trades_binance WHERE symbol = 'BTCUSDT' ORDER BY trade_id DESC LIMIT 1)")


def open_gap(wh):
    wh.execute("INSERT INTO k2.gaps (gap_id, exchange, symbol, kind, from_id, to_id, state, trades_recovered, detail, "
               "detected_at) VALUES ('g1', 'binance', 'BTCUSDT', 'ids', 5, 9, 'open', 0, 'planted', now64(6))")


def unknown_instrument(wh):
    bronze_copy("bronze_trades_binance", "'FOOBARBAZ' AS symbol")(wh)


ARCHIVE = "bronze_archive_binance_trades"


def damaged_part(wh):
    """A gold part ClickHouse found broken when it opened the data dir: detached as `broken-on-start_`."""
    name, path = wh.rows("SELECT name, path FROM system.parts WHERE database = 'k2' AND table = 'gold_ohlcv_1m' "
                         "AND active ORDER BY name LIMIT 1")[0]
    wh.execute(f"ALTER TABLE k2.gold_ohlcv_1m DETACH PART '{name}'")
    detached = Path(path).parent / "detached"
    os.rename(detached / name, detached / f"broken-on-start_{name}")


def archive_trade(then=None):
    """One Binance archive trade (k2 import's bronze table; its view carries it to silver), with an id
    far from the fixtures', then `then(wh)` (e.g. a change to its silver row)."""
    def plant(wh):
        wh.execute(f"INSERT INTO k2.{ARCHIVE} (symbol, id, price, qty, quote_qty, time, time_unit, is_buyer_maker, "
                   "is_best_match, archive_file, line_no, batch_id) VALUES ('BTCUSDT', 990000001, '97000.01', '0.5', "
                   "'48500.005', 1784116800123, 'ms', true, true, 'BTCUSDT-trades-2026-07-15.zip', 1, 'plant')")
        if then is not None:
            then(wh)
    return plant


def unexplained_window(wh):
    """A window k2 reconcile found unexplained (a venue's high K2's trades do not reach)."""
    wh.execute("INSERT INTO k2.reconciliation (exchange, symbol, canonical_symbol, interval, window_start, verdict, "
               "cause, fields, k2, venue, checked_at) VALUES ('binance', 'BTCUSDT', 'BTC/USDT', '1m', "
               "'2026-07-15 12:00:00', 'unexplained', 'same trades counted, different values', ['high'], "
               "'{\"high\":\"1\"}', '{\"high\":\"2\"}', now64(6))")


#: check label -> (fixture set, plant). Labels are those of the report (`id [instance]`).
PLANTS = {
    "bronze.any_trades": (MAIN, truncate),
    "bronze.binance.native_symbols": (MAIN, bronze_copy("bronze_trades_binance", "'BTC/USDT' AS symbol")),
    "bronze.binance.decimal_strings": (MAIN, bronze_copy("bronze_trades_binance",
                                                         "'9.7e4' AS price, trade_id + 100 AS trade_id")),
    "bronze.kraken.native_pairs": (MAIN, bronze_copy("bronze_trades_kraken", "'BTC/USD' AS pair",
                                                     "pair = 'XBT/USD'")),
    "bronze.kraken.timestamp_strings": (MAIN, bronze_copy("bronze_trades_kraken", "'1784116900' AS timestamp")),
    "bronze.coinbase.native": (MAIN, bronze_copy("bronze_trades_coinbase", "'BTC/USD' AS product_id")),
    "bronze.coinbase_advanced.native": (APIS, bronze_copy("bronze_trades_coinbase_advanced",
                                                          "'1.5e3' AS price, '999999' AS trade_id")),
    "bronze.bybit.native": (MAIN, bronze_copy("bronze_trades_bybit", "'btc-usdt' AS symbol")),
    "bronze.okx.native": (MAIN, bronze_copy("bronze_trades_okx", "'BTC/USDT' AS inst_id")),
    "bronze.bitfinex.native": (MAIN, bronze_copy("bronze_trades_bitfinex", "'BTCUSD' AS symbol")),
    "bronze.gemini.native": (MAIN, bronze_copy("bronze_trades_gemini", "'btcusd' AS symbol")),
    **{f"silver.complete [{t}]": (APIS if t in ("bronze_trades_kraken_v2", "bronze_trades_coinbase_advanced")
                                  else MAIN, silver_delete(t))
       for t in ("bronze_trades_binance", "bronze_trades_kraken", "bronze_trades_coinbase", "bronze_trades_bybit",
                 "bronze_trades_okx", "bronze_trades_bitfinex", "bronze_trades_gemini", "bronze_trades_kraken_v2",
                 "bronze_trades_coinbase_advanced")},
    "silver.no_legacy_codes": (MAIN, silver_replace("bronze_trades_kraken", "'XBT/USD' AS canonical_symbol",
                                                    "symbol = 'XBT/USD'")),
    "silver.binance.symbol_split": (MAIN, silver_update("bronze_trades_binance", "quote = 'USD'",
                                                        "symbol = 'BTCUSDT'")),
    "silver.kraken.symbol_map": (MAIN, silver_replace("bronze_trades_kraken", "'ETH/USD' AS canonical_symbol",
                                                      "symbol = 'XBT/USD'")),
    "silver.taker_side": (MAIN, silver_update("bronze_trades_binance", "side = if(side = 'BUY', 'SELL', 'BUY')")),
    "silver.timestamps": (MAIN, silver_replace("bronze_trades_binance",
                                               "timestamp + INTERVAL 1 MILLISECOND AS timestamp")),
    "silver.exact_decimals": (MAIN, silver_update("bronze_trades_kraken", "price = price + 1")),
    "silver.kraken.trade_ids": (MAIN, silver_replace("bronze_trades_kraken", "'KRAKEN-1-deadbeef' AS trade_id")),
    "silver.vendor_data": (APIS, silver_update("bronze_trades_kraken_v2",
                                               "vendor_data = mapFilter((k, v) -> k != 'qty', vendor_data)")),
    "silver.invalid_rows": (MAIN, unknown_instrument),
    "silver.coinbase.normalized": (MAIN, silver_update("bronze_trades_coinbase",
                                                       "side = if(side = 'BUY', 'SELL', 'BUY')")),
    "silver.coinbase_advanced.normalized": (APIS, silver_update("bronze_trades_coinbase_advanced",
                                                                "quantity = quantity * 2")),
    "silver.bybit.normalized": (MAIN, silver_update("bronze_trades_bybit",
                                                    "vendor_data = mapUpdate(vendor_data, map('i', 'x'))")),
    "silver.okx.normalized": (MAIN, silver_replace("bronze_trades_okx", "timestamp + INTERVAL 1 SECOND AS timestamp")),
    "silver.bitfinex.normalized": (MAIN, silver_update("bronze_trades_bitfinex", "quote = 'UST'")),
    "silver.gemini.normalized": (MAIN, silver_update("bronze_trades_gemini",
                                                     "side = if(side = 'BUY', 'SELL', 'BUY')")),
    "cross.totals": (MAIN, extra_gold_state("gold_ohlcv_1h")),
    "cross.price_agreement": (MAIN, price_skew),
    "cross.spreads": (MAIN, extra_gold_state("gold_ohlcv_1m")),
    **{f"gold.per_exchange [{i}]": (MAIN, extra_gold_state("gold_ohlcv_1h" if i in ("1h", "1d") else "gold_ohlcv_1m"))
       for i in INTERVAL_SECONDS},
    **{f"gold.cross_exchange [{i}]": (MAIN, extra_gold_state("gold_ohlcv_1h" if i in ("1h", "1d")
                                                             else "gold_ohlcv_1m"))
       for i in INTERVAL_SECONDS},
    "quality.positive": (MAIN, silver_update("bronze_trades_okx", "quantity = 0")),
    "quality.no_future": (MAIN, silver_update("bronze_trades_gemini",
                                              "ingestion_timestamp = timestamp - INTERVAL 2 MINUTE")),
    "quality.unique_trade_ids": (MAIN, silver_duplicate("bronze_trades_bybit")),
    "quality.sequential_ids": (MAIN, bronze_copy("bronze_trades_binance", "trade_id + 100 AS trade_id",
                                                 "symbol = 'BTCUSDT'")),
    "quality.coinbase.sequential_ids": (MAIN, bronze_copy("bronze_trades_coinbase", "trade_id + 100 AS trade_id")),
    "quality.gaps": (MAIN, open_gap),
    "storage.damaged_parts": (MAIN, damaged_part),
    "history.silver_once": (MAIN, silver_duplicate("bronze_trades_binance")),
    "history.open_holes": (MAIN, bronze_copy("bronze_trades_binance", "trade_id + 100 AS trade_id",
                                             "symbol = 'BTCUSDT'")),
    "history.archive_complete": (MAIN, archive_trade(silver_delete(ARCHIVE))),
    "history.archive_normalized": (MAIN, archive_trade(silver_update(ARCHIVE, "side = if(side = 'BUY', 'SELL', 'BUY')"))),
    "reconcile.unexplained": (MAIN, unexplained_window),
}


def _labels() -> dict[str, str]:
    """label -> severity of every check instance the report has."""
    return {label: c.severity for c in load_checks() for label, _ in _instances(c)}


def test_every_check_has_a_plant():
    labels = _labels()
    missing = sorted(label for label, severity in labels.items() if severity != "info" and label not in PLANTS)
    assert not missing, f"checks no test can make fail (add a plant): {missing}"
    unknown = sorted(set(PLANTS) - set(labels))
    assert not unknown, f"plants for checks that do not exist: {unknown}"


@pytest.mark.parametrize("sessions", [MAIN, APIS], ids=["main", "apis"])
def test_the_clean_warehouse_passes_every_check(wh, fixtures_dir, sessions):
    load_set(wh, fixtures_dir, sessions)
    text, ok = report(run_checks(wh))
    assert ok and "RESULT: PASS" in text, text
    assert " FAIL " not in text and " WARN " not in text, text


@pytest.mark.parametrize("label", sorted(PLANTS))
def test_the_check_reports_its_planted_violation(wh, fixtures_dir, label):
    sessions, plant = PLANTS[label]
    load_set(wh, fixtures_dir, sessions)
    check_id = label.split(" [")[0]
    before = statuses(wh, check_id)
    assert before[label] == "PASS", f"{label} fails before the plant: {before}"
    plant(wh)
    after = statuses(wh, check_id)
    expected = "FAIL" if _labels()[label] == "fail" else "WARN"
    assert after[label] == expected, f"{label} did not report its planted violation: {after}"
