"""Diagnostic (not part of run.py): the engine-side cost of each step of the bronze -> silver ->
gold chain for Binance, without Python in the loop, and of variants of the silver view.

    python benchmarks/chain_cost.py [--rows 1000000]

Each variant: a fresh embedded data dir, K2's schema, the Binance silver view replaced by the
variant, then `INSERT INTO bronze_trades_binance SELECT ... FROM numbers(rows)` (bench_reads.py's
generator, 1M-row blocks). Prints wall seconds, process CPU seconds and µs of CPU per row.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from bench_reads import DAY_START_MS, GEN_SQL, SYMBOLS  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def silver_ddl(wh) -> str:
    return wh.rows("SELECT create_table_query FROM system.tables WHERE database = 'k2' "
                   "AND name = 'bronze_binance_to_silver_v2_mv'")[0][0]


MASKED = """toUInt16((toDecimal128OrNull(b.p, 18) IS NULL)
        + 2 * ifNull(toDecimal128OrNull(b.p, 18) <= 0, 0)
        + 4 * ((position(b.p, '.') > 0) AND ((length(b.p) - position(b.p, '.')) > 18))
        + 8 * (toDecimal128OrNull(b.q, 18) IS NULL)
        + 16 * ifNull(toDecimal128OrNull(b.q, 18) <= 0, 0)
        + 32 * ((position(b.q, '.') > 0) AND ((length(b.q) - position(b.q, '.')) > 18))
        + 64 * ((toDecimal256OrZero(b.p, 18) * toDecimal256OrZero(b.q, 18)) >= toDecimal256('100000000000000', 18))
        + 128 * (i.base = '')
        + 256 * (b.T > (toUnixTimestamp64Milli(b.ingested) + 60000))
        + 512 * (b.T < 1230768000000)) AS validation_mask"""
MASKED_ERRORS = """if(validation_mask = 0, CAST([], 'Array(String)'), arrayFilter((name, bit) -> bitTest(validation_mask, bit),
        ['price_not_decimal', 'price_not_positive', 'price_beyond_18_decimals', 'quantity_not_decimal',
         'quantity_not_positive', 'quantity_beyond_18_decimals', 'notional_out_of_range', 'unknown_instrument',
         'timestamp_in_future', 'timestamp_before_2009'], range(10))) AS validation_errors"""

VARIANTS = {
    "as is": lambda d: d,
    "no vendor_data map": lambda d: re.sub(r"if\(b\.M IS NULL, map\(.*?\)\)\) AS vendor_data", "map() AS vendor_data", d, flags=re.S),
    "no validation array": lambda d: re.sub(r"arrayFilter\(x -> \(x != ''\), \[.*?\]\) AS validation_errors",
                                            "CAST([], 'Array(String)') AS validation_errors", d, flags=re.S),
    "notional from parsed decimals": lambda d: d.replace(
        "(toDecimal256OrZero(b.p, 18) * toDecimal256OrZero(b.q, 18)) >= toDecimal256('100000000000000', 18)",
        "(toDecimal256(price, 18) * quantity) >= toDecimal256('100000000000000', 18)"),
    "notional in Float64": lambda d: d.replace(
        "(toDecimal256OrZero(b.p, 18) * toDecimal256OrZero(b.q, 18)) >= toDecimal256('100000000000000', 18)",
        "(toFloat64(price) * toFloat64(quantity)) >= 1e14"),
    "validation as a bit mask": lambda d: re.sub(
        r"arrayFilter\(x -> \(x != ''\), \[.*?\]\) AS validation_errors", MASKED_ERRORS, d, flags=re.S
    ).replace(" AS SELECT", " AS WITH " + MASKED + " SELECT", 1),
    "dictGet instead of JOIN": "dict",
    "no silver view (bronze only)": None,
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--work", default=str(Path(__file__).resolve().parent / "results" / "tmp"))
    from k2.warehouse import open_warehouse

    sql = GEN_SQL.replace("%(syms)s", "[" + ",".join(f"'{s}'" for s, _ in SYMBOLS) + "]")
    sql = sql.replace("%(bases)s", "[" + ",".join(repr(float(b)) for _, b in SYMBOLS) + "]")
    ap.add_argument("--only", help="comma list of variant names")
    args = ap.parse_args()
    wanted = args.only.split(",") if args.only else list(VARIANTS)
    for name, change in VARIANTS.items():
        if name not in wanted:
            continue
        data = Path(tempfile.mkdtemp(prefix="chain-", dir=args.work))
        wh = open_warehouse(data)
        try:
            ddl = silver_ddl(wh)
            wh.execute("DROP VIEW k2.bronze_binance_to_silver_v2_mv")
            if change == "dict":
                from insert_breakdown import _dict_join

                wh.execute("CREATE DICTIONARY k2.instruments_dict (exchange String, native_symbol String, base String, "
                           "quote String) PRIMARY KEY exchange, native_symbol SOURCE(CLICKHOUSE(QUERY 'SELECT exchange, "
                           "native_symbol, base, quote FROM k2.instruments FINAL')) LIFETIME(MIN 30 MAX 60) "
                           "LAYOUT(COMPLEX_KEY_HASHED())")
                wh.execute(_dict_join(ddl))
            elif change is not None:
                new = change(ddl)
                assert new != ddl or name == "as is", name
                wh.execute(new)
            c0, t0 = cpu(), time.perf_counter()
            wh.execute(sql, {"start": 0, "count": args.rows, "total": args.rows, "day_ms": DAY_START_MS})
            wall, used = time.perf_counter() - t0, cpu() - c0
            n = wh.rows("SELECT (SELECT count() FROM k2.silver_trades_v2), (SELECT sum(trade_count_agg) FROM k2.gold_ohlcv_1m)")[0]
            print(json.dumps({"variant": name, "rows": args.rows, "wall_s": round(wall, 2), "cpu_s": round(used, 2),
                              "rows_per_s": round(args.rows / wall), "cpu_us_per_row": round(used / args.rows * 1e6, 2),
                              "silver_rows": int(n[0]), "gold_trades": int(n[1] or 0)}), flush=True)
        finally:
            wh.close()
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
