"""Live runs against the exchange simulator: `k2 run` (embedded) and `k2 feed` (Kafka mode).

One run = a fresh simulator (Binance, steady rate, one trade per frame, pinned to CPU0) and a
fresh `k2 run --exchange binance` process (not pinned: it may use both cores, like a user's
process; the simulator keeps one core busy at high rates). The driver samples both processes
(RSS, CPU seconds) and K2's /metrics every 0.5 s. After a warm-up, a measurement window of
`seconds` s; then SIGTERM (k2 run writes everything it holds and exits), and the silver rows of
trades made in the window give the ingest latency (silver `ingestion_timestamp` - exchange trade
time `T`; Binance `T` is in ms, so figures carry up to 1 ms of truncation).

A rate is **sustained** when, over the window:
  * written rate (k2_trades_written_total) >= 97 % of the rate the simulator actually offered;
  * the writer buffer (k2_transport_buffered) is bounded: its least-squares trend is below 1 % of
    the offered rate per second and it never holds more than one second of trades;
  * ingest latency p99 < 1 s (the seed's SLO) and not growing: the p99 of the last third of the
    window is at most 1.5x that of the first third + 100 ms;
  * no reconnect, and the simulator never had to cut the client or skip ticks (it kept up).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from _common import (
    Sampler,
    Simulator,
    clean_env,
    free_port,
    k2_cmd,
    maps_contain,
    proc_status_kb,
    scrape,
    slope,
    stop_process,
    wait_for,
)

SIM_CPUS = "0"


def _latency_sql(t0_us: int, t1_us: int) -> str:
    lat = "(toUnixTimestamp64Micro(ingestion_timestamp) - toUnixTimestamp64Micro(timestamp)) / 1000"
    win = (f"timestamp >= fromUnixTimestamp64Micro({t0_us}, 'UTC') AND "
           f"timestamp < fromUnixTimestamp64Micro({t1_us}, 'UTC') AND source = 'ws'")
    third = (t1_us - t0_us) // 3
    return (
        f"SELECT count(), quantileExact(0.5)({lat}), quantileExact(0.99)({lat}), quantileExact(0.999)({lat}), "
        f"max({lat}), "
        f"quantileExactIf(0.99)({lat}, timestamp < fromUnixTimestamp64Micro({t0_us + third}, 'UTC')), "
        f"quantileExactIf(0.99)({lat}, timestamp >= fromUnixTimestamp64Micro({t1_us - third}, 'UTC')), "
        f"(SELECT count() FROM k2.bronze_trades_binance) "
        f"FROM k2.silver_trades_v2 WHERE {win}"
    )


def k2_query(data_dir: Path, sql: str, env: dict[str, str], timeout: float = 120) -> list[list[str]]:
    p = subprocess.run([*k2_cmd(), "query", sql, "--format", "csv", "--data-dir", str(data_dir)],
                       capture_output=True, text=True, timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"k2 query failed: {p.stderr[-800:]}")
    return [line.split(",") for line in p.stdout.splitlines()[1:]]


def _window(samples: list[dict], t0: float, t1: float) -> list[dict]:
    return [s for s in samples if t0 - 0.01 <= s["t"] <= t1 + 0.6]


def _metric(s: dict, name: str) -> float | None:
    m = s.get("metrics") or {}
    return m.get(name)


def live_run(rate: float, seconds: float, warmup: float, work: Path, profile: Path | None = None,
             extra_env: dict[str, str] | None = None, prepare: Callable[[Path], Any] | None = None,
             during: Callable[[Path, float], Any] | None = None) -> dict[str, Any]:
    """One `k2 run` against the simulator at `rate` trades/s. Returns the measurements.

    `prepare(data_dir)` fills the data dir before `k2 run` opens it; `during(data_dir, seconds)`
    runs in a thread over the measured window (reads while ingesting); its result is `during`."""
    data = Path(tempfile.mkdtemp(prefix="live-", dir=work))
    if prepare is not None:
        result_prepare = prepare(data / "wh")
    else:
        result_prepare = None
    during_out: dict[str, Any] = {}
    port = free_port()
    result: dict[str, Any] = {"offered_rate": rate, "seconds": seconds, "warmup": warmup}
    with Simulator("--exchange", "binance", "--rate", str(rate), "--no-bursts", "--binance-message-limit", "0",
                   cpus=SIM_CPUS) as sim:
        env = clean_env(**sim.env_for("binance"), K2_METRICS_ADDR=f"127.0.0.1:{port}", K2_LOG_DIR=str(data),
                        K2_LOG_LEVEL="WARNING", **(extra_env or {}))
        cmd = [*k2_cmd(), "run", "--exchange", "binance", "--data-dir", str(data / "wh"),
               "--duration", str(warmup + seconds + 60)]
        err = open(data / "k2run.err", "wb")
        out = open(data / "k2run.out", "wb")
        k2 = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        spy = None
        try:
            if not wait_for(lambda: (scrape(metrics_url, 0.5).get("k2_trades_received_total") or 0) > 0, 40):
                raise RuntimeError(f"k2 run received nothing: {(data / 'k2run.err').read_text()[-1500:]}")
            sampler = Sampler({"k2": k2.pid, "sim": sim.pid}, 0.5, metrics_url)
            sampler.start()
            time.sleep(warmup)
            t0, t0_us = time.monotonic(), time.time_ns() // 1000
            threads0 = thread_cpu(k2.pid)
            if profile is not None:
                from profiles import profile_pid

                spy = profile_pid(k2.pid, seconds, profile)
            reader = None
            if during is not None:
                reader = threading.Thread(target=lambda: during_out.update(result=during(data / "wh", seconds)))
                reader.start()
            time.sleep(seconds)
            if reader is not None:
                reader.join(seconds + 300)
            t1, t1_us = time.monotonic(), time.time_ns() // 1000
            threads = thread_share(threads0, thread_cpu(k2.pid), t1 - t0)
            time.sleep(0.6)
            hwm = proc_status_kb(k2.pid, "VmHWM")
            chdb_loaded = maps_contain(k2.pid, "chdb")
            samples = sampler.stop()
        finally:
            if spy is not None:
                try:
                    spy.wait(30)
                except subprocess.TimeoutExpired:
                    stop_process(spy, 10)
            stop_process(k2, 120)
            err.close()
            out.close()
    sim_stats = sim.close().get("binance", {})
    win = _window(samples, t0, t1)
    first, last = win[0], win[-1]
    span = last["t"] - first["t"]
    written = (_metric(last, "k2_trades_written_total") or 0) - (_metric(first, "k2_trades_written_total") or 0)
    received = (_metric(last, "k2_trades_received_total") or 0) - (_metric(first, "k2_trades_received_total") or 0)
    buf_t = [s["t"] - first["t"] for s in win if _metric(s, "k2_transport_buffered") is not None]
    buf_v = [_metric(s, "k2_transport_buffered") for s in win if _metric(s, "k2_transport_buffered") is not None]
    cpu = (last["k2_cpu_s"] or 0) - (first["k2_cpu_s"] or 0)
    sim_cpu = (last["sim_cpu_s"] or 0) - (first["sim_cpu_s"] or 0)
    offered = rate
    if sim_stats.get("active_s"):
        offered = sim_stats["trades_generated"] / sim_stats["active_s"]
    skipped = sim_stats.get("lag_s", 0.0)
    lat = k2_query(data / "wh", _latency_sql(t0_us, t1_us), clean_env())[0]
    n_lat = int(lat[0])
    p50, p99, p999, pmax, p99_first, p99_last = (float(x) if x not in ("", "nan") else None for x in lat[1:7])
    summary_text = (data / "k2run.out").read_text()
    reconnects = int(max((_metric(s, "k2_reconnects_total") or 0) for s in samples))
    result.update({
        "offered_actual": round(offered, 1),
        "received_per_s": round(received / span, 1),
        "written_per_s": round(written / span, 1),
        "buffer_max": max(buf_v) if buf_v else None,
        "buffer_slope_per_s": round(slope(buf_t, buf_v), 1) if buf_v else None,
        "buffer_growth": _growth(buf_v),
        "latency_ms": {"n": n_lat, "p50": p50, "p99": p99, "p999": p999, "max": pmax,
                       "p99_first_third": p99_first, "p99_last_third": p99_last},
        "rss_peak_mb": round(hwm / 1024, 1) if hwm else None,
        "rss_window_max_mb": round(max(s["k2_rss_mb"] or 0 for s in win), 1),
        "rss_anon_max_mb": round(max(s.get("k2_anon_mb") or 0 for s in samples), 1),
        "cpu_cores": round(cpu / span, 3),
        "sim_cpu_cores": round(sim_cpu / span, 3),
        "chdb_loaded": chdb_loaded,
        "threads": threads,
        "reconnects": reconnects,
        "sim": {k: sim_stats.get(k) for k in ("trades_generated", "frames_sent", "slow_drops", "drops",
                                               "active_s", "wall_s", "cpu_s", "lag_s", "running_s")},
        "sim_skipped_s": round(skipped, 2),
        "bronze_rows": int(lat[7]),
        "k2_summary": summary_text.strip()[-600:],
        "buffer_series": [round(v) for v in buf_v],
    })
    if prepare is not None:
        result["prepare"] = result_prepare
    if during is not None:
        result["during"] = during_out.get("result")
    result["cpu_pct_per_1k"] = round(100 * result["cpu_cores"] / (offered / 1000), 2) if offered else None
    result["verdict"] = verdict(result)
    result["sustained"] = not result["verdict"]
    return result


def _growth(values: list) -> float | None:
    """Mean of the last third minus mean of the first third."""
    if len(values) < 3:
        return None
    k = len(values) // 3
    return round(sum(values[-k:]) / k - sum(values[:k]) / k, 1)


def thread_cpu(pid: int) -> dict[str, tuple[str, float]]:
    """tid -> (thread name, CPU seconds). Python threads are named after the process (`k2`);
    the main thread is the one whose tid is the pid. chDB's own threads carry ClickHouse's names."""
    import os

    out = {}
    tick = os.sysconf("SC_CLK_TCK")
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_bytes().rsplit(b")", 1)[1].split()
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
        except OSError:
            continue
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def thread_share(before: dict, after: dict, seconds: float) -> dict[str, float]:
    """CPU cores per thread group over the window: `python main`, `python other` (writer, HTTP,
    executor), and chDB's pools by name (ThreadPool, MergeMutate, ...)."""
    if not after or seconds <= 0:
        return {}
    main_tid = min(after, key=int)
    groups: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        used = cpu - before.get(tid, (name, 0.0))[1]
        if tid == main_tid:
            key = "python main (event loop)"
        elif name == "k2" or name.startswith("python"):
            key = "python other threads (writer, ...)"
        else:
            key = f"chDB {name}"
        groups[key] = groups.get(key, 0.0) + used / seconds
    return {k: round(v, 3) for k, v in sorted(groups.items(), key=lambda kv: -kv[1]) if v >= 0.005}


def verdict(r: dict[str, Any]) -> list[str]:
    """The reasons a run did not sustain its rate (empty = sustained)."""
    why = []
    offered = r["offered_actual"] or r["offered_rate"]
    if r["received_per_s"] < 0.97 * offered:
        why.append(f"received {r['received_per_s']:,.0f}/s < 97% of offered {offered:,.0f}/s")
    if r["written_per_s"] < 0.95 * offered:
        why.append(f"written {r['written_per_s']:,.0f}/s < 95% of offered {offered:,.0f}/s")
    growth = r.get("buffer_growth")
    if growth is not None and growth > 0.25 * offered:
        why.append(f"writer buffer grows ({growth:,.0f} rows more in the last third than in the first)")
    if r["buffer_max"] is not None and r["buffer_max"] > offered:
        why.append(f"writer buffer reached {r['buffer_max']:,.0f} rows (> 1 s of trades)")
    lat = r["latency_ms"]
    if lat["p99"] is None or lat["n"] == 0:
        why.append("no trades of the window in silver")
    else:
        if lat["p99"] >= 1000:
            why.append(f"p99 latency {lat['p99']:.0f} ms >= 1 s")
        if lat["p99_first_third"] is not None and lat["p99_last_third"] is not None and \
                lat["p99_last_third"] > 1.5 * lat["p99_first_third"] + 100:
            why.append(f"latency grows (p99 {lat['p99_first_third']:.0f} -> {lat['p99_last_third']:.0f} ms)")
    if r["reconnects"]:
        why.append(f"{r['reconnects']} reconnects")
    if (r["sim"].get("slow_drops") or 0) > 0:
        why.append("the simulator cut K2 for reading too slowly")
    if r["sim_skipped_s"] > 0.03 * ((r["sim"].get("running_s") or 1)):
        why.append(f"the simulator fell behind its own clock ({r['sim_skipped_s']:.1f} s skipped): "
                   "offered rate not reached")
    return why


def feed_run(rate: float, seconds: float, warmup: float, work: Path, bootstrap: str) -> dict[str, Any]:
    """`k2 feed --kafka` (no warehouse) against the simulator at `rate`: RSS, CPU, published rate."""
    data = Path(tempfile.mkdtemp(prefix="feed-", dir=work))
    port = free_port()
    with Simulator("--exchange", "binance", "--rate", str(rate), "--no-bursts", "--binance-message-limit", "0",
                   cpus=SIM_CPUS) as sim:
        env = clean_env(**sim.env_for("binance"), K2_METRICS_ADDR=f"127.0.0.1:{port}", K2_LOG_DIR=str(data),
                        K2_LOG_LEVEL="WARNING")
        cmd = [*k2_cmd(), "feed", "--kafka", bootstrap, "--exchange", "binance", "--data-dir", str(data / "feed"),
               "--duration", str(warmup + seconds + 60)]
        err = open(data / "feed.err", "wb")
        k2 = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        try:
            if not wait_for(lambda: (scrape(metrics_url, 0.5).get("k2_trades_received_total") or 0) > 0, 60):
                raise RuntimeError(f"k2 feed received nothing: {(data / 'feed.err').read_text()[-1500:]}")
            sampler = Sampler({"k2": k2.pid}, 0.5, metrics_url)
            sampler.start()
            time.sleep(warmup)
            t0 = time.monotonic()
            time.sleep(seconds)
            t1 = time.monotonic()
            time.sleep(0.6)
            hwm = proc_status_kb(k2.pid, "VmHWM")
            chdb_loaded = maps_contain(k2.pid, "chdb")
            samples = sampler.stop()
        finally:
            stop_process(k2, 60)
            err.close()
    win = _window(samples, t0, t1)
    first, last = win[0], win[-1]
    span = last["t"] - first["t"]
    published = ((_metric(last, "k2_trades_published_total") or 0) - (_metric(first, "k2_trades_published_total") or 0))
    received = (_metric(last, "k2_trades_received_total") or 0) - (_metric(first, "k2_trades_received_total") or 0)
    cpu = (last["k2_cpu_s"] or 0) - (first["k2_cpu_s"] or 0)
    return {
        "offered_rate": rate, "seconds": seconds,
        "received_per_s": round(received / span, 1), "published_per_s": round(published / span, 1),
        "rss_peak_mb": round(hwm / 1024, 1) if hwm else None,
        "rss_window_max_mb": round(max(s["k2_rss_mb"] or 0 for s in win), 1),
        "rss_anon_max_mb": round(max(s.get("k2_anon_mb") or 0 for s in samples), 1),
        "cpu_cores": round(cpu / span, 3),
        "cpu_pct_per_1k": round(100 * (cpu / span) / (rate / 1000), 2),
        "chdb_loaded": chdb_loaded,
        "buffered_max": max((_metric(s, "k2_transport_buffered") or 0) for s in win),
    }


if __name__ == "__main__":  # quick manual check: python benchmarks/bench_live.py RATE SECONDS
    import sys

    w = Path(tempfile.mkdtemp(prefix="k2-live-"))
    print(json.dumps(live_run(float(sys.argv[1]), float(sys.argv[2]), 2.0, w), indent=1))
