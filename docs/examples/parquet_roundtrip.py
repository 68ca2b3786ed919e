"""Export silver trades to Parquet with `k2 export`, then read them with pyarrow, polars and duckdb.

    K2_DATA_DIR=k2data python docs/examples/parquet_roundtrip.py OUT_DIR

Each reader must see exactly the warehouse's rows: the script checks the counts and the sum of
quantities (an exact Decimal) against the warehouse and exits 1 if they differ.
"""

import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds

import k2

out = Path(sys.argv[1] if len(sys.argv) > 1 else "k2export")
subprocess.run([sys.executable, "-m", "k2", "export", "--out", str(out), "--layer", "silver"], check=True)

truth = k2.connect().query("SELECT count() AS n, sum(quantity) AS q FROM silver_trades_v2").to_pylist()[0]
trades = ds.dataset(out / "silver" / "trades", partitioning="hive").to_table()
found = {"pyarrow": (trades.num_rows, sum(trades["quantity"].to_pylist()))}
try:
    import polars as pl

    frame = pl.read_parquet(str(out / "silver" / "trades" / "**" / "*.parquet"), hive_partitioning=True)
    found["polars"] = (frame.height, sum(frame["quantity"].to_list()))
except ImportError:
    pass
try:
    import duckdb

    found["duckdb"] = duckdb.sql(f"SELECT count(*), sum(quantity) FROM read_parquet('{out}/silver/trades/**/*.parquet')"
                                 ).fetchall()[0]
except ImportError:
    pass
ok = True
for reader, (n, q) in found.items():
    same = n == truth["n"] and q == truth["q"]
    ok &= same
    print(f"{reader:8} {n:>10,} rows, sum(quantity) {q}  {'= warehouse' if same else '!= warehouse ' + str(truth)}")
sys.exit(0 if ok else 1)
