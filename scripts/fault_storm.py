#!/usr/bin/env python3
"""Fault storm: K2 against the simulator under every fault at once, then an exact accounting.

    .venv/bin/python scripts/fault_storm.py --duration 180 --rate 500        # the full storm (~100 drops)
    .venv/bin/python scripts/fault_storm.py --duration 30 --json             # the CI-sized one

Faults (all on loopback, bounded in time): forced disconnects every --drop-every s, 1 % extra
malformed frames, heartbeat stalls (whole-connection silences longer than the watchdog), exchange
error events, and a slow consumer (`k2 run` frozen with SIGSTOP for a few seconds, repeatedly).

Ground truth is the simulator's record. Afterwards:
  * silver holds every generated trade up to the last one K2 saw per symbol (live or backfilled),
    nothing else, and nothing twice;
  * gold equals a recomputation from silver (`k2 validate`);
  * the rejects table holds exactly the malformed frames the simulator sent;
  * memory stayed flat (peak RSS of the last third vs the first third of the run).
Exit status 0 when every check holds; --json prints the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from k2.exchanges import get_adapter
from k2.errors import FrameError
from k2.simulator.process import SimulatorProcess

IDENTITY = ("SELECT exchange, toString(symbol), trade_id, toString(price), toString(quantity), toString(side), "
            "toUnixTimestamp64Micro(timestamp) FROM silver_trades_v2")


def k2(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k2", *args], capture_output=True, text=True, env=env, timeout=600)


def rows(data: Path, sql: str) -> list[tuple]:
    res = k2("query", sql, "--format", "json", "--data-dir", str(data))
    if res.returncode:
        raise RuntimeError(res.stderr)
    return [tuple(json.loads(line).values()) for line in res.stdout.splitlines() if line.strip()]


def malformed_sent(record: Path, exchanges: list[str]) -> int:
    n = 0
    for ex in exchanges:
        adapter = get_adapter(ex)
        for line in (record / f"{ex}.sent.jsonl").read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                adapter.parse(line, 0)
            except FrameError:
                n += 1
    return n


def storm(duration: float, rate: float, drop_every: float, freeze_every: float, freeze_for: float,
          workdir: Path, exchanges: list[str], settle: float = 15.0) -> dict:
    record, data, ref = workdir / "record", workdir / "live", workdir / "reference"
    sim = SimulatorProcess("--exchange", ",".join(exchanges), "--rate", str(rate), "--seed", "11",
                           "--drop-every", str(drop_every), "--malformed-ratio", "0.01",
                           "--silence-every", "17", "--silence-for", "4", "--error-every", "5",
                           "--binance-message-limit", "0", "--faults-for", str(duration), "--record", str(record))
    urls = sim.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    for name, u in urls.items():
        env[f"K2_{name.upper()}_WS_URL"], env[f"K2_{name.upper()}_REST_URL"] = u["ws"], u["rest"]
    env.update(K2_METRICS_ADDR="127.0.0.1:0", K2_RECONNECT_BASE_S="0.2", K2_RECONNECT_CAP_S="2",
               K2_CONFIG=str(workdir / "k2.toml"), K2_LOG_LEVEL="WARNING")
    # heartbeat stalls of 4 s must trip the watchdog: make it 3 s for every venue
    (workdir / "k2.toml").write_text("".join(f"[exchanges.{e}]\nstale_after_s = 3\n" for e in exchanges))
    run = subprocess.Popen([sys.executable, "-m", "k2", "run", "--data-dir", str(data), "--exchange", ",".join(exchanges)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    proc = psutil.Process(run.pid)
    rss: list[tuple[float, int]] = []
    freezes = 0
    started = time.monotonic()
    next_freeze = started + freeze_every
    try:
        while time.monotonic() - started < duration:
            time.sleep(0.5)
            rss.append((time.monotonic() - started, proc.memory_info().rss))
            if freeze_every and time.monotonic() >= next_freeze:  # the slow consumer
                run.send_signal(signal.SIGSTOP)
                time.sleep(freeze_for)
                run.send_signal(signal.SIGCONT)
                freezes += 1
                next_freeze = time.monotonic() + freeze_every
        # faults have stopped (--faults-for): a calm spell lets the last gaps be found and filled
        time.sleep(settle)
        sim_stats = sim.stderr()
        sim.stop()  # the simulator stops first: everything it sent was delivered
        time.sleep(1)
    finally:
        sim.stop()
        if run.poll() is None:
            run.send_signal(signal.SIGTERM)
        out, err = run.communicate(timeout=120)
    reconnects = int(out.split("reconnects:")[1].split()[0]) if "reconnects:" in out else -1

    for ex in exchanges:
        k2("load", str(record / f"{ex}.generated.jsonl"), "--exchange", ex, "--data-dir", str(ref))
    live = rows(data, IDENTITY)
    generated = rows(ref, IDENTITY)
    live_set = set(live)
    # what K2 could know about: everything up to the last trade it saw of each symbol
    last_seen: dict[tuple, int] = {}
    for r in live:
        key = (r[0], r[1])
        last_seen[key] = max(last_seen.get(key, 0), int(r[6]))
    expected = {r for r in generated if (r[0], r[1]) in last_seen and int(r[6]) <= last_seen[(r[0], r[1])]}
    missing = expected - live_set
    extra = live_set - set(generated)
    rejects = int(rows(data, "SELECT count() FROM rejects WHERE source = 'ws'")[0][0])
    malformed = malformed_sent(record, exchanges)
    gaps = rows(data, "SELECT toString(state), count(), sum(trades_recovered) FROM gaps FINAL GROUP BY state")
    validate = k2("validate", "--data-dir", str(data))
    third = max(1, len(rss) // 3)
    early = max(v for _, v in rss[:third]) if rss else 0
    late = max(v for _, v in rss[-third:]) if rss else 0
    result = {
        "duration_s": duration, "rate_per_exchange": rate, "exchanges": exchanges,
        "trades_generated": len(generated), "trades_expected": len(expected), "trades_in_silver": len(live),
        "duplicates": len(live) - len(live_set), "missing": len(missing), "not_generated": len(extra),
        "malformed_frames_sent": malformed, "rejects": rejects, "reconnects": reconnects,
        "slow_consumer_freezes": freezes,
        "gaps": {g[0]: {"count": int(g[1]), "trades_recovered": int(g[2])} for g in gaps},
        "validate_passed": validate.returncode == 0,
        "peak_rss_mb": round(max((v for _, v in rss), default=0) / 2**20, 1),
        "rss_first_third_mb": round(early / 2**20, 1), "rss_last_third_mb": round(late / 2**20, 1),
        "k2_run_exit": run.returncode,
    }
    result["ok"] = (result["duplicates"] == 0 and result["missing"] == 0 and result["not_generated"] == 0
                    and result["validate_passed"] and rejects == malformed and run.returncode == 0
                    and (late <= early * 1.5 + 50 * 2**20))
    if not result["ok"]:
        result["k2_run_stderr_tail"] = err[-2000:]
        result["validate_tail"] = validate.stdout[-1500:]
        result["simulator"] = sim_stats[-500:]
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=180.0)
    p.add_argument("--rate", type=float, default=500.0, help="trades/s per exchange")
    p.add_argument("--drop-every", type=float, default=1.8, help="forced disconnect period (s)")
    p.add_argument("--freeze-every", type=float, default=20.0, help="slow consumer: SIGSTOP period (s), 0 = off")
    p.add_argument("--freeze-for", type=float, default=2.0)
    p.add_argument("--exchange", default="binance,kraken")
    p.add_argument("--workdir", help="keep the data here (default: a temp dir, deleted)")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    exchanges = [e.strip() for e in a.exchange.split(",") if e.strip()]
    with tempfile.TemporaryDirectory(prefix="k2storm-") as tmp:
        workdir = Path(a.workdir) if a.workdir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = storm(a.duration, a.rate, a.drop_every, a.freeze_every, a.freeze_for, workdir, exchanges)
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:24} {v}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
