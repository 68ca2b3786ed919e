#!/usr/bin/env python3
"""Soak test: `k2 run` against the exchange simulator for a while, sampling how it holds up.

    .venv/bin/python scripts/soak.py --duration 1800 --rate 500 --out soak-out/
    nice -n 10 .venv/bin/python scripts/soak.py --duration 86400 --out soak-24h/   # the seed's 24-hour soak

Every --interval seconds it records the pipeline's resident memory and CPU (the `k2 run` process
and the simulator separately), trades written per second, the writer's buffered rows, reconnects
and the ingest latency (p50/p99 over the interval, from the k2_ingest_latency_seconds histogram on
/metrics). Output in --out: soak.csv (one row per sample), soak.png (four panels; needs matplotlib,
skipped with a note otherwise) and summary.json, also printed: trades, trades/s, RSS at start/end/max
and its growth after warm-up (MB/hour), mean CPU, latency percentiles (the interval p99s and, from
the warehouse at the end, `k2 run`'s own p50/p99/p99.9).

Exit status: 0 when the run completed, 1 when `k2 run` died, the feed stopped flowing, or the
process did not stop cleanly.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from k2.simulator.process import SimulatorProcess  # noqa: E402

FIELDS = ["t_s", "rss_mb", "cpu_pct", "sim_rss_mb", "sim_cpu_pct", "trades_per_s", "written_total",
          "buffered", "reconnects", "latency_p50_ms", "latency_p99_ms", "healthy"]
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


# -- process figures (psutil when installed, else /proc) ----------------------------------------------
class ProcStat:
    def __init__(self, pid: int):
        self.pid = pid
        self._last: tuple[float, float] | None = None
        try:
            import psutil

            self._ps = psutil.Process(pid)
        except Exception:
            self._ps = None

    def _read(self) -> tuple[float, float]:
        """(rss bytes, cpu seconds)"""
        if self._ps is not None:
            mem, cpu = self._ps.memory_info(), self._ps.cpu_times()
            return float(mem.rss), cpu.user + cpu.system
        with open(f"/proc/{self.pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        tck = os.sysconf("SC_CLK_TCK")
        return int(fields[21]) * os.sysconf("SC_PAGE_SIZE"), (int(fields[11]) + int(fields[12])) / tck

    def sample(self) -> tuple[float, float]:
        """(rss MB, CPU % of one core since the previous sample)"""
        try:
            rss, cpu = self._read()
        except Exception:
            return float("nan"), float("nan")
        now = time.monotonic()
        pct = float("nan")
        if self._last is not None and now > self._last[0]:
            pct = 100.0 * (cpu - self._last[1]) / (now - self._last[0])
        self._last = (now, cpu)
        return rss / 1e6, pct


# -- /metrics ---------------------------------------------------------------------------------------
def scrape(base: str) -> dict[str, list[tuple[dict, float]]]:
    with urllib.request.urlopen(base + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: dict[str, list[tuple[dict, float]]] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line) if line and not line.startswith("#") else None
        if m:
            out.setdefault(m.group(1), []).append((dict(_LABEL.findall(m.group(2) or "")),
                                                   float(m.group(3).replace("+Inf", "inf"))))
    return out


def _sum(m: dict, name: str) -> float:
    return sum(v for _, v in m.get(name, []))


def latency_buckets(m: dict) -> dict[float, float]:
    """le -> cumulative count, summed over exchanges."""
    out: dict[float, float] = {}
    for labels, v in m.get("k2_ingest_latency_seconds_bucket", []):
        le = float(labels["le"].replace("+Inf", "inf"))
        out[le] = out.get(le, 0.0) + v
    return out


def histogram_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return float("nan")
    rank = q * buckets[bounds[-1]]
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        c = buckets[b]
        if c >= rank:
            if math.isinf(b):
                return prev_bound
            if c == prev_count:
                return b
            return prev_bound + (b - prev_bound) * (rank - prev_count) / (c - prev_count)
        prev_bound, prev_count = b, c
    return prev_bound


# -- run ----------------------------------------------------------------------------------------------
def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="k2soak-")
    data_dir = Path(args.data_dir) if args.data_dir else Path(tmp.name) / "data"
    sim_args = ["--exchange", args.exchange, "--rate", str(args.rate), "--seed", str(args.seed)]
    sim_args += args.sim_args.split() if args.sim_args else []
    sim = SimulatorProcess(*sim_args)
    urls = sim.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    for name, u in urls.items():
        env[f"K2_{name.upper()}_WS_URL"] = u["ws"]
        env[f"K2_{name.upper()}_REST_URL"] = u["rest"]
    env.update(K2_METRICS_ADDR="127.0.0.1:0", K2_DATA_DIR=str(data_dir), K2_LOG_DIR=str(out_dir),
               K2_RECONNECT_BASE_S="0.5", K2_RECONNECT_CAP_S="5")
    k2_cmd = [sys.executable, "-m", "k2", "run", "--exchange", args.exchange]
    log_path = out_dir / "k2run.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(k2_cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=out_dir)
    rows: list[dict] = []
    failures: list[str] = []
    started = time.monotonic()
    try:
        run_file = data_dir / "k2.run.json"
        deadline = time.monotonic() + 120
        while not run_file.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"k2 run did not start (see {log_path})")
            time.sleep(0.2)
        time.sleep(0.2)
        base = "http://" + json.loads(run_file.read_text())["addr"]
        me, simstat = ProcStat(proc.pid), ProcStat(sim.pid or 0)
        me.sample()
        simstat.sample()
        prev_m, prev_t = scrape(base), time.monotonic()
        t0 = prev_t
        end = t0 + args.duration
        stalled_since = None
        while time.monotonic() < end:
            time.sleep(max(0.0, min(args.interval, end - time.monotonic())))
            if proc.poll() is not None:
                failures.append(f"k2 run exited with {proc.returncode} after {time.monotonic() - t0:.0f} s")
                break
            try:
                m = scrape(base)
            except OSError as exc:
                failures.append(f"scrape failed: {exc}")
                continue
            now = time.monotonic()
            rss, cpu = me.sample()
            srss, scpu = simstat.sample()
            written = _sum(m, "k2_trades_written_total")
            rate = (written - _sum(prev_m, "k2_trades_written_total")) / max(1e-6, now - prev_t)
            cur, old = latency_buckets(m), latency_buckets(prev_m)
            delta = {b: cur[b] - old.get(b, 0.0) for b in cur}
            rows.append({
                "t_s": round(now - t0, 1), "rss_mb": round(rss, 1), "cpu_pct": round(cpu, 1),
                "sim_rss_mb": round(srss, 1), "sim_cpu_pct": round(scpu, 1),
                "trades_per_s": round(rate, 1), "written_total": int(written),
                "buffered": int(_sum(m, "k2_transport_buffered")),
                "reconnects": int(_sum(m, "k2_reconnects_total")),
                "latency_p50_ms": round(histogram_quantile(0.5, delta) * 1000, 1),
                "latency_p99_ms": round(histogram_quantile(0.99, delta) * 1000, 1),
                "healthy": int(_sum(m, "k2_up")),
            })
            stalled_since = (stalled_since or now) if rate == 0 else None
            if stalled_since and now - stalled_since > max(60.0, 3 * args.interval):
                failures.append(f"no trades written for {now - stalled_since:.0f} s")
                break
            if not args.quiet:
                r = rows[-1]
                print(f"[{r['t_s']:>7.0f}s] rss {r['rss_mb']:.0f} MB cpu {r['cpu_pct']:.0f}% "
                      f"{r['trades_per_s']:,.0f} trades/s p50 {r['latency_p50_ms']} ms p99 {r['latency_p99_ms']} ms "
                      f"buffered {r['buffered']}", flush=True)
            prev_m, prev_t = m, now
            _write_csv(out_dir / "soak.csv", rows)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                failures.append("k2 run did not stop within 120 s of SIGTERM")
        log.close()
        sim.stop()
    if proc.returncode not in (0, None) and not any("exited" in f for f in failures):
        failures.append(f"k2 run exited with {proc.returncode} at shutdown")
    _write_csv(out_dir / "soak.csv", rows)
    summary = summarize(rows, args, log_path.read_text(errors="replace"), time.monotonic() - started)
    summary["failures"] = failures
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plotted = plot(rows, out_dir / "soak.png", summary)
    print(json.dumps(summary, indent=2))
    if not plotted:
        print("(no plot: install matplotlib, e.g. pip install 'k2[charts]')", file=sys.stderr)
    tmp.cleanup()
    return 1 if failures else 0


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)


def _finite(xs):
    return [x for x in xs if isinstance(x, (int, float)) and math.isfinite(x)]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(_finite(xs))
    if not xs:
        return float("nan")
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def summarize(rows: list[dict], args: argparse.Namespace, log_text: str, wall_s: float) -> dict:
    s: dict = {"duration_s": args.duration, "wall_s": round(wall_s, 1), "rate_per_exchange": args.rate,
               "exchanges": args.exchange, "samples": len(rows)}
    if not rows:
        return s
    warm = [r for r in rows if r["t_s"] >= min(args.warmup, rows[-1]["t_s"] / 2)] or rows
    rss = _finite([r["rss_mb"] for r in rows])
    s.update({
        "trades_written": rows[-1]["written_total"],
        "trades_per_s_mean": round(rows[-1]["written_total"] / max(1e-6, rows[-1]["t_s"]), 1),
        "trades_per_s_min": min(r["trades_per_s"] for r in warm),
        "trades_per_s_max": max(r["trades_per_s"] for r in warm),
        "rss_mb_start": rows[0]["rss_mb"], "rss_mb_end": rows[-1]["rss_mb"], "rss_mb_max": max(rss) if rss else None,
        "rss_growth_mb_per_hour_after_warmup": round(_slope([r["t_s"] for r in warm],
                                                            [r["rss_mb"] for r in warm]) * 3600, 1),
        "cpu_pct_mean": round(sum(_finite([r["cpu_pct"] for r in warm])) / max(1, len(_finite(
            [r["cpu_pct"] for r in warm]))), 1),
        "sim_cpu_pct_mean": round(sum(_finite([r["sim_cpu_pct"] for r in warm])) / max(1, len(_finite(
            [r["sim_cpu_pct"] for r in warm]))), 1),
        "interval_latency_p50_ms_median": _pct([r["latency_p50_ms"] for r in warm], 0.5),
        "interval_latency_p99_ms_median": _pct([r["latency_p99_ms"] for r in warm], 0.5),
        "interval_latency_p99_ms_max": max(_finite([r["latency_p99_ms"] for r in warm]) or [float("nan")]),
        "buffered_max": max(r["buffered"] for r in rows),
        "reconnects": rows[-1]["reconnects"],
        "unhealthy_samples": sum(1 for r in rows if not r["healthy"]),
    })
    m = re.search(r"ingest latency \(ingested_at - exchange time\): (.*)", log_text)
    if m:
        s["warehouse_latency"] = m.group(1).strip()
    return s


def _slope(xs: list[float], ys: list[float]) -> float:
    pts = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    if len(pts) < 2:
        return 0.0
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    den = sum((p[0] - mx) ** 2 for p in pts)
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / den if den else 0.0


def plot(rows: list[dict], path: Path, summary: dict) -> bool:
    if not rows:
        return False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    t = [r["t_s"] / 60 for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    axes[0].plot(t, [r["rss_mb"] for r in rows], label="k2 run")
    axes[0].plot(t, [r["sim_rss_mb"] for r in rows], label="simulator", alpha=0.6)
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot(t, [r["cpu_pct"] for r in rows], label="k2 run")
    axes[1].plot(t, [r["sim_cpu_pct"] for r in rows], label="simulator", alpha=0.6)
    axes[1].set_ylabel("CPU (% of a core)")
    axes[2].plot(t, [r["trades_per_s"] for r in rows], color="tab:green")
    axes[2].set_ylabel("trades written/s")
    axes[3].plot(t, [r["latency_p50_ms"] for r in rows], label="p50")
    axes[3].plot(t, [r["latency_p99_ms"] for r in rows], label="p99")
    axes[3].set_ylabel("ingest latency (ms)")
    axes[3].set_xlabel("minutes")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper right")
    fig.suptitle(f"k2 soak: {summary.get('exchanges')} at {summary.get('rate_per_exchange')} trades/s per exchange, "
                 f"{summary.get('trades_written', 0):,} trades")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=1800.0, help="seconds to run (default 1800)")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between samples (default 10)")
    p.add_argument("--warmup", type=float, default=120.0, help="seconds left out of the summary's rates and "
                                                                 "slopes (default 120)")
    p.add_argument("--rate", type=float, default=500.0, help="simulated trades/s per exchange (default 500)")
    p.add_argument("--exchange", default="binance,kraken")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--sim-args", default="", help="extra `k2 simulate` flags, e.g. '--drop-every 300'")
    p.add_argument("--data-dir", help="keep the warehouse here (default: a temporary directory)")
    p.add_argument("--out", default="soak-out", help="directory for soak.csv, soak.png, summary.json")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.interval <= 0 or args.rate <= 0:
        p.error("--duration, --interval and --rate must be positive")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
