#!/usr/bin/env python3
"""Issue 21's floors: what market health and live spreads cost `k2 run`, and how soon a
dislocation shows.

    .venv/bin/python benchmarks/bench_markets.py               # full: 10,000 trades/s over 7 venues
    .venv/bin/python benchmarks/bench_markets.py --size tiny   # smoke (figures meaningless)

1. Overhead: `k2 run` over all seven venues of the simulator at 10,000 trades/s in total, side by
   side with market health switched on and off (K2_HEALTH_MARKETS=1/0), alternating, the same
   simulator settings each time; /metrics is scraped every second in both (the evaluation runs
   per scrape, so a 1 s scrape is ten times Prometheus' usual 15 s). Figure: the CPU of the
   `k2 run` process (from /proc) over the measured window per 10,000 trades written (on a shared
   machine the simulator may not deliver the whole offered rate); overhead = on / off - 1.
   With markets off the per-frame store of the last price remains (one dict store per frame):
   its cost is measured apart (a micro-benchmark of that one line against a frame's budget).
2. Dislocation latency: `k2 simulate --drift okx:200@A-...`; from the moment the drift starts
   (the simulator's start + A), the time until /metrics shows k2_spread_bps > 100 for BTC/USDT
   with okx, and until `spreads()` (the read behind `k2 spreads`, through the running pipeline's
   read door) shows a 1 s window at or after the start with |spread| >= 100 bp.
Prints a JSON report (and writes it to --out when given).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from _common import Simulator, clean_env, cpu_seconds, free_port, k2_cmd, loadavg, stop_process, wait_for  # noqa: E402

EXCHANGES = ("binance", "kraken", "coinbase", "bybit", "okx", "bitfinex", "gemini")
SIZES = {"full": {"rate": 10_000, "warmup": 10, "seconds": 30, "reps": 3, "drift_reps": 3},
         "tiny": {"rate": 700, "warmup": 2, "seconds": 4, "reps": 1, "drift_reps": 1}}


def _text(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def _start_run(sim: Simulator, work: Path, markets: bool,
               exchanges: tuple[str, ...]) -> tuple[subprocess.Popen, str, Path]:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="markets-", dir=work))
    env = clean_env(**sim.env_for(*exchanges), K2_METRICS_ADDR=f"127.0.0.1:{port}", K2_LOG_DIR=str(data),
                    K2_LOG_LEVEL="WARNING", K2_HEALTH_MARKETS="1" if markets else "0",
                    K2_EXCHANGES=",".join(exchanges), K2_DATA_DIR=str(data / "wh"))
    proc = subprocess.Popen([*k2_cmd(), "run"], stdout=subprocess.DEVNULL, stderr=open(data / "err", "wb"), env=env)
    url = f"http://127.0.0.1:{port}"
    if not wait_for(lambda: "k2_trades_written_total" in _text(url + "/metrics"), 60):
        stop_process(proc, 30)
        raise RuntimeError(f"k2 run did not start: {(data / 'err').read_text()[-1500:]}")
    return proc, url, data / "wh"


def overhead_run(rate_per_venue: float, warmup: float, seconds: float, markets: bool, work: Path,
                 profile: Path | None = None) -> dict:
    with Simulator("--exchange", ",".join(EXCHANGES), "--rate", str(rate_per_venue), "--no-bursts",
                   "--binance-message-limit", "0") as sim:
        proc, url, _data = _start_run(sim, work, markets, EXCHANGES)
        try:
            time.sleep(warmup)
            written0 = _written(_text(url + "/metrics"))
            spy = None
            if profile is not None:
                from profiles import profile_pid

                spy = profile_pid(proc.pid, seconds, profile)
            cpu0, t0 = cpu_seconds(proc.pid), time.monotonic()
            while time.monotonic() - t0 < seconds:
                _text(url + "/metrics")
                time.sleep(1.0)
            cpu1, t1 = cpu_seconds(proc.pid), time.monotonic()
            written1 = _written(_text(url + "/metrics"))
            if spy is not None:
                try:
                    spy.wait(60)
                except subprocess.TimeoutExpired:
                    stop_process(spy, 10)
        finally:
            stop_process(proc, 120)
    cores, written = (cpu1 - cpu0) / (t1 - t0), (written1 - written0) / (t1 - t0)
    return {"markets": markets, "cpu_cores": round(cores, 4), "written_per_s": round(written, 1),
            "cpu_cores_per_10k": round(cores / written * 10_000, 4) if written else None, "loadavg": loadavg()}


def _written(text: str) -> float:
    return sum(float(v) for v in re.findall(r"^k2_trades_written_total\{[^}]*\} (\S+)$", text, re.M))


def profile_share(raw: Path) -> dict:
    """From a py-spy raw profile of `k2 run` with markets on: the share of its samples spent in
    the market health and spreads code (any frame of monitoring/markets.py, the metric families,
    the status poller and parsers) and on the per-frame price store's lines in feed/connection.py."""
    src = Path(__file__).resolve().parent.parent / "src" / "k2" / "feed" / "connection.py"
    store_lines = {f"k2/feed/connection.py:{i}" for i, line in enumerate(src.read_text().splitlines(), 1)
                   if "last_price_by_symbol[symbol] = row[pi]" in line or "prices[row[si]] = row[pi]" in line}
    total = markets = store = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        try:
            n = int(count)
        except ValueError:
            continue
        total += n
        if any(k in stack for k in ("k2/monitoring/markets.py", "market_families", "k2/feed/venue_status.py",
                                    "k2/exchanges/status.py")):
            markets += n
        leaf = stack.rsplit(";", 1)[-1]
        if any(s in leaf for s in store_lines):
            store += n
    return {"samples": total, "markets_pct": round(100 * markets / total, 3) if total else None,
            "price_store_pct": round(100 * store / total, 3) if total else None}


def per_frame_store_ns() -> float:
    """The one line markets add per trade frame, timed alone (ns)."""
    prices: dict[str, str] = {}
    row = ("trade", 1, "BTCUSDT", 123, "97000.10", "0.01", 1, True, True, 1)
    n = 2_000_000
    env = {"prices": prices, "row": row, "pi": 4}
    t = timeit.timeit("prices[row[2]] = row[pi]", globals=env, number=n)  # the line in feed/connection.py
    base = timeit.timeit("pass", globals=env, number=n)
    return round(max(0.0, t - base) / n * 1e9, 1)


def evaluation_us(venues: int = 7, symbols: int = 10, reps: int = 300) -> float:
    """One evaluation of market health and spreads plus its metric families (what a scrape adds),
    on stand-in stats of `venues` x `symbols` that all trade the same pairs (µs, median)."""
    from types import SimpleNamespace

    from k2.config import MarketHealthSettings
    from k2.monitoring.markets import MarketWatch
    from k2.monitoring.metrics import Exposition, market_families

    now = time.time()
    pairs = [f"C{i}/USDT" for i in range(symbols)]
    stats = [SimpleNamespace(
        exchange=f"venue{v}", connection=f"venue{v}-0", symbols=pairs, connected=True, connected_since=now - 600,
        last_message_at=now, last_error="", reconnects=0, frames=100_000, rejects=0,
        trades_by_symbol={p: 10_000 for p in pairs}, last_trade_by_symbol={p: now - 0.1 for p in pairs},
        last_price_by_symbol={p: f"{100 + v * 0.01:.2f}" for p in pairs}) for v in range(venues)]
    watch = MarketWatch(MarketHealthSettings(), lambda ex, sym: sym, now - 600)
    times = []
    for i in range(reps):
        t = time.perf_counter()
        report = watch.evaluate(stats, [s.exchange for s in stats], now + i)
        market_families(Exposition(), report)
        times.append(time.perf_counter() - t)
    return round(statistics.median(times) * 1e6, 1)


def drift_run(work: Path, start_after: float = 12.0) -> dict:
    from k2.read.remote import open_reader
    from k2.read.spreads import spreads

    exchanges = ("binance", "okx", "bybit")
    with Simulator("--exchange", ",".join(exchanges), "--rate", "300", "--no-bursts", "--symbols", "BTC/USDT",
                   "--drift", f"okx:200@{start_after:g}-{start_after + 60:g}") as sim:
        sim_start = time.monotonic()  # the URL line is printed once the clock runs: an upper bound
        drift_wall = time.time() + start_after
        proc, url, data_dir = _start_run(sim, work, True, exchanges)
        try:
            t_drift = sim_start + start_after
            if time.monotonic() > t_drift - 1:
                raise RuntimeError("k2 run started after the drift: raise start_after")
            metrics_at = spreads_at = None
            reader = open_reader(data_dir)
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(drift_wall - 1))
            try:
                while time.monotonic() < t_drift + 30 and (metrics_at is None or spreads_at is None):
                    now = time.monotonic()
                    if metrics_at is None:
                        text = _text(url + "/metrics")
                        vals = [float(v) for v in re.findall(
                            r'^k2_spread_bps\{symbol="BTC/USDT",venue_a="\w+",venue_b="okx"\} (\S+)$', text, re.M)]
                        if vals and min(vals) > 100:
                            metrics_at = now - t_drift
                    if spreads_at is None and now >= t_drift - 0.5:
                        out = spreads(reader, "BTC/USDT", "binance,okx", "1s", since, None, 100, 1, "last", "json")
                        rows = [json.loads(line) for line in out.splitlines()]
                        if any(r["window"] >= time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(drift_wall)))
                               for r in rows):
                            spreads_at = now - t_drift
                    time.sleep(0.05)
            finally:
                reader.close()
        finally:
            stop_process(proc, 120)
    return {"metrics_s": None if metrics_at is None else round(metrics_at, 3),
            "spreads_s": None if spreads_at is None else round(spreads_at, 3)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=tuple(SIZES), default="full")
    ap.add_argument("--out", help="write the JSON report here too")
    ap.add_argument("--work", default=tempfile.gettempdir())
    args = ap.parse_args()
    p = SIZES[args.size]
    work = Path(tempfile.mkdtemp(prefix="bench-markets-", dir=args.work))
    rate = p["rate"] / len(EXCHANGES)
    runs = []
    for rep in range(p["reps"]):
        for markets in ((True, False) if rep % 2 == 0 else (False, True)):  # ABBA: no order effect
            r = overhead_run(rate, p["warmup"], p["seconds"], markets, work)
            runs.append(r)
            print(f"[bench] markets {'on ' if markets else 'off'}: {r['cpu_cores']} cores, "
                  f"{r['written_per_s']:,.0f} written/s ({r['cpu_cores_per_10k']} cores per 10k/s), "
                  f"load {r['loadavg']}", file=sys.stderr, flush=True)
    # CPU per trade written: on a shared machine the simulator does not always deliver the offered
    # rate, and a run that received fewer trades would look cheaper
    on = statistics.median(r["cpu_cores_per_10k"] or 0 for r in runs if r["markets"])
    off = statistics.median(r["cpu_cores_per_10k"] or 0 for r in runs if not r["markets"])
    store_ns = per_frame_store_ns()
    eval_us = evaluation_us()
    profiled = None
    if shutil.which(str(Path(sys.executable).with_name("py-spy"))):
        raw = work / "markets-profile.txt"
        overhead_run(rate, p["warmup"], p["seconds"], True, work, profile=raw)
        profiled = profile_share(raw) if raw.exists() else None
    drifts = [drift_run(work) for _ in range(p["drift_reps"])]
    report = {
        "size": args.size, "offered_rate": p["rate"], "venues": len(EXCHANGES), "runs": runs,
        "cpu_cores_per_10k_on_median": on, "cpu_cores_per_10k_off_median": off,
        "overhead_pct": round((on / off - 1) * 100, 2) if off else None,
        "per_frame_price_store_ns": store_ns,
        "evaluation_us_7x10": eval_us,
        "profile_markets_on": profiled,
        # one evaluation per second (a 1 s scrape; /healthz and k2 status add theirs) plus the
        # per-frame store at 10,000 frames/s, against k2 run's own CPU at 10,000 trades/s (off)
        "computations_pct_of_cpu": (round((eval_us * 1e-6 + store_ns * 1e-9 * 10_000) / off * 100, 3)
                                    if off else None),
        "per_frame_store_pct_of_cpu": round(store_ns * 1e-9 * 10_000 / off * 100, 4) if off else None,
        "dislocation": drifts,
        "dislocation_metrics_s_max": max((d["metrics_s"] for d in drifts if d["metrics_s"] is not None), default=None),
        "dislocation_spreads_s_max": max((d["spreads_s"] for d in drifts if d["spreads_s"] is not None), default=None),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
