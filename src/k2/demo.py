"""`k2 demo`: the whole pipeline on one machine without internet.

Starts the exchange simulator in a child process, points the feed at it (the same
K2_<EXCHANGE>_WS_URL / _REST_URL settings a user would set), runs `k2 run` for a while, then
prints candles, the measured ingest latency and the validation report.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from k2.config import Settings
from k2.errors import K2Error

MARKER = ".k2demo"
DEMO_EXCHANGES = ["binance", "kraken"]


def prepare_demo_dir(path: Path) -> None:
    """Start from an empty warehouse each time, but never wipe a directory we did not create."""
    if path.exists():
        if not (path / MARKER).exists() and any(path.iterdir()):
            raise K2Error(f"{path} exists and is not a K2 demo directory; choose another --data-dir")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / MARKER).write_text("created by k2 demo; deleted and recreated by the next k2 demo\n")


def start_simulator(exchanges: list[str], rate: float, ready_file: Path, extra: list[str] | None = None,
                    timeout: float = 30.0) -> tuple[subprocess.Popen, dict]:
    """Run `k2 simulate` in a child process; return it and its URL map once it listens."""
    cmd = [sys.executable, "-m", "k2", "simulate", "--exchange", ",".join(exchanges), "--port", "0",
           "--rate", str(rate), "--ready-file", str(ready_file), *(extra or [])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready_file.exists() and ready_file.stat().st_size:
            try:
                return proc, json.loads(ready_file.read_text())
            except ValueError:
                pass
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace").strip().splitlines() if proc.stderr else []
            raise K2Error(f"the simulator exited early: {err[-1] if err else proc.returncode}")
        time.sleep(0.05)
    proc.kill()
    raise K2Error("the simulator did not start within 30 s")


def point_at_simulator(urls: dict) -> None:
    for name, u in urls.items():
        os.environ[f"K2_{name.upper()}_WS_URL"] = u["ws"]
        os.environ[f"K2_{name.upper()}_REST_URL"] = u["rest"]


def run_demo(settings: Settings, duration: float = 20.0, rate: float = 200.0, data_dir: Path | None = None) -> int:
    from k2 import reads
    from k2.pipeline import run_embedded
    from k2.quality.validate import report, run_checks
    from k2.warehouse import open_warehouse

    if duration <= 0 or rate <= 0:
        raise K2Error("--duration and --rate must be positive")
    demo_dir = data_dir or Path("k2demo")
    prepare_demo_dir(demo_dir)
    settings.data_dir = demo_dir
    settings.warehouse_url = None
    settings.symbols = None
    settings.exchange_overrides = {}
    if settings.metrics_addr == "127.0.0.1:9108":
        settings.metrics_addr = "127.0.0.1:0"
    with tempfile.TemporaryDirectory(prefix="k2demo-") as tmp:
        print(f"starting the exchange simulator ({', '.join(DEMO_EXCHANGES)}, {rate:g} trades/s each)...")
        proc, urls = start_simulator(DEMO_EXCHANGES, rate, Path(tmp) / "ready.json")
        try:
            point_at_simulator(urls)
            for name, u in urls.items():
                print(f"  {name}: {u['ws']}")
            print(f"running the pipeline for {duration:g} s into {demo_dir}/ ...")
            summary = run_embedded(settings, DEMO_EXCHANGES, duration)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(summary.text())
    wh = open_warehouse(demo_dir)
    try:
        for symbol, exchange in (("BTC/USD", "kraken"), ("BTC/USDT", "binance"), ("ETH/BTC", "all")):
            print(f"\n{symbol} 1m candles ({exchange}):")
            text = reads.ohlcv(wh, symbol, "1m", exchange, fmt="table")
            print(text.rstrip() if text.strip() else "(none)")
        text, ok = report(run_checks(wh))
    finally:
        wh.close()
    print()
    print(text)
    print(f"\nexplore: k2 ohlcv BTC/USD --interval 1m --data-dir {demo_dir}  |  "
          f"k2 query \"SELECT * FROM silver_trades_v2 LIMIT 5\" --data-dir {demo_dir}")
    return 0 if ok else 1
