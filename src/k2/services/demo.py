"""`k2 demo`: the whole pipeline on one machine without internet.

Starts the exchange simulator in a child process, points the feed at it (the same
K2_<EXCHANGE>_WS_URL / _REST_URL settings a user would set), runs `k2 run` for a while, then
prints candles, the measured ingest latency and the validation report.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from k2.config import Settings
from k2.errors import K2Error
from k2.quality.validate import report, run_checks
from k2.read import queries
from k2.services.run import run_direct
from k2.simulator.process import SimulatorProcess
from k2.warehouse import open_warehouse

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


def point_at_simulator(urls: dict) -> None:
    """K2_<EXCHANGE>_WS_URL / _REST_URL for each simulated venue; an exchange run with another wire
    API (K2_KRAKEN_API=v2, K2_COINBASE_API=advanced) gets that API's endpoint (ws_v2, ws_advanced)."""
    for name, u in urls.items():
        api = os.environ.get(f"K2_{name.upper()}_API", "").strip().lower()
        os.environ[f"K2_{name.upper()}_WS_URL"] = u.get(f"ws_{api}", u["ws"]) if api else u["ws"]
        os.environ[f"K2_{name.upper()}_REST_URL"] = u["rest"]


def run_demo(settings: Settings, duration: float = 20.0, rate: float = 200.0, data_dir: Path | None = None,
             exchanges: list[str] | None = None) -> int:
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
    exchanges = exchanges or DEMO_EXCHANGES
    print(f"starting the exchange simulator ({', '.join(exchanges)}, {rate:g} trades/s each)...")
    sim = SimulatorProcess("--exchange", ",".join(exchanges), "--rate", str(rate))
    try:
        urls = sim.start()
    except RuntimeError as exc:
        raise K2Error(f"the simulator did not start: {str(exc).splitlines()[-1]}") from None
    try:
        point_at_simulator(urls)
        for name in urls:
            print(f"  {name}: {os.environ[f'K2_{name.upper()}_WS_URL']}")
        print(f"running the pipeline for {duration:g} s into {demo_dir}/ ...")
        summary = run_direct(settings, exchanges, duration)
    finally:
        sim.stop()
    print(summary.text())
    wh = open_warehouse(demo_dir)
    try:
        for symbol, exchange in (("BTC/USD", "all"), ("BTC/USDT", "all"), ("ETH/BTC", "all")):
            venues = wh.rows("SELECT DISTINCT toString(exchange) FROM k2.gold_ohlcv_1m WHERE canonical_symbol = "
                             "{s:String} ORDER BY 1", {"s": symbol})
            print(f"\n{symbol} 1m candles, all venues ({', '.join(v[0] for v in venues) or 'none'}):")
            page = queries.ohlcv_page(wh, symbol, "1m", exchange, fmt="table")
            print(page.text.rstrip() if page.text.strip() else "(none)")
            if page.hidden:
                print(f"({page.hidden_note()})")
        text, ok = report(run_checks(wh))
    finally:
        wh.close()
    print()
    print(text)
    print(f"\nexplore: k2 ohlcv BTC/USD --interval 1m --data-dir {demo_dir}  |  "
          f"k2 query \"SELECT * FROM silver_trades_v2 LIMIT 5\" --data-dir {demo_dir}")
    return 0 if ok else 1
