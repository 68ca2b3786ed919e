"""Diagnostic (not part of run.py): what each stage of `k2 import`'s chain costs, for a Binance
`trades` CSV, in one INSERT over the whole file (so no chunking, ledger or purges: the engine
alone).

    python benchmarks/import_stages.py [--rows 2000000] [--block 65536] [--stages lines,bronze,silver,full]

Each stage: a fresh embedded data dir, K2's schema, the views after that stage dropped, then the
import's own statement (queries/archive_binance_trades.sql, the import's settings) reading the
file. Stages: `lines` (read, split, check: archive_lines with no view), `bronze` (+ the archive
bronze table), `silver` (+ the silver view), `full` (+ gold). Prints a JSON line per stage with
wall and process CPU seconds (all threads), and peak RSS of the process so far (not released:
compare the differences, not with `k2 import`'s figures). ADR 0035 has the figures.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

DROP = {
    "lines": ["archive_lines_to_binance_trades_mv", "archive_lines_to_binance_agg_trades_mv",
              "archive_lines_to_kraken_timesales_mv", "archive_lines_to_rejects_mv"],
    "bronze": ["bronze_archive_binance_to_silver_v2_mv"],
    "silver": ["silver_to_gold_ohlcv_1m_mv"],
    "full": [],
}

CHILD = r"""
import json, os, resource, sys, time
from pathlib import Path
from k2.warehouse import open_warehouse, stored_query
csv, data, stage, block, drop = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5:]
wh = open_warehouse(data, for_writing=True)
for view in drop:
    wh.execute(f"DROP VIEW IF EXISTS k2.{view}")
settings = (f" SETTINGS max_threads = 1, input_format_parallel_parsing = 0, max_block_size = {block},"
            f" min_insert_block_size_rows = {block}, min_insert_block_size_bytes = 0,"
            f" min_insert_block_size_rows_for_materialized_views = {block},"
            " min_insert_block_size_bytes_for_materialized_views = 0,"
            " insert_deduplicate = 1, deduplicate_blocks_in_dependent_materialized_views = 1,"
            " insert_deduplication_token = {token:String}")
params = {"symbol": "BTCUSDT", "file": Path(csv).name, "unit": "ms", "batch": "stages", "first_line": 1,
          "path": csv, "skip": "[]", "token": "stages"}
c0, t0 = os.times(), time.perf_counter()
wh.execute(stored_query("archive_binance_trades") + settings, params)
c1 = os.times()
print(json.dumps({"stage": stage, "block": block, "wall_s": round(time.perf_counter() - t0, 2),
                  "cpu_s": round(c1.user - c0.user + c1.system - c0.system, 2),
                  "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def main() -> int:
    from bench_history import write_trades_csv

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--block", type=int, default=65536)
    ap.add_argument("--stages", default="lines,bronze,silver,full")
    args = ap.parse_args()
    stages = args.stages.split(",")
    if any(s not in DROP for s in stages):
        print(f"k2: error: --stages takes {','.join(DROP)}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="k2-import-stages-"))
    try:
        csv = work / "BTCUSDT-trades-2024-03-01.csv"
        write_trades_csv(csv, args.rows)
        for stage in stages:
            drop = DROP[stage]  # the first view after the stage: the ones after it then get nothing
            out = subprocess.run([sys.executable, "-c", CHILD, str(csv), str(work / stage), stage,
                                  str(args.block), *drop], capture_output=True, text=True, timeout=3600)
            if out.returncode != 0:
                print(f"k2: error: stage {stage}: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
                return 1
            print(out.stdout.strip().splitlines()[-1], flush=True)
            shutil.rmtree(work / stage, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
