"""Diagnostic (not part of run.py): where one bronze insert's time goes, by batch size.

    python benchmarks/insert_breakdown.py [--batches 1000,10000,50000] [--n 8]

For each batch size, in a fresh embedded data dir, writes `n` batches of new Binance rows (parsed
from simulator frames) and times, per batch, wall and process CPU (all threads) of:
  write      BronzeWriter.write (prepare + key probe + insert + views), what k2 run / k2 load do
  probe      the key probe alone (wh.existing_keys)
  insert     the INSERT alone (token, all views), rows new
  then the same INSERT with parts of the view chain removed, to price each step:
  -gold1h    without the 1m -> 1h view
  -gold      without any gold view (bronze -> silver only)
  bare       without any view (bronze only)
  dict-join  full chain, silver's instruments LEFT JOIN (`instruments FINAL`, read per insert) replaced
             by a dictionary lookup (dictGet), the same result
Prints a JSON line per batch size. Uses K2's code as it is; changes only its own scratch schema.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def rows_from_frames(n: int, work: Path) -> list[tuple]:
    from frames import frame_file

    from k2.exchanges import get_adapter

    info = frame_file("binance", n, work / "frames")
    parse = get_adapter("binance").parse
    rows: list[tuple] = []
    now = time.time_ns() // 1000
    with open(info["path"], "rb") as f:
        for line in f:
            rows.extend(parse(line.rstrip(b"\n"), now).rows)
    return rows


def measure(fn, n: int) -> dict:
    walls, cpus = [], []
    for i in range(n):
        c0, t0 = cpu(), time.perf_counter()
        fn(i)
        walls.append((time.perf_counter() - t0) * 1000)
        cpus.append((cpu() - c0) * 1000)
    return {"wall_ms": round(statistics.median(walls), 1), "cpu_ms": round(statistics.median(cpus), 1),
            "wall_min": round(min(walls), 1), "wall_max": round(max(walls), 1)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="1000,10000,50000")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--work", default=str(Path(__file__).resolve().parent / "results" / "tmp"))
    args = ap.parse_args()
    work = Path(args.work)
    sizes = [int(x) for x in args.batches.split(",")]
    need = max(sizes) * args.n * 9
    all_rows = rows_from_frames(need, work)

    from k2.exchanges import get_adapter
    from k2.warehouse import open_warehouse
    from k2.warehouse.bronze import BronzeWriter

    adapter = get_adapter("binance")
    for size in sizes:
        data = Path(tempfile.mkdtemp(prefix="insert-", dir=work))
        wh = open_warehouse(data)
        try:
            w = BronzeWriter(wh, adapter)
            cursor = [0]

            def take() -> list[tuple]:
                out = all_rows[cursor[0]:cursor[0] + size]
                cursor[0] += size
                return out

            res: dict = {"batch": size}
            res["write"] = measure(lambda i: w.write(take(), source="ws"), args.n)

            def probe(i):
                b = w.prepare(take())
                import pyarrow as pa

                keys = pa.Table.from_arrays([b.arrays[j] for j in w._key_idx], names=list(adapter.key_columns))
                wh.existing_keys(adapter.bronze_table, adapter.key_columns, keys)

            res["probe"] = measure(probe, args.n)
            prepared = [w.prepare(take()) for _ in range(args.n)]
            res["prepare"] = measure(lambda i: w.prepare(all_rows[:size]), min(3, args.n))

            def insert_only(batches):
                def go(i):
                    import pyarrow as pa

                    b = batches[i]
                    table = pa.Table.from_arrays(b.arrays, names=list(adapter.columns))
                    wh.insert_rows(adapter.bronze_table, table, w._select, w._targets,
                                   {"source": "ws", "batch_id": b.token}, token=b.token)
                return go

            res["insert"] = measure(insert_only(prepared), args.n)
            mvs = {r[0]: r[1] for r in wh.rows(
                "SELECT name, create_table_query FROM system.tables WHERE database = 'k2' AND engine = 'MaterializedView'")}
            gold_1h = [n for n in mvs if "1h" in n]
            gold_1m = [n for n in mvs if "gold_ohlcv_1m" in n and n not in gold_1h]
            dropped: list[str] = []
            for label, drop in (("-gold1h", gold_1h), ("-gold", gold_1m), ("bare", [n for n in mvs if n.startswith("bronze_binance")])):
                for name in drop:
                    wh.execute(f"DROP VIEW IF EXISTS k2.{name}")
                    dropped.append(name)
                res[label] = measure(insert_only([w.prepare(take()) for _ in range(args.n)]), args.n)
            # restore the chain with the silver view reading instruments through a dictionary
            for name in dropped:
                ddl = mvs[name]
                if name.startswith("bronze_binance"):
                    wh.execute("CREATE DICTIONARY IF NOT EXISTS k2.instruments_dict (exchange String, native_symbol String, "
                               "base String, quote String) PRIMARY KEY exchange, native_symbol "
                               "SOURCE(CLICKHOUSE(QUERY 'SELECT exchange, native_symbol, base, quote FROM k2.instruments FINAL')) "
                               "LIFETIME(MIN 30 MAX 60) LAYOUT(COMPLEX_KEY_HASHED())")
                    ddl = _dict_join(ddl)
                wh.execute(ddl)
            res["dict-join"] = measure(insert_only([w.prepare(take()) for _ in range(args.n)]), args.n)
            check = wh.rows("SELECT countIf(canonical_symbol = 'BTC/USDT'), countIf(base = '') FROM k2.silver_trades_v2 "
                            "WHERE bronze_table = 'bronze_trades_binance'")
            res["check_btc_rows_unknown"] = check[0]
            res["views"] = sorted(mvs)
            print(json.dumps(res), flush=True)
        finally:
            wh.close()
            shutil.rmtree(data, ignore_errors=True)


def _dict_join(ddl: str) -> str:
    """Binance's silver view with `i.base`/`i.quote` from dictGet instead of the LEFT JOIN."""
    new = re.sub(r"LEFT JOIN\s*\(\s*SELECT native_symbol, base, quote FROM k2\.instruments FINAL WHERE exchange = 'binance'\s*\)"
                 r"\s*AS i ON i\.native_symbol = b\.s", "", ddl, flags=re.S)
    assert new != ddl, "the silver view's JOIN was not found"
    ddl = new
    ddl = ddl.replace("i.base", "dictGetOrDefault('k2.instruments_dict', 'base', ('binance', b.s), '')")
    ddl = ddl.replace("i.quote", "dictGetOrDefault('k2.instruments_dict', 'quote', ('binance', b.s), '')")
    return ddl


if __name__ == "__main__":
    main()
