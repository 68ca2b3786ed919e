"""CI smoke for the benchmark suite: `benchmarks/run.py --size tiny` must produce the Markdown and
JSON reports with every section and every floor. No timing is asserted: figures belong in the
report, and a tiny run on a shared machine measures nothing anyway."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
SECTIONS = ("parse", "load", "live", "feed", "kafka", "reads", "cryptofeed", "api")


@pytest.mark.slow
def test_benchmark_suite_tiny(tmp_path: Path) -> None:
    out, work = tmp_path / "out", tmp_path / "work"
    proc = subprocess.run([sys.executable, str(BENCH / "run.py"), "--size", "tiny", "--out", str(out),
                           "--work", str(work)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    # what each measurement set aside (not deleted between measurements) is gone at the end
    assert [d.name for d in work.iterdir() if d.is_dir()] == ["frames"], list(work.iterdir())
    md, js = out / "report.md", out / "report.json"
    assert md.exists() and js.exists(), proc.stderr[-3000:]

    report = json.loads(js.read_text())
    sys.path.insert(0, str(BENCH))
    try:
        from run import LOAD_BASELINE_COMMIT
    finally:
        sys.path.remove(str(BENCH))
    assert report["size"] == "tiny"
    assert report["machine"]["cores"] and report["machine"]["versions"].get("chdb")
    for name in SECTIONS:
        sec = report["sections"].get(name)
        assert sec is not None, f"section {name} missing"
        assert sec["status"] == "ok", f"section {name}: {sec.get('error')}\n{sec.get('traceback', '')}"
        assert "loadavg_before" in sec and "seconds" in sec
    s = report["sections"]
    assert {r["exchange"] for r in s["parse"]["rows"]} == {"binance", "kraken", "coinbase", "bybit", "okx",
                                                           "bitfinex", "gemini"}
    assert all(r["trades_per_s"]["median"] > 0 for r in s["parse"]["rows"])
    assert {r["exchange"] for r in s["load"]["rows"]} >= {"binance", "kraken"}
    assert s["live"]["steps"] and {r["rate"] for r in s["live"]["latency"]} == {1_000, 10_000}
    assert all(r["latency_ms"]["n"] > 0 for r in s["live"]["runs"])
    assert s["feed"]["rows"] and not any(r["chdb_loaded"] for r in s["feed"]["rows"])  # k2 feed never loads chDB
    assert s["kafka"]["transport"]["acked_per_s"]["median"] > 0 and s["kafka"]["e2e"]["written"] > 0
    assert s["reads"]["one_symbol_day"]["rows"] == 1440 and s["reads"]["all_symbols_day"]["rows"] == 8640
    assert {c["exchange"] for c in s["cryptofeed"]["cases"]} == {"binance", "kraken", "coinbase", "bybit", "okx",
                                                                  "bitfinex", "gemini"}
    for c in s["cryptofeed"]["cases"]:  # every venue: both clients got trades, CPU per trade on both sides
        assert c["k2_trades_per_s"]["median"] > 0 and c["cryptofeed_trades_per_s"]["median"] > 0, c["exchange"]
        assert c["cpu_ratio"] and c["trades_per_frame"] and c["trades_per_frame"] >= 1, c["exchange"]

    floors = {f["key"]: f for f in report["floors"]}
    assert s["load"]["big"]["maxrss_mb"] > 0 and s["load"]["big"]["trades"] > s["load"]["rows"][0]["trades"]
    # issue 22's rate clause: today's load against the 2026-12-04 code, where the clone has that commit
    baseline_here = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{LOAD_BASELINE_COMMIT}^{{commit}}"],
                                   capture_output=True).returncode == 0
    base = s["load"]["baseline"]
    assert base["status"] == ("ok" if baseline_here else "unavailable"), base
    if baseline_here:
        assert base["baseline_trades_per_s"]["median"] > 0 and base["today_trades_per_s"]["median"] > 0
        assert base["ratio"]["n"] == 1 and floors["load_vs_baseline"]["measured"] == base["ratio"]["median"]
        assert base["two_streams_trades_per_s"]["median"] > 0 and base["two_streams_ratio"]["n"] == 1
    assert set(floors) == {"load_binance", "load_rss", "load_rss_big", "load_vs_baseline", "live_sustained", "p99_10k", "feed_vs_cryptofeed",
                           "feed_cpu_vs_cryptofeed", "feed_rss_10k",
                           "run_rss", "candles_1sym_day", "api_ohlcv", "api_vs_chdb", "api_trades", "api_trades_p99",
                           "heavy_reads_p99", "export_rate", "export_rss", "import_binance", "import_vs_bare",
                           "import_rss", "reimport_share", "backfill_share", "backfill_429"}
    assert s["api"]["ohlcv"]["api"]["rows"] == 1440 and s["api"]["export"]["files"] == 1
    assert s["api"]["live"]["trades"]["during"]["runs"][0]["rows"] > 0
    assert s["api"]["live"]["heavy"]["during"]["reads"] > 0
    assert all(f["measured"] is not None for k, f in floors.items()
               if k != "live_sustained" and (k != "load_vs_baseline" or baseline_here))

    text = md.read_text()
    sys.path.insert(0, str(BENCH))
    try:
        from report import HEADINGS
    finally:
        sys.path.remove(str(BENCH))
    for heading in HEADINGS:
        assert heading in text, heading
    assert "MISS" in text or "pass" in text


@pytest.mark.slow
def test_market_health_benchmark_tiny(tmp_path: Path) -> None:
    """benchmarks/bench_markets.py (issue 21's floors): both sides of the overhead comparison ran
    and wrote trades, and the drift was seen in metrics and in the spreads read."""
    out = tmp_path / "markets.json"
    proc = subprocess.run([sys.executable, str(BENCH / "bench_markets.py"), "--size", "tiny", "--out", str(out),
                           "--work", str(tmp_path)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {r["markets"] for r in report["runs"]} == {True, False}
    assert all(r["cpu_cores"] > 0 and r["written_per_s"] > 0 for r in report["runs"])
    assert report["overhead_pct"] is not None and report["per_frame_price_store_ns"] >= 0
    assert report["dislocation_metrics_s_max"] is not None and report["dislocation_spreads_s_max"] is not None


def test_a_childs_peak_rss_is_its_own_not_the_benchmark_process_s():
    """wait4's ru_maxrss of a child is at least its parent's peak RSS (Linux carries the high-water
    mark across exec): a benchmark process that had generated a big frame file reported 1,330 MB
    for a `k2 load` whose own peak was ~450 MB. run_measured reports the child's own VmHWM."""
    probe = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); from _common import run_measured\n"
        "big = bytearray(600 * 2**20); big[::4096] = b'\\x01' * len(big[::4096])  # the parent: 600 MB\n"
        "child = 'x = bytearray(100 * 2**20); x[::4096] = b\"\\\\x01\" * len(x[::4096]); import time; time.sleep(0.3)'\n"
        "r = run_measured([sys.executable, '-c', child], 60)\n"
        "print(json.dumps({'own': r['maxrss_mb'], 'wait4': r['maxrss_wait4_mb'], 'rc': r['rc']}))\n")
    out = subprocess.run([sys.executable, "-c", probe, str(BENCH)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["rc"] == 0 and r["wait4"] > 600, r  # what wait4 says (the parent's peak)
    assert 100 < r["own"] < 300, r  # the child's 100 MB and its interpreter
