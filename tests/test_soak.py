"""scripts/soak.py, briefly: a short soak must produce its CSV, plot and summary."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent / "scripts" / "soak.py"


@pytest.mark.slow
def test_short_soak(tmp_path):
    out = tmp_path / "soak"
    r = subprocess.run([sys.executable, str(SOAK), "--duration", "12", "--interval", "2", "--rate", "100",
                        "--warmup", "0", "--exchange", "binance,kraken", "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    rows = list(csv.DictReader((out / "soak.csv").open()))
    assert len(rows) >= 4
    assert all(float(row["rss_mb"]) > 50 for row in rows)
    assert sum(float(row["trades_per_s"]) for row in rows) > 0
    assert any(row["latency_p99_ms"] not in ("", "nan") for row in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["failures"] == [] and summary["trades_written"] > 0
    assert {"rss_mb_max", "rss_growth_mb_per_hour_after_warmup", "cpu_pct_mean",
            "interval_latency_p99_ms_median", "warehouse_latency"} <= set(summary)
    assert (out / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
