"""The fault storm at CI size: every fault at once against the simulator, then exact accounting
(scripts/fault_storm.py; the full-size run's figures go in the reliability issue's closing note)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "fault_storm.py"


def accounting(result: dict) -> str:
    """The failure message for a lost or doubled trade, accounting first (pytest cuts long dicts)."""
    keys = ("trades_in_silver", "trades_expected", "missing", "duplicates", "not_generated", "missing_by_symbol",
            "gaps", "gaps_open", "open_gaps", "runs", "k2_run_stderr_tail")
    return json.dumps({k: result.get(k) for k in keys})[:6000]


@pytest.mark.slow
def test_short_fault_storm_loses_and_duplicates_nothing():
    res = subprocess.run([sys.executable, str(SCRIPT), "--duration", "35", "--rate", "200", "--drop-every", "1.8",
                          "--freeze-every", "12", "--json"], capture_output=True, text=True, timeout=400)
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["trades_in_silver"] > 5000, accounting(result)
    assert result["missing"] == 0 and result["duplicates"] == 0 and result["not_generated"] == 0, accounting(result)
    assert result["rejects"] == result["malformed_frames_sent"] > 0, result
    assert result["reconnects"] >= 15, result
    assert result["gaps"].get("filled", {}).get("trades_recovered", 0) > 0, result
    assert result["validate_passed"], result
    assert result["ok"] and res.returncode == 0, result



@pytest.mark.slow
def test_short_kafka_fault_storm_loses_and_duplicates_nothing():
    """The same storm through `k2 feed` -> broker -> `k2 sink`, with the broker frozen and the
    sink killed (SIGKILL) and restarted while trades flow."""
    res = subprocess.run([sys.executable, str(SCRIPT), "--kafka", "--duration", "35", "--rate", "150",
                          "--drop-every", "2.5", "--freeze-every", "11", "--freeze-for", "3",
                          "--kill-sink-every", "9", "--json"], capture_output=True, text=True, timeout=600)
    assert res.stdout.strip(), res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["trades_in_silver"] > 3000, accounting(result)
    assert result["missing"] == 0 and result["duplicates"] == 0 and result["not_generated"] == 0, accounting(result)
    assert result["rejects"] == result["malformed_frames_sent"] > 0, result
    assert result["broker_freezes"] >= 2 and result["sink_kills"] >= 3, result
    # the feed has no warehouse: its gap ledger versions reach the sink's through the gaps topic
    assert result["gaps"].get("filled", {}).get("trades_recovered", 0) > 0, result
    assert result["validate_passed"], result
    assert result["ok"] and res.returncode == 0, result


@pytest.mark.slow
def test_short_storm_with_rest_outages_heavy_reads_a_full_disk_and_a_restart():
    """Issue 16's faults on top of the storm: the venues' REST down at the start and mid-run, heavy
    reads through the running pipeline's read API, the data dir's disk full for 7 s (tests/faults),
    and a SIGTERM while it is full (rows held under back-pressure are spooled) followed by a new
    `k2 run` once there is room: still 0 missing, 0 twice, 0 gaps left open."""
    res = subprocess.run([sys.executable, str(SCRIPT), "--duration", "40", "--rate", "150", "--drop-every", "2",
                          "--freeze-every", "0", "--rest-down", "0-6,24-29", "--heavy-reads", "5",
                          "--disk-full", "12-19", "--restart-at", "15", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert res.stdout.strip(), res.stderr[-3000:]
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["trades_in_silver"] > 5000, accounting(result)
    assert result["missing"] == 0 and result["duplicates"] == 0 and result["not_generated"] == 0, accounting(result)
    assert result["gaps_open"] == 0, accounting(result)
    assert result["rest_refused"] > 0 and result["heavy_reads"]["answered"] > 0, result
    full = result["disk_full"]
    assert "red" in full["healthz_while_full"] and full["healthz_after"][-1] == "green", full
    # the run stopped under a full disk spooled what it held (exit 1, saying so); the next one wrote it
    assert [r["exit"] for r in result["runs"]] == [1, 0], result["runs"]
    assert result["validate_passed"] and result["ok"] and res.returncode == 0, result
