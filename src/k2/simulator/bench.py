"""How fast the simulated Binance server delivers trade frames to one picows client.

    python -m k2.simulator.bench --rate 300000 --seconds 5
    {"requested_per_s": 300000, "received_per_s": 291247.0, "generated": ..., "sent": ...}

The simulator runs in its own process (as in `k2 demo`); the client only counts frames, so the
result is the ceiling of the server plus a minimal client on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import time

import picows

from k2.simulator.process import SimulatorProcess

STREAMS = "btcusdt@trade/ethusdt@trade/solusdt@trade/ethbtc@trade"


class _Counter(picows.WSListener):
    frames = 0

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        if frame.msg_type is picows.WSMsgType.TEXT:
            self.frames += 1


async def _measure(url: str, seconds: float) -> float:
    transport, counter = await picows.ws_connect(_Counter, url, max_frame_size=1 << 24)
    await asyncio.sleep(1.0)  # warm up
    start_frames, start = counter.frames, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (counter.frames - start_frames) / (time.perf_counter() - start)
    transport.disconnect()
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rate", type=float, default=300_000, help="trades per second to ask for")
    p.add_argument("--seconds", type=float, default=5.0)
    args = p.parse_args()
    with SimulatorProcess("--exchange", "binance", "--rate", str(args.rate), "--no-bursts") as sim:
        received = asyncio.run(_measure(f"{sim.urls['binance']['ws']}?streams={STREAMS}", args.seconds))
        sim.stop()
        summary = re.search(r"(\d+) trades generated, (\d+) frames sent", sim.stderr())
    print(json.dumps({"requested_per_s": args.rate, "received_per_s": round(received),
                      "generated": int(summary.group(1)) if summary else None,
                      "sent": int(summary.group(2)) if summary else None}))


if __name__ == "__main__":
    main()
