"""The two shortcuts the views take for speed give exactly the results of the long forms (ADR 0037).

1. Binance's silver views (live and archive) skip building the list of failed checks when a
   cheaper test says every check passes. Over random prices, quantities and times around every
   boundary of the list, the shortcut must never clear a row that the list flags.
2. Gold orders trades for open and close by one String that must sort exactly as the tuple
   (timestamp, length(trade_id), trade_id). Rows written to silver with ids of mixed lengths and
   alphabets and timestamps that differ in any of their bytes must open and close where the tuple
   order says.
"""

from __future__ import annotations

import decimal
import random
import re
from decimal import Decimal
from importlib import resources

import pytest


SQL = resources.files("k2.warehouse") / "sql"
INGESTED_MS = 1_784_116_800_000  # 2026-07-15 12:00:00 UTC


def _shortcut(view_file: str) -> tuple[str, str]:
    """(the shortcut's condition, the full list) as the view file writes them."""
    text = (SQL / view_file).read_text()
    m = re.search(r"\(ADR 0037\)\.\n    if\((.*?),\n\s+\[\],\n\s+(arrayFilter\(x -> x != '', \[.*?\n\s+\]\))\)\n\s+AS validation_errors",
                  text, re.S)
    assert m, f"{view_file}: no shortcut before the list of checks"
    return m.group(1), m.group(2)


def _decimal(rng: random.Random) -> str:
    """A decimal string around the boundaries the checks draw: magnitudes from 1e-20 to 1e20,
    up to 20 decimals, zero, and a few values that are not decimals at all."""
    roll = rng.random()
    if roll < 0.03:
        return rng.choice(["0", "0.000", "", "abc", "-1.5", "1e5", "1.2.3"])
    digits = str(rng.randrange(1, 10 ** rng.randint(1, 21)))
    scale = rng.randint(0, 20)
    if scale >= len(digits):
        digits = "0" * (scale - len(digits) + 1) + digits
    text = digits if scale == 0 else digits[:-scale] + "." + digits[-scale:]
    return text + "0" * rng.choice([0, 0, 1, 3])


def _rows(rng: random.Random, n: int, time_unit: int) -> list[tuple[str, str, int, str]]:
    rows = []
    for _ in range(n):
        p, q = _decimal(rng), _decimal(rng)
        if rng.random() < 0.3 and _is_positive(p):  # a notional right around 1e14: 9e13 .. 1.1e14
            with decimal.localcontext(decimal.Context(prec=90)):
                target = Decimal(rng.randrange(90_000_000_000_000, 110_000_000_000_000))
                q = format((target / Decimal(p)).quantize(Decimal("1e-18"), rounding=decimal.ROUND_DOWN), "f")
        ms = rng.choice([INGESTED_MS + 60_000, INGESTED_MS + 60_001, 1_230_768_000_000, 1_230_767_999_999,
                         INGESTED_MS, rng.randint(1_200_000_000_000, INGESTED_MS + 120_000)])
        t = ms * time_unit + (rng.choice([0, 1, -1]) if time_unit == 1000 else 0)
        rows.append((p, q, t, rng.choice(["BTC", "BTC", "BTC", ""])))
    return rows


def _is_positive(p: str) -> bool:
    try:
        return Decimal(p) > 0
    except Exception:
        return False


@pytest.mark.parametrize("view_file, time_column, unit", [
    ("21-silver-binance.sql", "T", 1),
    ("41-silver-archive-binance.sql", "t_us", 1000),
])
def test_the_shortcut_never_clears_a_row_the_list_flags(clean_warehouse, view_file, time_column, unit):
    wh = clean_warehouse
    condition, full = _shortcut(view_file)
    rng = random.Random(f"{view_file}-shortcut")
    rows = _rows(rng, 3000, unit)
    values = ", ".join(f"('{p}', '{q}', {t}, '{base}')" for p, q, t, base in rows)
    ingested = f"fromUnixTimestamp64Milli(toInt64({INGESTED_MS}), 'UTC')::DateTime64(6, 'UTC')"
    # the views read the instrument's base as i.base (a join); here it is a column of the rows
    condition, full = condition.replace("i.base", "b.base"), full.replace("i.base", "b.base")
    counts = wh.rows(
        f"SELECT countIf(ok AND NOT empty(errors)), countIf(ok), countIf(NOT ok AND empty(errors)), "
        f"countIf(has(errors, 'notional_out_of_range')) "
        f"FROM (SELECT {condition} AS ok, {full} AS errors "
        f"  FROM (SELECT p, q, t AS {time_column}, base, {ingested} AS ingested "
        f"        FROM values('p String, q String, t Int64, base String', {values})) AS b)")
    wrongly_cleared, cleared, slow_but_valid, notional = (int(x) for x in counts[0])
    assert wrongly_cleared == 0
    # the sample reaches every side: rows cleared fast, valid rows that took the long way (the
    # notional between 9e13 and 1e14), and rows the notional check flags
    assert cleared > 100 and slow_but_valid > 0 and notional > 0, counts


def _silver_row(exchange: str, trade_id: str, ts_us: int, price: str) -> str:
    return (f"('{exchange}', 'X', 'BTC/USDT', 'BTC', 'USDT', 'USDT', '{trade_id}', {price}, 1, 'BUY', "
            f"fromUnixTimestamp64Micro(toInt64({ts_us}), 'UTC'), now64(6), now64(6), 'ws', 'test', map(), true, [])")


def _opens_and_closes_where_the_tuple_says(wh, picks: list[tuple[str, int]], label) -> None:
    """Write `picks` (trade id, µs) to silver in two inserts, each with its own price, and check
    the 1m and 1h candles open and close at the first and last pick in tuple order."""
    for table in ("silver_trades_v2", "gold_ohlcv_1m", "gold_ohlcv_1h"):
        wh.execute(f"TRUNCATE TABLE k2.{table}")
    priced = [(t, ts, f"{i + 1}.5") for i, (t, ts) in enumerate(dict.fromkeys(picks))]
    for chunk in (priced[:len(priced) // 2], priced[len(priced) // 2:]):  # two inserts: states merge too
        wh.execute("INSERT INTO k2.silver_trades_v2 (exchange, symbol, canonical_symbol, base, quote, currency, "
                   "trade_id, price, quantity, side, timestamp, received_at, ingestion_timestamp, source, "
                   "bronze_table, vendor_data, is_valid, validation_errors) VALUES "
                   + ", ".join(_silver_row("binance", t, ts, p) for t, ts, p in chunk))
    first = min(priced, key=lambda r: (r[1], len(r[0].encode()), r[0].encode()))
    last = max(priced, key=lambda r: (r[1], len(r[0].encode()), r[0].encode()))
    for view in ("ohlcv_1m", "ohlcv_1h"):
        got = wh.rows(f"SELECT toString(open_price), toString(close_price) FROM k2.{view}")
        assert [tuple(Decimal(x) for x in r) for r in got] == [(Decimal(first[2]), Decimal(last[2]))], (label, view)


def test_gold_opens_and_closes_in_tuple_order_whatever_the_ids_and_bytes(clean_warehouse):
    wh = clean_warehouse
    minute = 1_784_116_800_000_000
    # lengths that differ in their second byte: 45 = 0x2d opens before 300 = 0x12c
    _opens_and_closes_where_the_tuple_says(wh, [("z" * 300, minute), ("y" * 45, minute), ("5", minute + 1)], "lengths")
    rng = random.Random("order-key")
    # timestamps inside one minute that differ in their lowest, second or third byte
    boundaries = [minute + d for d in (0, 1, 255, 256, 257, 65_535, 65_536, 16_777_215, 16_777_216, 59_999_999)]
    ids = ["9", "10", "99", "100", "1000", "a", "B", "KRAKEN-1-ff", "KRAKEN-1-00", "z" * 300, "é", "e", "~"]
    for round_ in range(20):
        stamps = rng.sample(boundaries, 3) + [minute + rng.randrange(60_000_000) for _ in range(2)]
        picks = [(rng.choice(ids) + rng.choice(["", str(rng.randrange(1000))]), rng.choice(stamps)) for _ in range(40)]
        _opens_and_closes_where_the_tuple_says(wh, picks, round_)
