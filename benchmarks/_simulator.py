"""`k2 simulate` for benchmarks: the same simulator and flags, plus

  --max-buffer-mb N   how far behind a client may fall before the simulator cuts it (default 2048;
                      `k2 simulate` cuts at 64 MB). Throughput runs offer more than a client can
                      take, and the backlog must stay in the simulator instead of ending the run.

and one machine-readable line on stderr at exit:
  BENCH-SIM-STATS {"binance": {"trades_generated": ..., "frames_sent": ..., "active_s": ..., ...}}
where `active_s` is the engine time that passed (ticks x tick length): offered rate = generated /
active_s; `lag_s` is how much engine time fell behind the wall clock between the first tick (first
subscription) and the stop, i.e. time the clock skipped because the simulator could not keep up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from k2.simulator.command import add_arguments, config_from_args  # noqa: E402


async def serve(config, duration: float | None) -> int:
    from k2.simulator.runner import Simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sim = Simulator(config)
    urls = await sim.start()
    started = time.monotonic()
    first: list = []  # (monotonic time, engine ticks) when the clock first ran (first subscription)

    async def watch_first_tick() -> None:
        while not first:
            if sim.engine.ticks:
                first.append((time.monotonic(), sim.engine.ticks))
                return
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch_first_tick())
    try:
        sys.stdout.write(json.dumps(urls, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(sim.wait())]
        done, pending = await asyncio.wait(waiters, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        for w in done:
            w.result()
    finally:
        ended = time.monotonic()
        watcher.cancel()
        await sim.stop()
    stats = sim.stats()
    # engine time that should have passed since the first tick vs what did: the difference is
    # time the clock skipped because generating and sending could not keep up (offered < asked)
    lag = 0.0
    if first:
        lag = (ended - first[0][0]) - (sim.engine.ticks - first[0][1]) * config.tick_s
    active = sim.engine.ticks * config.tick_s
    ru = resource.getrusage(resource.RUSAGE_SELF)
    for row in stats.values():
        row["active_s"] = round(active, 3)
        row["wall_s"] = round(time.monotonic() - started, 3)
        row["cpu_s"] = round(ru.ru_utime + ru.ru_stime, 3)
        row["lag_s"] = round(max(0.0, lag), 3)
        row["running_s"] = round(ended - first[0][0], 3) if first else 0.0
        row.pop("active_symbols", None)
    print("BENCH-SIM-STATS " + json.dumps(stats), file=sys.stderr, flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(p)
    p.add_argument("--max-buffer-mb", type=float, default=2048.0)
    args = p.parse_args()
    config = config_from_args(args)
    config.max_buffer_bytes = int(args.max_buffer_mb * (1 << 20))
    config.check()
    return asyncio.run(serve(config, args.duration))


if __name__ == "__main__":
    sys.exit(main())
