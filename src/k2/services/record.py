"""`k2 record`: capture an exchange's raw frames, one per line, in the format `k2 load` reads.

It uses the feed runtime's connection (same subscribe, heartbeat and reconnect behaviour) with
a tap that writes every text frame before parsing; nothing goes to the warehouse.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from k2.config import Settings
from k2.errors import K2Error
from k2.feed.backoff import Backoff
from k2.feed.connection import FeedConnection
from k2.feed.recent import RecentTrades
from k2.feed.runtime import resolve_symbols
from k2.services.lifecycle import stop_loop_on_signals


class _CountingSink:
    def __init__(self) -> None:
        self.trades = 0

    def submit(self, adapter, rows) -> None:
        self.trades += len(rows)

    def submit_reject(self, reject) -> None:
        pass


def record(settings: Settings, exchange: str, out: Path, duration: float | None) -> dict[str, int]:
    ex = settings.exchange(exchange)
    adapter = ex.adapter
    natives = resolve_symbols(adapter, ex.symbols)
    if not natives:
        raise K2Error("no symbols to record")
    sink = _CountingSink()
    frames = 0
    try:
        f = out.open("ab")
    except OSError as exc:
        raise K2Error(f"cannot write {out}: {exc.strerror}") from None
    with f:
        def tap(payload: bytes) -> None:
            nonlocal frames
            frames += 1
            f.write(payload.replace(b"\n", b" ") + b"\n")

        async def main() -> None:
            stop = asyncio.Event()
            with stop_loop_on_signals(asyncio.get_running_loop(), stop.set):
                conn = FeedConnection(adapter, ex.ws_url, natives, f"{exchange}-record", sink,
                                      RecentTrades(adapter.symbol_index, adapter.trade_key_index, len(natives),
                                                   keys=adapter.trade_keys, order_index=adapter.trade_order_index),
                                      Backoff(settings.reconnect_base_s, settings.reconnect_cap_s,
                                              settings.reconnect_max_attempts))
                conn.raw_tap = tap
                task = asyncio.create_task(conn.run(stop))
                try:
                    await asyncio.wait_for(stop.wait(), duration)
                except asyncio.TimeoutError:
                    pass
                stop.set()
                await task

        asyncio.run(main())
    return {"frames": frames, "trades": sink.trades}
