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
    keys = ("missing", "duplicates", "not_generated", "missing_by_symbol", "gaps", "k2_run_stderr_tail")
    return json.dumps({k: result.get(k) for k in keys})[:6000]


@pytest.mark.slow
def test_short_fault_storm_loses_and_duplicates_nothing():
    res = subprocess.run([sys.executable, str(SCRIPT), "--duration", "35", "--rate", "200", "--drop-every", "1.8",
                          "--freeze-every", "12", "--json"], capture_output=True, text=True, timeout=400)
    result = json.loads(res.stdout.strip().splitlines()[-1])
    assert result["trades_in_silver"] > 5000, result
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
    assert result["trades_in_silver"] > 3000, result
    assert result["missing"] == 0 and result["duplicates"] == 0 and result["not_generated"] == 0, accounting(result)
    assert result["rejects"] == result["malformed_frames_sent"] > 0, result
    assert result["broker_freezes"] >= 2 and result["sink_kills"] >= 3, result
    # the feed has no warehouse: its gap ledger versions reach the sink's through the gaps topic
    assert result["gaps"].get("filled", {}).get("trades_recovered", 0) > 0, result
    assert result["validate_passed"], result
    assert result["ok"] and res.returncode == 0, result
