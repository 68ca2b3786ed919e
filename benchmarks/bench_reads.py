"""Read latency of 1-minute candles on N silver rows (embedded chDB, in this process).

    python benchmarks/bench_reads.py DATA_DIR --rows 10000000 [--reps 15]

1. Fills `bronze_trades_binance` with N synthetic trades of 6 symbols spread evenly over one UTC
   day (2026-01-15) by `INSERT ... SELECT FROM numbers()` in chunks of 1M rows, so every
   materialized view fires as for live inserts: bronze -> silver (N rows) -> gold 1m -> 1h.
   Prices are a deterministic walk (cityHash64), quantities and sides hashed; decimals stay strings
   in bronze as Binance sends them.
2. Times, after one cold run, `reps` runs of:
   - one symbol, one day, per exchange: `k2.read.queries.ohlcv(wh, "BTC/USDT", "1m", exchange="binance",
     since, until, fmt="json")` -- what `k2 ohlcv BTC/USDT --exchange binance --since .. --until ..
     --format json` runs inside the process (symbol resolution included);
   - the same through the cross-exchange view (`--exchange all`, the CLI default);
   - all symbols, one day: every 1m candle of the day from `ohlcv_1m` (JSONEachRow);
   - reference: one symbol, one day computed from silver with GROUP BY (what gold saves).
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

DAY = "2026-01-15"
DAY_START_MS = 1_768_435_200_000
SYMBOLS = [("BTCUSDT", 97_500.0), ("ETHUSDT", 3_400.0), ("SOLUSDT", 180.0), ("XRPUSDT", 2.3),
           ("DOGEUSDT", 0.18), ("BNBUSDT", 650.0)]

GEN_SQL = """
INSERT INTO k2.bronze_trades_binance
    (event_type, event_time_ms, symbol, trade_id, price, quantity, trade_time_ms, is_buyer_maker,
     is_best_match, received_at, source, batch_id)
SELECT 'trade', T, sym, 1000000000 + intDiv(number, 6), toString(toDecimal64(px, 8)),
       toString(toDecimal64(qty, 8)), T, bitAnd(h, 1) = 1, true,
       fromUnixTimestamp64Milli(T, 'UTC'), 'bench', concat('bench-gen-', toString({start:UInt64}))
FROM (
    SELECT number, number % 6 AS k,
           arrayElement(%(syms)s, k + 1) AS sym,
           {day_ms:Int64} + intDiv(number * 86400000, {total:UInt64}) AS T,
           cityHash64(number) AS h,
           round(arrayElement(%(bases)s, k + 1)
                 * (1 + 0.02 * sin(number / {total:UInt64} * 40 + k))
                 * (1 + ((h % 2001) - 1000) / 2e6), if(k >= 3, 5, 2)) AS px,
           greatest(0.00001, round((h % 100000) / 1e5 * 100 / arrayElement(%(bases)s, k + 1), 5)) AS qty
    FROM numbers({start:UInt64}, {count:UInt64})
)
"""


def timed(fn, reps: int) -> dict:
    t0 = time.perf_counter()
    first_out = fn()
    cold = (time.perf_counter() - t0) * 1000
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    rows = first_out.count("\n") if isinstance(first_out, str) else None
    return {"cold_ms": round(cold, 2), "runs_ms": [round(r, 2) for r in runs],
            "median_ms": round(statistics.median(runs), 2), "min_ms": round(min(runs), 2),
            "max_ms": round(max(runs), 2), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data_dir")
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--chunk", type=int, default=1_000_000)
    args = ap.parse_args()

    from k2.read import queries as reads
    from k2.warehouse import open_warehouse, stored_query

    wh = open_warehouse(Path(args.data_dir))
    out: dict = {"rows": args.rows}
    try:
        sql = GEN_SQL.replace("%(syms)s", "[" + ",".join(f"'{s}'" for s, _ in SYMBOLS) + "]")
        sql = sql.replace("%(bases)s", "[" + ",".join(repr(float(b)) for _, b in SYMBOLS) + "]")
        t0 = time.perf_counter()
        for start in range(0, args.rows, args.chunk):
            wh.execute(sql, {"start": start, "count": min(args.chunk, args.rows - start), "total": args.rows,
                             "day_ms": DAY_START_MS})
        gen_s = time.perf_counter() - t0
        counts = wh.rows("SELECT (SELECT count() FROM k2.bronze_trades_binance), "
                         "(SELECT count() FROM k2.silver_trades_v2), "
                         "(SELECT countIf(is_valid) FROM k2.silver_trades_v2), "
                         "(SELECT count() FROM k2.gold_ohlcv_1m), "
                         "(SELECT count() FROM system.parts WHERE database = 'k2' AND table = 'gold_ohlcv_1m' AND active), "
                         "(SELECT count() FROM system.parts WHERE database = 'k2' AND table = 'silver_trades_v2' AND active)")[0]
        out["generate"] = {"seconds": round(gen_s, 2), "rows_per_s": round(args.rows / gen_s),
                           "bronze_rows": int(counts[0]), "silver_rows": int(counts[1]),
                           "silver_valid": int(counts[2]), "gold_1m_rows": int(counts[3]),
                           "gold_1m_parts": int(counts[4]), "silver_parts": int(counts[5])}
        since, until = f"{DAY}T00:00:00Z", "2026-01-16T00:00:00Z"

        def one_symbol():
            return reads.ohlcv(wh, "BTC/USDT", "1m", exchange="binance", since=since, until=until, fmt="json")

        def one_symbol_cross():
            return reads.ohlcv(wh, "BTC/USDT", "1m", exchange="all", since=since, until=until, fmt="json")

        params = {"view": "ohlcv_1m", "symbol": "BTC/USDT", "exchange": "binance",
                  "since": f"{DAY} 00:00:00.000000", "until": "2026-01-16 00:00:00.000000", "limit": 1_000_000,
                  "offset": 0}

        def one_symbol_query_only():  # the candle query alone, symbol already canonical
            return wh.query(stored_query("ohlcv"), "JSONEachRow", params)

        def resolve_only():  # the symbol check k2.read.queries does first (instruments + silver's symbols)
            return reads.resolve_symbol(wh, "BTC/USDT")

        def all_symbols():
            return wh.query("SELECT * FROM k2.ohlcv_1m WHERE window_start >= toDateTime({s:String}, 'UTC') "
                            "AND window_start < toDateTime({u:String}, 'UTC') ORDER BY canonical_symbol, window_start",
                            "JSONEachRow", {"s": f"{DAY} 00:00:00", "u": "2026-01-16 00:00:00"})

        def from_silver():
            return wh.query(
                "SELECT toStartOfMinute(timestamp) AS w, argMin(price, (timestamp, trade_id)) AS o, max(price) AS h, "
                "min(price) AS l, argMax(price, (timestamp, trade_id)) AS c, sum(quantity) AS v, count() AS n "
                "FROM k2.silver_trades_v2 WHERE exchange = 'binance' AND canonical_symbol = 'BTC/USDT' AND is_valid "
                "AND timestamp >= toDateTime64({s:String}, 6, 'UTC') AND timestamp < toDateTime64({u:String}, 6, 'UTC') "
                "GROUP BY w ORDER BY w", "JSONEachRow", {"s": f"{DAY} 00:00:00", "u": "2026-01-16 00:00:00"})

        out["one_symbol_day"] = timed(one_symbol, args.reps)
        out["one_symbol_day_cross"] = timed(one_symbol_cross, args.reps)
        out["one_symbol_day_query_only"] = timed(one_symbol_query_only, args.reps)
        out["resolve_symbol"] = timed(resolve_only, args.reps)
        out["all_symbols_day"] = timed(all_symbols, max(3, args.reps // 3))
        out["one_symbol_day_from_silver"] = timed(from_silver, max(3, args.reps // 3))
    finally:
        wh.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
