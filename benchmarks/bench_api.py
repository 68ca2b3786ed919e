"""Reads through K2's read door: the Python API, the ClickHouse endpoint, export (issues 16 and 19).

    python benchmarks/bench_api.py fill DATA_DIR --rows N [--symbols 6]   # N synthetic trades, one UTC day
    python benchmarks/bench_api.py ohlcv DATA_DIR [--reps 20]             # API vs chDB directly, no pipeline
    python benchmarks/bench_api.py trades DATA_DIR --rows 1000000 [--reps 3]  # API trades -> pyarrow.Table
    python benchmarks/bench_api.py heavy DATA_DIR --seconds S [--workers 4]   # heavy reads in a loop

Each prints one JSON line. `fill` writes through bronze (every materialized view fires, as for live
inserts; see bench_reads.py). `trades` and `heavy` go through whatever holds the data dir: while
`k2 run` ingests into it, through its endpoint (Arrow IPC on the wire). benchmarks/run.py runs them
(section `api`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_reads import DAY, DAY_START_MS, GEN_SQL, SYMBOLS  # noqa: E402

SINCE, UNTIL = f"{DAY}T00:00:00Z", "2026-01-16T00:00:00Z"
#: reads that make ClickHouse work: scans and aggregations over all of silver
HEAVY = [
    "SELECT canonical_symbol, toStartOfMinute(timestamp) AS m, count(), sum(quantity), max(price) "
    "FROM silver_trades_v2 GROUP BY canonical_symbol, m ORDER BY m DESC LIMIT 100",
    "SELECT exchange, uniqExact(trade_id), avg(toFloat64(price)) FROM silver_trades_v2 GROUP BY exchange",
    "SELECT * FROM silver_trades_v2 ORDER BY timestamp DESC LIMIT 200000",
]


def fill(data_dir: Path, rows: int, symbols: int = 6, chunk: int = 1_000_000) -> dict:
    from k2.warehouse import open_warehouse

    syms = SYMBOLS[:symbols]
    sql = (GEN_SQL.replace("number % 6", f"number % {symbols}").replace("intDiv(number, 6)", f"intDiv(number, {symbols})")
           .replace("%(syms)s", "[" + ",".join(f"'{s}'" for s, _ in syms) + "]")
           .replace("%(bases)s", "[" + ",".join(repr(float(b)) for _, b in syms) + "]"))
    wh = open_warehouse(data_dir)
    try:
        t0 = time.perf_counter()
        for start in range(0, rows, chunk):
            wh.execute(sql, {"start": start, "count": min(chunk, rows - start), "total": rows, "day_ms": DAY_START_MS})
        n = int(wh.scalar("SELECT count() FROM k2.silver_trades_v2"))
        return {"rows": n, "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        wh.close()


def _timed(fn, reps: int) -> dict:
    t0 = time.perf_counter()
    out = fn()
    cold = (time.perf_counter() - t0) * 1000
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return {"cold_ms": round(cold, 2), "median_ms": round(statistics.median(runs), 2), "min_ms": round(min(runs), 2),
            "max_ms": round(max(runs), 2), "rows": getattr(out, "num_rows", None)}


def ohlcv(data_dir: Path, reps: int) -> dict:
    """`k2.connect(dir).ohlcv(BTC/USDT, 1m, binance, one day)` end to end in Python (symbol check,
    the read door's session, Arrow), against the same SQL with the same parameters on a plain
    chDB connection to the same engine (what a user opening chDB directly would run)."""
    t_import = time.perf_counter()
    import k2
    from k2.read.api import NO_LIMIT, _HeldEngine
    from k2.warehouse import stored_query

    db = k2.connect(data_dir, keep_open_s=3600)
    db.ohlcv("BTC/USDT", "1m", exchange="binance", since=SINCE, until=UNTIL)
    first_ms = round((time.perf_counter() - t_import) * 1000, 1)
    api = _timed(lambda: db.ohlcv("BTC/USDT", "1m", exchange="binance", since=SINCE, until=UNTIL), reps)
    api["first_call_ms"] = first_ms
    import chdb

    direct_conn = chdb.connect(_HeldEngine.current.reader.door.path)
    params = {"view": "ohlcv_1m", "symbol": "BTC/USDT", "exchange": "binance", "since": f"{DAY} 00:00:00.000000",
              "until": "2026-01-16 00:00:00.000000", "limit": str(NO_LIMIT)}
    sql = stored_query("api_ohlcv")
    direct = _timed(lambda: direct_conn.query(sql, "ArrowTable", params=params), reps)
    direct_conn.close()
    db.close()
    return {"api": api, "chdb_direct": direct,
            "ratio": round(api["median_ms"] / direct["median_ms"], 2) if direct["median_ms"] else None}


def trades(data_dir: Path, rows: int, reps: int) -> dict:
    import k2

    db = k2.connect(data_dir, keep_open_s=3600)
    runs = []
    for _ in range(reps):
        t0 = time.perf_counter()
        table = db.trades("BTC/USDT", exchange="binance", limit=rows)
        dt = time.perf_counter() - t0
        runs.append({"rows": table.num_rows, "seconds": round(dt, 3), "rows_per_s": round(table.num_rows / dt)})
        del table
    db.close()
    return {"runs": runs, "rows_per_s_median": statistics.median(r["rows_per_s"] for r in runs),
            "through": "k2 run endpoint" if (Path(data_dir) / "k2.run.json").exists() else "data dir"}


def heavy(data_dir: Path, seconds: float, workers: int) -> dict:
    import k2

    db = k2.connect(data_dir, keep_open_s=3600)
    deadline = time.monotonic() + seconds
    done: list[float] = []
    errors: dict[str, int] = {}
    lock = threading.Lock()

    def loop(i: int) -> None:
        n = i
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                db.query(HEAVY[n % len(HEAVY)])
                with lock:
                    done.append(time.perf_counter() - t0)
            except k2.K2Error as exc:
                with lock:
                    key = str(exc)[:80]
                    errors[key] = errors.get(key, 0) + 1
            n += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"reads": len(done), "workers": workers, "seconds": seconds,
            "read_ms_median": round(statistics.median(done) * 1000, 1) if done else None, "errors": errors}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=("fill", "ohlcv", "trades", "heavy"))
    ap.add_argument("data_dir", type=Path)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--symbols", type=int, default=6)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--workers", type=int, default=4)
    args = ap.parse_args()
    if args.what == "fill":
        out = fill(args.data_dir, args.rows, args.symbols)
    elif args.what == "ohlcv":
        out = ohlcv(args.data_dir, args.reps)
    elif args.what == "trades":
        out = trades(args.data_dir, args.rows, args.reps)
    else:
        out = heavy(args.data_dir, args.seconds, args.workers)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
