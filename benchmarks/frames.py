"""Frame files for the parse and load benchmarks, made by the exchange simulator offline.

The simulator's market engine draws the trades and each venue module encodes them exactly as its
WebSocket server would send them (no sockets: the engine is stepped directly and every frame is
written through the venue's own recorder, `<exchange>.generated.jsonl`, the `k2 load` format).
Binance frames are wrapped in the combined-stream envelope (`{"stream":..,"data":..}`), the form
`k2 run` subscribes to and `k2 record` writes. Files are cached by (exchange, trades, seed, rate).

    python benchmarks/frames.py binance 1000000 /tmp/frames     # prints the path and counts
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

#: the simulator's per-exchange rate used to draw the trades. Venues that batch (Kraken, Bitfinex,
#: OKX, Bybit, Coinbase Advanced) put a market's trades of one 10 ms tick into one frame, so the
#: rate fixes trades per frame: 5,000 trades/s over the built-in markets gives 1-3 trades per frame
#: on the busy markets, about what the real venues send at a busy moment.
GEN_RATE = 5_000.0
EXCHANGES = ("binance", "kraken", "coinbase", "bybit", "okx", "bitfinex", "gemini")
#: a fixed exchange clock start (2026-01-15 00:00:00 UTC), so files are the same from run to run
CLOCK_START_US = 1_768_435_200_000_000


def frame_file(exchange: str, trades: int, folder: Path, seed: int = 1, rate: float = GEN_RATE) -> dict:
    """Make (or reuse) a frame file holding at least `trades` trades. Returns
    {"path", "frames", "trades", "exchange", "seconds"}."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{exchange}-{trades}-s{seed}-r{int(rate)}.jsonl"
    meta = path.with_suffix(".json")
    if path.exists() and meta.exists():
        return json.loads(meta.read_text())
    started = time.perf_counter()
    info = _generate(exchange, trades, path, seed, rate)
    info["seconds"] = round(time.perf_counter() - started, 2)
    meta.write_text(json.dumps(info))
    return info


def _generate(exchange: str, trades: int, path: Path, seed: int, rate: float) -> dict:
    import tempfile

    from k2.exchanges import get_adapter
    from k2.exchanges.base import FrameKind
    from k2.simulator.runner import VENUES, SimConfig, Simulator, select_instruments

    with tempfile.TemporaryDirectory(prefix="k2-frames-") as tmp:
        cfg = SimConfig(exchanges=[exchange], port=0, rate=rate, seed=seed, bursts=False, record_dir=Path(tmp))
        sim = Simulator(cfg)
        venue_cls, rules = VENUES[exchange]
        vm = sim.engine.add_exchange(exchange, select_instruments(exchange, None), rate, rules.tick_rule,
                                     rules.lot_rule, rules.first_id, bursts=False)
        venue = venue_cls(sim, 0, vm.markets)
        sim.venues[exchange] = venue
        for native in vm.markets:
            sim.engine.activate(exchange, native)
        tick_us = int(cfg.tick_s * 1e6)
        now = CLOCK_START_US
        while venue.stats.trades_generated < trades:
            now += tick_us
            for name, fills in sim.engine.step().items():
                sim.venues[name].publish(fills, now)
        venue.recorder.close()
        generated = Path(tmp) / f"{exchange}.generated.jsonl"
        adapter = get_adapter(exchange)
        parser = adapter.session()
        n_frames = n_trades = 0
        combined = {f"{n.lower()}": b'{"stream":"' + n.lower().encode() + b'@trade","data":' for n in vm.markets}
        with generated.open("rb") as src, path.open("wb") as dst:
            for line in src:
                frame = line.rstrip(b"\n")
                if not frame:
                    continue
                parsed = parser.parse(frame, 0)
                if parsed.kind is FrameKind.TRADES:
                    n_frames += 1
                    n_trades += len(parsed.rows)
                    if exchange == "binance":  # the combined-stream form the live feed receives
                        sym = parsed.rows[0][adapter.symbol_index].lower()
                        frame = combined[sym] + frame + b"}"
                dst.write(frame + b"\n")
    return {"exchange": exchange, "path": str(path), "frames": n_frames, "trades": n_trades,
            "trades_per_frame": round(n_trades / max(1, n_frames), 3), "bytes": path.stat().st_size}


if __name__ == "__main__":
    print(json.dumps(frame_file(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
