"""Issue 17's floors: `k2 import` of a Binance `trades` CSV (rate, ratio to a bare chDB
INSERT ... SELECT of the same file into the same tables, peak RSS, re-import time) and
`k2 backfill` against the simulator's rate-limited REST (trades/s vs what the limit allows, 429s).

    .venv/bin/python benchmarks/bench_history.py --rows 10000000 --backfill-trades 200000 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import time
from pathlib import Path

from _common import clean_env, discard, empty_discarded, k2_cmd, run_measured, summary

PY = sys.executable

BARE = r"""
import sys, time
from pathlib import Path
from k2.warehouse import open_warehouse
wh = open_warehouse(Path(sys.argv[1]))
t = time.perf_counter()
wh.execute("INSERT INTO k2.bronze_archive_binance_trades (symbol, id, price, qty, quote_qty, time, time_unit, "
           "is_buyer_maker, is_best_match, archive_file, line_no, batch_id) "
           "SELECT 'BTCUSDT', id, price, qty, quote_qty, time, 'ms', m, bm, 'bare', 0, 'bare' "
           "FROM file({p:String}, CSV, 'id UInt64, price String, qty String, quote_qty String, time Int64, m Bool, bm Bool') "
           "SETTINGS max_threads = 1", {"p": sys.argv[2]})
print(time.perf_counter() - t)
"""


def write_trades_csv(path: Path, rows: int, first_id: int = 3_000_000_000) -> None:
    """A Binance spot `trades` day-file shape: ids consecutive, ms times within 2024-03-01."""
    rng = random.Random(17)
    t0 = 1709251200000
    step = max(1, 86_400_000 // max(rows, 1))
    with path.open("w") as f:
        buf = []
        price = 62000.0
        for i in range(rows):
            price += rng.uniform(-1, 1)
            qty = rng.randint(1, 50000) / 100000
            buf.append(f"{first_id + i},{price:.8f},{qty:.8f},{price * qty:.8f},{t0 + i * step // 1},"
                       f"{'True' if i % 2 else 'False'},True\n")
            if len(buf) >= 100_000:
                f.write("".join(buf))
                buf = []
        f.write("".join(buf))


def _seconds(summary: str) -> float:
    m = re.search(r"; ([0-9.]+) s,", summary)
    return float(m.group(1)) if m else float("nan")


def run_import(rows: int, work: Path, rounds: int = 3) -> dict:
    """`rounds` pairs, each a `k2 import` into a fresh data dir and then the bare insert into
    another, so that each ratio compares two runs minutes apart: this host's speed drifts by
    ±10-20 % within an hour (ADR 0035), and one pair was a coin toss at the floor. The floors
    read the medians (rate, ratio) and the WORST peak RSS; every round's figures are kept. The
    first round's data dir is imported into a second time (the re-import floor)."""
    folder = Path(tempfile.mkdtemp(prefix="hist-import-", dir=work))
    csv = folder / "BTCUSDT-trades-2024-03-01.csv"
    write_trades_csv(csv, rows)
    env = clean_env(K2_LOG_LEVEL="WARNING")
    imports, bares, again = [], [], None
    for i in range(rounds):
        data = folder / f"data-{i}"
        cmd = [*k2_cmd(), "import", str(csv), "--exchange", "binance", "--data-dir", str(data)]
        first = run_measured(cmd, 7200, env)
        if first["rc"] != 0:
            raise RuntimeError(first["stderr"][-1500:])
        if again is None:
            again = {**run_measured(cmd, 7200, env), "first_wall_s": first["wall_s"]}
        discard(data)
        bare = run_measured([PY, "-c", BARE, str(folder / f"bare-{i}"), str(csv)], 7200, env)
        if bare["rc"] != 0:
            raise RuntimeError(bare["stderr"][-1500:])
        discard(folder / f"bare-{i}")
        imports.append({**first, "seconds": _seconds(first["stdout"])})
        bares.append({**bare, "seconds": float(bare["stdout"].strip().splitlines()[-1])})
    discard(folder)
    rss = summary([r["maxrss_mb"] for r in imports])
    return {"rows": rows, "rounds": rounds,
            "import_s": summary([r["seconds"] for r in imports], 2),
            "import_wall_s": summary([r["wall_s"] for r in imports], 2),
            "trades_per_s": summary([rows / r["seconds"] for r in imports], 0),
            "bare_insert_s": summary([b["seconds"] for b in bares], 2),
            "bare_trades_per_s": summary([rows / b["seconds"] for b in bares], 0),
            "ratio_to_bare": summary([b["seconds"] / r["seconds"] for r, b in zip(imports, bares)], 3),
            "import_maxrss_mb": {**rss, "worst": rss["max"]},
            "bare_maxrss_mb": summary([b["maxrss_mb"] for b in bares]),
            "reimport_wall_s": round(again["wall_s"], 2),
            "reimport_share": round(again["wall_s"] / again["first_wall_s"], 3),
            "reimport_says": again["stdout"].strip()[:200]}


def run_backfill(trades: int, work: Path) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from k2.simulator.process import SimulatorProcess

    folder = Path(tempfile.mkdtemp(prefix="hist-backfill-", dir=work))
    # Binance's documented limit (6000 weight/min, historicalTrades 25) in a 1 s window: 4 pages/s
    with SimulatorProcess("--exchange", "binance", "--symbols", "BTCUSDT", "--port", "0", "--history-days", "1",
                          "--history-trades-per-day", str(trades), "--rest-weight-limit", "100",
                          "--rest-window", "1") as sim:
        urls = sim.urls
        env = clean_env(K2_LOG_LEVEL="WARNING", K2_BINANCE_REST_URL=urls["binance"]["rest"])
        since = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(time.time() - 86400))
        r = run_measured([*k2_cmd(), "backfill", "--exchange", "binance", "--symbols", "BTCUSDT", "--since", since,
                          "--data-dir", str(folder / "data")], 7200, env)
    if r["rc"] != 0:
        raise RuntimeError(r["stderr"][-1500:])
    out = r["stdout"]
    m = re.search(r": (\d+) trades .* in (\d+) pages, (\d+) rate-limit answers; ([0-9.]+) s", out)
    n, pages, limited, secs = int(m.group(1)), int(m.group(2)), int(m.group(3)), float(m.group(4))
    allowed = 4 * 1000  # trades/s the limit allows: 4 pages of 1000
    discard(folder)
    return {"trades": n, "pages": pages, "seconds": secs, "trades_per_s": round(n / secs),
            "allowed_trades_per_s": allowed, "share_of_limit": round(n / secs / allowed, 3), "http_429": limited,
            "maxrss_mb": round(r["maxrss_mb"], 1)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--backfill-trades", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3, help="import/bare pairs (medians are the figures)")
    ap.add_argument("--work", default=tempfile.gettempdir())
    args = ap.parse_args()
    work = Path(args.work)
    try:
        print(json.dumps({"import": run_import(args.rows, work, args.rounds), "backfill": run_backfill(args.backfill_trades, work)},
                         indent=1))
    finally:
        empty_discarded(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
