"""The scripts in docs/examples/ run as a user runs them, on `history_dir`, and say what they should.
(The README's "From Python" example is candles_to_pandas.py.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from k2.read.api import _close_held_engine

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


def run(script: str, *args, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    _close_held_engine()
    return subprocess.run([sys.executable, str(EXAMPLES / script), *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def env(history_dir):
    e = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    e["K2_DATA_DIR"] = str(history_dir)
    return e


def test_every_example_has_a_test():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == ["candles_to_pandas.py", "clickhouse_client.py",
                                                            "parquet_roundtrip.py"]


def test_candles_to_pandas(env, tmp_path):
    r = run("candles_to_pandas.py", "BTC/USDT", "binance", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "72 candles; close is Decimal, time is datetime64[s, UTC]" in r.stdout
    assert (tmp_path / "candles.png").stat().st_size > 1000


def test_parquet_roundtrip(env, tmp_path):
    r = run("parquet_roundtrip.py", tmp_path / "out", env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("= warehouse") == 3, r.stdout


def test_clickhouse_client_against_k2_serve(env, history_dir, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "k2", "serve", "--addr", "127.0.0.1:0"],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_file = history_dir / "k2.run.json"
        deadline = time.monotonic() + 60
        while not (run_file.exists() and run_file.read_text()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        addr = json.loads(run_file.read_text())["addr"]
        r = run("clickhouse_client.py", addr, env=env, cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert "('binance', 8640" in r.stdout and "decimal128(38, 18)" in r.stdout and "BTC/USDT" in r.stdout
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
