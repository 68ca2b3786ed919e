"""Issue 18's floor: reconciling one symbol for one day at 1m is bounded only by the venue's
documented rate limit. Measured on the simulator's Binance (a past day of `--trades-per-day`
trades, backfilled into a fresh data dir, then `k2 reconcile` over that day at 1m), plus, per
venue, the requests one day at 1m takes and the least time the venue's documented limit allows.

    .venv/bin/python benchmarks/bench_reconcile.py --trades-per-day 200000
    .venv/bin/python benchmarks/bench_reconcile.py --size tiny --json        # the CI smoke
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import clean_env, k2_cmd  # noqa: E402

from k2.exchanges import get_adapter  # noqa: E402
from k2.history.backfill import SAFETY  # noqa: E402
from k2.simulator.process import SimulatorProcess  # noqa: E402

VENUES = ("binance", "kraken", "coinbase", "okx", "bybit", "bitfinex", "gemini")
DAY_WINDOWS = 1440


def venue_floors() -> list[dict]:
    """Per venue: requests for one symbol-day at 1m and the least seconds its limit allows."""
    out = []
    for name in VENUES:
        c = get_adapter(name).candles
        windows = min(DAY_WINDOWS, c.reaches_back_windows or DAY_WINDOWS)
        requests = math.ceil(windows / c.page_windows)
        out.append({"exchange": name, "requests": requests, "windows_served": windows,
                    "documented_limit_per_s": c.requests_per_s, "limit_note": c.limit_note,
                    "least_seconds_at_limit": round((requests - 1) / (c.requests_per_s * SAFETY), 3)})
    return out


def run_reconcile(trades_per_day: int, work: Path) -> dict:
    import subprocess

    data = work / "data"
    with SimulatorProcess("--exchange", "binance", "--symbols", "BTCUSDT", "--history-days", "1",
                          "--history-trades-per-day", str(trades_per_day)) as sim:
        env = clean_env()
        env.update(K2_BINANCE_WS_URL=sim.urls["binance"]["ws"], K2_BINANCE_REST_URL=sim.urls["binance"]["rest"])
        day = datetime.fromtimestamp(time.time() - 86400, timezone.utc).strftime("%Y-%m-%d")
        t = time.perf_counter()
        res = subprocess.run([*k2_cmd(), "backfill", "--exchange", "binance", "--symbols", "BTCUSDT", "--since",
                                    f"{day}T00:00:00Z", "--until", f"{day}T23:59:59.999Z", "--data-dir", str(data)],
                             capture_output=True, text=True, env=env, timeout=3600)
        backfill_s = time.perf_counter() - t
        if res.returncode:
            raise RuntimeError(res.stderr[-2000:])
        t = time.perf_counter()
        res = subprocess.run([*k2_cmd(), "reconcile", "--exchange", "binance", "--symbols", "BTCUSDT", "--since",
                                    f"{day}T00:00:00Z", "--until", f"{day}T23:59:59.999Z", "--data-dir", str(data)],
                             capture_output=True, text=True, env=env, timeout=3600)
        wall = time.perf_counter() - t
    line = res.stdout.splitlines()[0] if res.stdout else ""
    m = re.search(r"(\d+) windows with trades: (\d+) match.*\((\d+) requests, (\d+) rate-limit answers, ([\d.]+) s\)",
                  line)
    if res.returncode or not m:
        raise RuntimeError(f"k2 reconcile: {res.stdout[-2000:]} {res.stderr[-2000:]}")
    return {"trades_per_day": trades_per_day, "backfill_seconds": round(backfill_s, 2),
            "windows": int(m.group(1)), "match": int(m.group(2)), "requests": int(m.group(3)),
            "rate_limit_answers": int(m.group(4)), "reconcile_seconds": float(m.group(5)),
            "command_seconds": round(wall, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trades-per-day", type=int, default=200_000)
    p.add_argument("--size", choices=("tiny", "full"), default="full")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    n = 3000 if a.size == "tiny" else a.trades_per_day
    with tempfile.TemporaryDirectory(prefix="k2bench-reconcile-") as tmp:
        result = {"binance_day_1m": run_reconcile(n, Path(tmp)), "venues": venue_floors()}
    if a.json:
        print(json.dumps(result))
        return 0
    r = result["binance_day_1m"]
    print(f"binance BTCUSDT, one day at 1m, {r['trades_per_day']:,} trades: {r['windows']} windows, {r['match']} match, "
          f"{r['requests']} requests, {r['rate_limit_answers']} rate-limit answers; reconcile {r['reconcile_seconds']} s "
          f"(command {r['command_seconds']} s; backfilling the day took {r['backfill_seconds']} s)")
    print(f"{'venue':10} {'requests':>8} {'windows':>8} {'limit/s':>8} {'least s':>8}  limit")
    for v in result["venues"]:
        print(f"{v['exchange']:10} {v['requests']:>8} {v['windows_served']:>8} {v['documented_limit_per_s']:>8g} "
              f"{v['least_seconds_at_limit']:>8g}  {v['limit_note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
