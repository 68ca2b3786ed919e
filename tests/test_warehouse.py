"""Normalization in SQL: frames are loaded into bronze and the materialized views must produce
the right silver rows and gold candles. Everything is checked against the independent Python
model in fixtures/reference.py, plus the specific cases the issue names."""

from __future__ import annotations

import decimal
from decimal import Decimal

import pytest

from fixtures import k2db
from fixtures import make_frames as mf
from fixtures import reference as ref

SESSION_FILES = {"binance": "binance_session.jsonl", "kraken": "kraken_session.jsonl"}


@pytest.fixture
def sessions(clean_warehouse, load_frames, fixtures_dir):
    """Both fixture sessions loaded; returns (warehouse, reference trades)."""
    wh = clean_warehouse
    trades = []
    for exchange, name in SESSION_FILES.items():
        report = load_frames(wh, exchange, fixtures_dir / name)
        assert report.rejects == 0
        frames = (fixtures_dir / name).read_bytes().splitlines()
        trades += ref.binance_trades(frames) if exchange == "binance" else ref.kraken_trades(frames)
    return wh, trades


def by_id(rows):
    return {(r["exchange"], r["trade_id"]): r for r in rows}


# -- schema --------------------------------------------------------------------------------------
def test_no_float_anywhere_on_the_path(warehouse):
    floats = warehouse.rows("SELECT table, name, type FROM system.columns WHERE database = 'k2' "
                            "AND type ILIKE '%float%'")
    # the one documented exception (ADR 0025): the quote basis between USD, USDT and USDC is a
    # product of three prices shown in bp, not a value anything is summed from
    assert sorted(f[:2] for f in floats) == [["quote_basis_1m", "basis_bps"], ["quote_basis_1m", "rate_b_in_a"]], floats
    types = dict(warehouse.rows("SELECT name, type FROM system.columns WHERE database = 'k2' "
                                "AND table = 'silver_trades_v2'"))
    assert types["price"] == types["quantity"] == "Decimal(38, 18)"
    assert types["timestamp"] == "DateTime64(6, 'UTC')"
    assert types["vendor_data"] == "Map(String, String)"


def test_embedded_merge_policy_bounds_what_a_merge_holds(warehouse):
    """The embedded engine's merges (90/91-merge-policy.embedded.sql): column by column, in small
    blocks, and at most 8 parts at once, on every bronze table, the archive ones `k2 import` fills
    included, and on silver (a bulk load's peak RSS is its merges beside its inserts, ADR 0029)."""
    if warehouse.backend != "embedded":
        pytest.skip("the merge policy is the embedded engine's (a server merges on its own cores)")
    tables = [r[0] for r in warehouse.rows(
        "SELECT name FROM system.tables WHERE database = 'k2' AND engine = 'MergeTree' "
        "AND (startsWith(name, 'bronze_') OR name = 'silver_trades_v2') ORDER BY name")]
    assert "bronze_archive_binance_trades" in tables and "silver_trades_v2" in tables and len(tables) >= 12, tables
    for table in tables:
        engine = warehouse.scalar("SELECT engine_full FROM system.tables WHERE database = 'k2' AND name = {t:String}",
                                  {"t": table})
        for setting in ("max_parts_to_merge_at_once = 8", "vertical_merge_algorithm_min_rows_to_activate = 1",
                        "merge_max_block_size = 2048", "max_compress_block_size = 65536"):
            assert setting in engine, (table, setting)


def test_silver_granules_hold_at_most_a_mebibyte(clean_warehouse):
    """A merge reads one granule of every part it merges at once, so silver's granules are bounded
    by bytes (1 MiB), not only by ClickHouse's 8,192 rows (ADR 0029, fifth round): 20,000 rows of
    ~300 bytes (6 MB) take at least six granules, where 8,192-row granules would take three."""
    wh = clean_warehouse
    wh.execute(
        "INSERT INTO k2.silver_trades_v2 (exchange, symbol, canonical_symbol, trade_id, price, quantity, side, "
        "timestamp, received_at, ingestion_timestamp, source, bronze_table, vendor_data, is_valid) "
        "SELECT 'binance', 'BTCUSDT', 'BTC/USDT', toString(number), 1, 1, 'BUY', "
        "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(number), now64(6), now64(6), 'file', "
        "'bronze_trades_binance', map('pad', repeat(toString(number % 10), 280)), 1 FROM numbers(20000)")
    marks, rows = wh.rows("SELECT sum(marks), sum(rows) FROM system.parts "
                          "WHERE database = 'k2' AND table = 'silver_trades_v2' AND active")[0]
    assert int(rows) == 20000
    assert int(marks) >= 6, marks


def test_silver_inserts_write_compact_parts_and_large_parts_stay_wide(clean_warehouse):
    """90-merge-policy.embedded.sql (ADR 0038): a bulk load's insert into silver is one Compact part
    (two files, not two per column stream), even over ClickHouse's 10 MiB bound for Compact, and a
    part of 65,536 rows or more (what merges build) is Wide, which reads one column alone."""
    wh = clean_warehouse
    if wh.backend != "embedded":
        pytest.skip("an embedded-engine setting (a server's parts are its own business)")

    def insert(rows: int, pad: int, first: int) -> tuple[str, int, int]:
        wh.execute(
            "INSERT INTO k2.silver_trades_v2 (exchange, symbol, canonical_symbol, trade_id, price, quantity, side, "
            "timestamp, received_at, ingestion_timestamp, source, bronze_table, vendor_data, is_valid) "
            "SELECT 'binance', 'BTCUSDT', 'BTC/USDT', toString(number), 1, 1, 'BUY', "
            "toDateTime64('2026-01-01 00:00:00', 6, 'UTC') + toIntervalMillisecond(number), now64(6), now64(6), "
            f"'file', 'bronze_trades_binance', map('pad', repeat(toString(number % 10), {pad})), 1 "
            f"FROM numbers({first}, {rows})")
        return tuple(wh.rows("SELECT part_type, rows, data_uncompressed_bytes FROM system.parts WHERE database = 'k2' "
                             "AND table = 'silver_trades_v2' AND active ORDER BY max_block_number DESC LIMIT 1")[0])

    wh.execute("SYSTEM STOP MERGES k2.silver_trades_v2")
    try:
        kind, rows, size = insert(30_000, 500, 0)
        assert int(rows) == 30_000 and int(size) > 10 * 1024 * 1024, (rows, size)  # Wide by ClickHouse's default
        assert kind == "Compact", (kind, rows, size)
        kind, rows, size = insert(70_000, 200, 30_000)
        assert int(rows) == 70_000 and int(size) > 10 * 1024 * 1024, (rows, size)
        assert kind == "Wide", (kind, rows, size)
    finally:
        wh.execute("SYSTEM START MERGES k2.silver_trades_v2")


def test_a_failed_mutation_is_retried_within_a_second_on_every_table_k2_rebuilds(warehouse):
    """92-failed-mutations.embedded.sql: rebuild and repair delete ranges with ALTER ... DELETE and
    wait; after a mutation failed on a full disk, ClickHouse's default backoff (up to 5 minutes)
    kept the repair on open waiting long after the disk had room. Every bronze, silver and gold
    table (any new one too) must retry within a second."""
    if warehouse.backend != "embedded":
        pytest.skip("an embedded-engine setting (a server's version may not know it)")
    tables = [r[0] for r in warehouse.rows(
        "SELECT name FROM system.tables WHERE database = 'k2' AND engine LIKE '%MergeTree' "
        "AND (startsWith(name, 'bronze_') OR startsWith(name, 'silver_') OR startsWith(name, 'gold_')) ORDER BY name")]
    assert {"bronze_trades_kraken", "silver_trades_v2", "gold_ohlcv_1m", "gold_ohlcv_1h"} <= set(tables), tables
    for table in tables:
        engine = warehouse.scalar("SELECT engine_full FROM system.tables WHERE database = 'k2' AND name = {t:String}",
                                  {"t": table})
        assert "max_postpone_time_for_failed_mutations_ms = 1000" in engine, (table, engine[-300:])


def test_seed_compatible_names(warehouse):
    def columns(table):
        return {r[0] for r in warehouse.rows(
            "SELECT name FROM system.columns WHERE database = 'k2' AND table = {t:String}", {"t": table})}

    assert {"exchange", "symbol", "canonical_symbol", "trade_id", "price", "quantity", "currency", "side",
            "timestamp", "ingestion_timestamp", "vendor_data", "is_valid",
            "validation_errors"} <= columns("silver_trades_v2")
    assert "ingested_at" in columns("bronze_trades_binance")
    assert {"pair", "timestamp", "side", "order_type", "misc", "channel_id", "ingested_at"} <= columns(
        "bronze_trades_kraken")
    for interval in ref.INTERVALS:
        for view in (f"ohlcv_{interval}", f"ohlcv_{interval}_cross"):
            assert {"exchange", "canonical_symbol", "window_start", "open_price", "high_price", "low_price",
                    "close_price", "volume", "trade_count", "quote_volume", "vwap", "buy_volume",
                    "sell_volume"} <= columns(view), view


def test_schema_apply_is_idempotent(sessions):
    from k2.warehouse import schema

    wh, _ = sessions
    before = {t: k2db.snapshot(wh, t) for t in ("silver_trades_v2", "gold_ohlcv_1m", "instruments")}
    assert schema.apply(wh, force=True) > 0
    assert schema.apply(wh, force=False) == 0  # unchanged schema: nothing to do
    assert {t: k2db.snapshot(wh, t) for t in before} == before


# -- silver --------------------------------------------------------------------------------------
def test_silver_rows_equal_the_reference(sessions):
    wh, trades = sessions
    rows = by_id(k2db.silver_rows(wh))
    assert len(rows) == len(trades) == 9 + 11
    for t in trades:
        r = rows[(t.exchange, t.trade_id)]
        base, quote = t.canonical.split("/")
        assert (r["symbol"], r["canonical_symbol"], r["base"], r["quote"], r["currency"]) == (
            t.symbol, t.canonical, base, quote, quote), t
        assert (Decimal(r["price"]), Decimal(r["quantity"]), r["side"], r["ts_us"]) == (
            t.price, t.qty, t.side, t.ts_us), t
        assert r["vendor_data"] == t.raw, t
        assert r["is_valid"] is True and r["validation_errors"] == [], t


@pytest.mark.parametrize("pair, canonical, base, quote", [
    ("XBT/USD", "BTC/USD", "BTC", "USD"),
    ("XDG/USD", "DOGE/USD", "DOGE", "USD"),
    ("ADA/XBT", "ADA/BTC", "ADA", "BTC"),
    ("XDG/XBT", "DOGE/BTC", "DOGE", "BTC"),
    ("XBT/USDT", "BTC/USDT", "BTC", "USDT"),
])
def test_kraken_legacy_codes_on_both_sides(sessions, pair, canonical, base, quote):
    wh, _ = sessions
    got = wh.rows("SELECT DISTINCT canonical_symbol, base, quote, currency FROM k2.silver_trades_v2 "
                  "WHERE exchange = 'kraken' AND symbol = {p:String}", {"p": pair})
    assert got == [[canonical, base, quote, quote]]


@pytest.mark.parametrize("symbol, canonical, quote", [
    ("BTCUSDT", "BTC/USDT", "USDT"),  # the true quote: USDT is not USD
    ("ETHBTC", "ETH/BTC", "BTC"),
    ("ETHUSDT", "ETH/USDT", "USDT"),
    ("SOLUSDT", "SOL/USDT", "USDT"),
])
def test_binance_symbols_split_by_quote_asset(sessions, symbol, canonical, quote):
    wh, _ = sessions
    got = wh.rows("SELECT DISTINCT canonical_symbol, quote, currency FROM k2.silver_trades_v2 "
                  "WHERE exchange = 'binance' AND symbol = {s:String}", {"s": symbol})
    assert got == [[canonical, quote, quote]]


def test_side_is_the_taker_side(sessions):
    wh, _ = sessions
    pairs = wh.rows("SELECT exchange, if(exchange = 'binance', vendor_data['m'], vendor_data['side']), "
                    "toString(side), count() FROM k2.silver_trades_v2 GROUP BY 1, 2, 3 ORDER BY 1, 2")
    assert [p[:3] for p in pairs] == [
        ["binance", "false", "BUY"], ["binance", "true", "SELL"],
        ["kraken", "b", "BUY"], ["kraken", "s", "SELL"]]


def test_kraken_trade_ids_are_deterministic(clean_warehouse, load_frames, fixtures_dir):
    wh = clean_warehouse
    path = fixtures_dir / "kraken_session.jsonl"
    load_frames(wh, "kraken", path)
    first = [(r["trade_id"], r["vendor_data"]) for r in k2db.silver_rows(wh)]
    for trade_id, raw in first:  # recomputed in Python from the native fields
        assert trade_id == ref.kraken_trade_id(raw["pair"], raw["raw_timestamp"], raw["price"], raw["volume"],
                                               raw["side"], raw["order_type"], raw["misc"],
                                               int(raw["occurrence"])), raw
    ids = [t for t, _ in first]
    assert len(set(ids)) == len(ids) == 11
    # the three identical trades of one frame: occurrences 0, 1, 2 and three distinct ids
    triple = sorted((int(raw["occurrence"]), t) for t, raw in first if raw["raw_timestamp"] == "1784116805.000001")
    assert [o for o, _ in triple] == [0, 1, 2]
    assert triple[0][1].startswith("KRAKEN-1784116805000001-") and len(triple[0][1]) == len("KRAKEN--") + 16 + 8

    k2db.truncate_all(wh)  # a second load from scratch gives the very same ids
    load_frames(wh, "kraken", path)
    assert sorted(r["trade_id"] for r in k2db.silver_rows(wh)) == sorted(ids)


def test_kraken_replay_on_a_new_channel_is_the_same_trade(clean_warehouse, load_frames):
    """After a reconnect Kraken gives a new channelID; the trade itself (and its id) is unchanged."""
    wh = clean_warehouse
    trade = mf.KTrade("97512.30000", "0.00150000", "1784116800.412345", "b", "m")
    load_frames(wh, "kraken", [mf.kraken_trades(111, "XBT/USD", [trade])], name="a.jsonl")
    report = load_frames(wh, "kraken", [mf.kraken_trades(222, "XBT/USD", [trade])], name="b.jsonl")
    assert (report.trades, report.written) == (1, 0)
    rows = k2db.silver_rows(wh)
    assert len(rows) == 1 and rows[0]["vendor_data"]["channel_id"] == "111"


def test_timestamps_exact_to_the_microsecond(clean_warehouse, load_frames):
    wh = clean_warehouse
    times = ["1784116800.000000", "1784116800.000001", "1784116800.999999", "1784116800.412345",
             "1784116800.1", "1784116800.05", "1784116859.999999", "1784116860.000000"]
    load_frames(wh, "kraken", [mf.kraken_trades(1, "XBT/USD", [mf.KTrade("1.0", "1.0", ts, "b")]) for ts in times])
    got = sorted((r["vendor_data"]["raw_timestamp"], r["ts_us"]) for r in k2db.silver_rows(wh))
    assert got == sorted((ts, ref.kraken_ts_us(ts)) for ts in times)
    assert dict(got)["1784116800.1"] == 1784116800_100000
    assert dict(got)["1784116800.05"] == 1784116800_050000
    text = wh.scalar("SELECT toString(timestamp) FROM k2.silver_trades_v2 "
                     "WHERE vendor_data['raw_timestamp'] = '1784116800.000001'")
    assert text == "2026-07-15 12:00:00.000001"

    load_frames(wh, "binance", [mf.binance_trade("BTCUSDT", 1, "1.0", "1.0", 1784116800001, True),
                                mf.binance_trade("BTCUSDT", 2, "1.0", "1.0", 1784116800999, True)])
    assert sorted(r["ts_us"] for r in k2db.silver_rows(wh, "exchange = 'binance'")) == [
        1784116800001000, 1784116800999000]


@pytest.mark.parametrize("price, quantity", [
    ("0.00000001", "123456789.123456789"),
    ("123456789.123456789", "0.00000001"),
    ("97512.34000000", "0.00120000"),
    ("0.000001", "99999999999999999999.999999999999999999"),  # the largest Decimal(38, 18)
    ("0.000000000000000001", "1"),  # the smallest positive one
    ("00097512.5", "1.10"),
])
def test_prices_and_quantities_are_exact(clean_warehouse, load_frames, price, quantity):
    wh = clean_warehouse
    load_frames(wh, "binance", [mf.binance_trade("BTCUSDT", 1, price, quantity, 1784116800000, False)])
    load_frames(wh, "kraken", [mf.kraken_trades(1, "XBT/USD", [mf.KTrade(price, quantity, "1784116800.000001", "b")])])
    rows = k2db.silver_rows(wh)
    assert len(rows) == 2
    for r in rows:
        assert Decimal(r["price"]) == Decimal(price) and Decimal(r["quantity"]) == Decimal(quantity)
        assert r["is_valid"] is True
    vd = {r["exchange"]: r["vendor_data"] for r in rows}
    assert (vd["binance"]["p"], vd["binance"]["q"]) == (price, quantity)  # as sent, zeros and all
    assert (vd["kraken"]["price"], vd["kraken"]["volume"]) == (price, quantity)
    quote_volume = wh.scalar("SELECT toString(quote_volume) FROM k2.ohlcv_1m WHERE exchange = 'kraken'")
    assert Decimal(quote_volume) == decimal.Context(prec=100).multiply(Decimal(price), Decimal(quantity))


def test_absurd_notional_is_flagged_not_aggregated(clean_warehouse, load_frames):
    """price x quantity >= 1e14 cannot be a real trade; keeping it out of gold keeps the exact
    Decimal sums and VWAP from overflowing."""
    wh = clean_warehouse
    load_frames(wh, "binance", [mf.binance_trade("BTCUSDT", 1, "9999999999999999.5", "9999999999999999.5",
                                                 1784116800000, False)])
    rows = k2db.silver_rows(wh)
    assert [r["is_valid"] for r in rows] == [False]
    assert "notional_out_of_range" in rows[0]["validation_errors"]
    assert wh.scalar("SELECT count() FROM k2.gold_ohlcv_1m") == "0"


def test_values_beyond_decimal_38_18_are_flagged_not_rounded(clean_warehouse, load_frames):
    wh = clean_warehouse
    load_frames(wh, "binance", [
        mf.binance_trade("BTCUSDT", 1, "1.0000000000000000001", "1.0", 1784116800000, False),
        mf.binance_trade("BTCUSDT", 2, "0", "1.0", 1784116800000, False),
        mf.binance_trade("BTCUSDT", 3, "1.0", "0.00000000", 1784116800000, False)])
    rows = {r["trade_id"]: r for r in k2db.silver_rows(wh)}
    assert "price_beyond_18_decimals" in rows["1"]["validation_errors"]
    assert rows["2"]["validation_errors"] == ["price_not_positive"]
    assert rows["3"]["validation_errors"] == ["quantity_not_positive"]
    assert not any(r["is_valid"] for r in rows.values())
    assert k2db.count(wh, "gold_ohlcv_1m") == 0  # invalid rows never reach gold


def test_vendor_data_keeps_native_fields(sessions):
    wh, _ = sessions
    b = k2db.silver_rows(wh, "exchange = 'binance' AND trade_id = '5123456789'")[0]["vendor_data"]
    assert b == {"e": "trade", "E": "1784116800123", "s": "BTCUSDT", "t": "5123456789", "p": "97512.34000000",
                 "q": "0.00120000", "T": "1784116800122", "m": "true", "M": "true"}
    k = k2db.silver_rows(wh, "exchange = 'kraken' AND symbol = 'XDG/USD'")[0]["vendor_data"]
    assert {key: k[key] for key in ("pair", "raw_timestamp", "order_type", "channel_id")} == {
        "pair": "XDG/USD", "raw_timestamp": "1784116801.903311", "order_type": "l", "channel_id": "119930882"}
    assert (k["price"], k["volume"], k["side"], k["misc"]) == ("0.1823410", "5000.00000000", "s", "")


def test_bronze_keeps_the_native_format(sessions):
    wh, _ = sessions
    kraken = wh.rows("SELECT pair, timestamp, price, volume, toString(side), toString(order_type) "
                     "FROM k2.bronze_trades_kraken WHERE pair = 'XDG/XBT'")
    assert kraken == [["XDG/XBT", "1784116859.999999", "0.00000001", "123456789.123456789", "s", "m"]]
    binance = wh.rows("SELECT symbol, trade_id, price, quantity, trade_time_ms, is_buyer_maker "
                      "FROM k2.bronze_trades_binance WHERE symbol = 'BTCUSDT' ORDER BY trade_id LIMIT 1")
    assert binance == [["BTCUSDT", "5123456789", "97512.34000000", "0.00120000", "1784116800122", True]]


def test_unknown_binance_symbol_is_kept_but_invalid(clean_warehouse, load_frames):
    wh = clean_warehouse
    load_frames(wh, "binance", [mf.binance_trade("FOOBARBAZ", 1, "1.50", "2.0", 1784116800000, False),
                                mf.binance_trade("BTCUSDT", 1, "97000.0", "0.1", 1784116800000, False)])
    rows = k2db.silver_rows(wh, "symbol = 'FOOBARBAZ'")
    assert len(rows) == 1
    assert rows[0]["is_valid"] is False
    assert "unknown_instrument" in rows[0]["validation_errors"]
    assert rows[0]["vendor_data"]["s"] == "FOOBARBAZ" and Decimal(rows[0]["price"]) == Decimal("1.5")
    # not in gold, while the known symbol is
    assert wh.rows("SELECT DISTINCT canonical_symbol FROM k2.ohlcv_1m") == [["BTC/USDT"]]


def test_instrument_refresh_changes_the_split(clean_warehouse, load_frames):
    """Symbols split from the instruments table: a newly listed symbol is known after a refresh."""
    from k2.exchanges.base import Instrument
    from k2.warehouse.instruments import upsert_instruments

    wh = clean_warehouse
    assert upsert_instruments(wh, "binance", [Instrument("NEWCOINUSDC", "NEWCOIN", "USDC")], "exchange") == 1
    load_frames(wh, "binance", [mf.binance_trade("NEWCOINUSDC", 1, "2.5", "4", 1784116800000, True)])
    rows = k2db.silver_rows(wh)
    assert [(r["canonical_symbol"], r["currency"], r["is_valid"]) for r in rows] == [("NEWCOIN/USDC", "USDC", True)]


# -- gold ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("interval", list(ref.INTERVALS))
def test_gold_equals_the_reference(sessions, interval):
    wh, trades = sessions
    for cross in (False, True):
        assert k2db.read_candles(wh, interval, cross) == k2db.as_view_candles(
            ref.candles(trades, interval, cross), cross), (interval, cross)


def test_open_close_follow_time_then_numeric_id_not_arrival(sessions):
    wh, _ = sessions
    sol = k2db.read_candles(wh, "1m", False, "SOL/USDT")
    (candle,) = sol.values()
    # same millisecond, ids 1000, 998, 999 in that arrival order: 998 opens, 1000 closes
    assert (candle["open_price"], candle["close_price"]) == (Decimal("150.1"), Decimal("150.3"))
    btc = k2db.read_candles(wh, "1m", False, "BTC/USD")
    first = btc[("kraken", "BTC/USD", mf.T0)]
    assert first["open_price"] == Decimal("97500")  # the last frame of the file, but the earliest trade
    assert first["close_price"] == Decimal("97510")
    assert first["trade_count"] == 6  # 2 + 3 identical + the late one
    assert btc[("kraken", "BTC/USD", mf.T0 + 60)]["trade_count"] == 1  # 12:01:00.000000 starts a new minute


def test_cross_exchange_candles_combine_only_the_exact_pair(sessions):
    wh, _ = sessions
    usdt = k2db.read_candles(wh, "1h", True, "BTC/USDT")
    (c,) = usdt.values()
    assert c["exchanges"] == ["binance", "kraken"]
    assert c["trade_count"] == 4 + 1
    assert c["volume"] == Decimal("0.0012") + Decimal("0.04") + Decimal("0.0151") + Decimal("0.00000001") + Decimal("0.1")
    usd = k2db.read_candles(wh, "1h", True, "BTC/USD")
    assert [c["exchanges"] for c in usd.values()] == [["kraken"]]  # BTC/USDT is not BTC/USD


def test_vwap_is_truncated_to_18_decimals(sessions):
    wh, _ = sessions
    vwap = wh.scalar("SELECT toString(vwap) FROM k2.ohlcv_1m WHERE exchange = 'binance' "
                     "AND canonical_symbol = 'BTC/USDT' AND window_start = toDateTime('2026-07-15 12:00:00', 'UTC')")
    # (97512.34*0.0012 + 97512.35*0.04 + 97512.36*0.0151) / 0.0563 = 97512.352468916518650088809946...
    assert vwap == "97512.352468916518650088"


def test_binance_vendor_data_has_M_only_when_sent(clean_warehouse, load_frames):
    """Binance's `M` (best match) is optional on the wire; vendor_data keeps it as sent."""
    frames = [b'{"e":"trade","E":1784116800123,"s":"BTCUSDT","t":%d,"p":"97512.34","q":"0.5","T":1784116800122,'
              b'"m":true%s}' % (i, m) for i, m in ((1, b',"M":true'), (2, b',"M":false'), (3, b""))]
    load_frames(clean_warehouse, "binance", frames)
    got = {r[0]: r[1] for r in clean_warehouse.rows(
        "SELECT trade_id, vendor_data['M'] || '/' || toString(mapContains(vendor_data, 'M')) || '/' || "
        "toString(length(vendor_data)) FROM k2.silver_trades_v2")}
    assert got == {"1": "true/1/9", "2": "false/1/9", "3": "/0/8"}


def test_archive_bronze_stores_a_files_batch_id_once_per_part_not_once_per_row(clean_warehouse, tmp_path):
    """40-archive.sql (ADR 0039): every row of an imported file carries the same ~64-character
    batch_id; as LowCardinality a part holds it once, not 64 bytes per row through every insert
    and merge (640 MiB of a 10M-line import's 1.6 GiB of bronze)."""
    from k2.history.archives import import_archives

    path = tmp_path / "BTCUSDT-trades-2024-03-01.csv"
    lines = 20_000
    path.write_text("".join(f"{7_000_000 + i},62000.{i % 100:02d}000000,0.00100000,62.00000000,"
                            f"{1709251200000 + i},{'True' if i % 2 else 'False'},True\n" for i in range(lines)))
    report = import_archives(clean_warehouse, [path], "binance")
    assert report.files[0].loaded == lines
    (batch,), = clean_warehouse.rows("SELECT DISTINCT batch_id FROM k2.bronze_archive_binance_trades")
    (rows, size), = clean_warehouse.rows(
        "SELECT sum(rows), sum(data_uncompressed_bytes) FROM system.parts WHERE database = 'k2' "
        "AND table = 'bronze_archive_binance_trades' AND active")
    assert batch.startswith("archive:binance:BTCUSDT-trades-2024-03-01.csv:")
    # the other columns take ~110 bytes a row; a String batch_id would add len(batch) + 8 (~75)
    assert int(rows) == lines and int(size) / lines < 130, (rows, size)
