"""Parse + normalize throughput of one exchange adapter on one core.

    taskset -c 1 python benchmarks/bench_parse.py FRAMEFILE EXCHANGE [--passes 5]

Reads the frame file into memory, then runs the adapter's `parse(frame, received_us)` over every
frame (a fresh `session()` per pass, as one connection), `passes` times. Each pass is timed on its
own; prints one JSON line with the per-pass frames/s and trades/s. `parse` is all the Python work a
frame gets in K2: decode (msgspec typed structs), validation, bronze row tuples with the native
fields; symbol mapping, decimals and time conversion happen in SQL (silver views).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("exchange")
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()

    from k2.exchanges import get_adapter
    from k2.exchanges.base import FrameKind

    adapter = get_adapter(args.exchange)
    frames = [ln.rstrip(b"\n") for ln in Path(args.file).read_bytes().splitlines() if ln.strip()]
    received = time.time_ns() // 1000
    passes = []
    gc.collect()
    for _ in range(args.passes):
        parse = adapter.session().parse
        trades = n = 0
        t0 = time.perf_counter()
        for frame in frames:
            p = parse(frame, received)
            if p.kind is FrameKind.TRADES:
                trades += len(p.rows)
            n += 1
        dt = time.perf_counter() - t0
        passes.append({"seconds": dt, "frames_per_s": n / dt, "trades_per_s": trades / dt})
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    print(json.dumps({"exchange": args.exchange, "frames": len(frames), "trades": trades, "passes": passes,
                      "cpus": affinity}))


if __name__ == "__main__":
    main()
