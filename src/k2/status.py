"""`k2 status`: the running pipeline's connections, from its loopback endpoint."""

from __future__ import annotations

import json
import time

from k2.config import Settings
from k2.httpapi import RemoteReader, read_run_info


def _age(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.0f}m"


def print_status(settings: Settings, fmt: str = "table") -> int:
    info = read_run_info(settings.data_dir)
    if info is None:
        if fmt == "json":
            print(json.dumps({"running": False, "data_dir": str(settings.data_dir)}))
        else:
            print(f"k2 is not running on {settings.data_dir} (start it with: k2 run)")
        return 1
    st = RemoteReader(info).status()
    conns = st.get("connections", [])
    down = [c for c in conns if not c["connected"]]
    writer = st.get("writer") or {}  # a sink-only process has a writer and no feed connections
    if fmt == "json":
        print(json.dumps({"running": True, **st}, default=str))
        return 1 if down or not (conns or writer) else 0
    now = st.get("now", time.time())
    print(f"k2 running (pid {st.get('pid')}) for {_age(now - st.get('started_at', now))}, "
          f"transport {st.get('transport')}, {st.get('buffered', 0)} rows buffered")
    header = f"{'connection':<12} {'state':<5} {'since':>7} {'trades':>10} {'trades/s':>9} {'reconn':>6} " \
             f"{'last msg':>8}  last error"
    print(header)
    for c in conns:
        since = now - c["connected_since"] if c.get("connected_since") else None
        rate = c["trades"] / since if since else 0.0
        failed = f" failed: {', '.join(c['failed'])}" if c.get("failed") else ""
        print(f"{c['connection']:<12} {'up' if c['connected'] else 'DOWN':<5} {_age(since):>7} {c['trades']:>10,} "
              f"{rate:>9,.0f} {c['reconnects']:>6} {_age(c.get('last_message_age_s')):>8}  "
              f"{(c.get('last_error') or '')[:80]}{failed}")
    for ex, skipped in (st.get("skipped") or {}).items():
        for sym, why in skipped.items():
            print(f"{ex}: {sym} skipped ({why})")
    gaps = st.get("gaps") or {}
    if gaps:
        print("gaps: " + ", ".join(f"{k} {v}" for k, v in sorted(gaps.items()))
              + f"; {st.get('gaps_recovered', 0):,} trades recovered by backfill (details: k2 gaps)")
    if writer:
        print("written: " + ", ".join(f"{k} {v:,}" for k, v in writer.get("written", {}).items())
              + f"; insert errors {writer.get('insert_errors', 0)}")
    return 1 if down or not (conns or writer) else 0
