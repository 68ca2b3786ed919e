"""Read coalescing (`[feed] read_coalesce_ms`, ADR 0034): a connection that leaves its socket unread
between reads still gets every trade, in order, resumes by itself after each hold, and composes
with back-pressure's pause (a hold's end does not undo the writer's pause). Real parts: K2's feed
runtime over picows against the simulator on loopback."""

from __future__ import annotations

import asyncio

import pytest

from k2.config import Settings, load_settings
from k2.errors import K2Error
from k2.exchanges import get_adapter
from k2.exchanges.base import FrameKind
from k2.feed.runtime import FeedRuntime
from k2.simulator import SimConfig, Simulator

SYMBOLS = {"binance": ["BTCUSDT", "ETHUSDT"], "kraken": ["XBT/USD", "ETH/USD"], "okx": ["BTC-USDT", "ETH-USDT"]}


class Collect:
    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.rejects: list = []

    def submit(self, adapter, rows, source="ws") -> None:
        self.rows.extend(rows)

    def submit_reject(self, reject) -> None:
        self.rejects.append(reject)


def generated_rows(adapter, path) -> list[tuple]:
    parser = adapter.session()
    out = []
    for frame in path.read_bytes().split(b"\n")[:-1]:
        parsed = parser.parse(frame, 0)
        if parsed.kind is FrameKind.TRADES:
            out.extend(parsed.rows)
    return out


async def _run(tmp_path, exchange: str, coalesce_ms: float, seconds: float, during=None, rate: float = 1500):
    config = SimConfig(exchanges=[exchange], port=0, rate=rate, bursts=False, record_dir=tmp_path / "rec",
                       symbols=SYMBOLS[exchange], tick_s=0.001)  # arrivals spread over time, not in 10 ms ticks
    async with Simulator(config) as sim:
        settings = Settings(exchanges=[exchange], backfill=False, feed_read_coalesce_ms=coalesce_ms,
                            exchange_overrides={exchange: {"ws_url": sim.urls[exchange]["ws"],
                                                           "rest_url": sim.urls[exchange]["rest"],
                                                           "symbols": SYMBOLS[exchange]}})
        sink = Collect()
        runtime = FeedRuntime(settings, sink, [exchange])
        await runtime.plan()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        try:
            if during is not None:
                await during(runtime, sink)
            else:
                await asyncio.sleep(seconds)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
    return sink, runtime


@pytest.mark.parametrize("exchange", ["binance", "kraken", "okx"])
def test_coalesced_reads_deliver_every_trade_in_order(tmp_path, exchange):
    adapter = get_adapter(exchange)
    sink, runtime = asyncio.run(asyncio.wait_for(_run(tmp_path, exchange, 25.0, 3.0), 60))
    conn = runtime.connections[0]
    frames = conn.stats.frames
    # it held reading many times (so every hold was released: a hold that never ended would
    # stop the stream after the first read) and read several frames per hold on average
    assert conn.holds >= 20, (conn.holds, frames)
    assert frames > 1.5 * conn.holds, (conn.holds, frames)
    assert not sink.rejects and conn.stats.connected is False and conn.stats.reconnects == 0
    si, ki = adapter.symbol_index, adapter.trade_key_index
    generated = generated_rows(adapter, tmp_path / "rec" / f"{exchange}.generated.jsonl")
    last_us = max(adapter.row_time_us(r) for r in generated)
    for symbol in SYMBOLS[exchange]:
        want = [r[ki] for r in generated if r[si] == symbol]
        got = [r[ki] for r in sink.rows if r[si] == symbol]
        assert len(got) > 100, (symbol, len(got))
        start = want.index(got[0])
        # a contiguous run of what the simulator generated, in its order: nothing lost, repeated or reordered
        assert got == want[start:start + len(got)], symbol
        # ... up to the last moments (still in flight, or held, when the feed stopped)
        after = [r for r in generated if r[si] == symbol][start + len(got):]
        assert all(adapter.row_time_us(r) >= last_us - 1_500_000 for r in after), (symbol, len(after))


def test_a_busy_connection_is_not_held(tmp_path):
    """At BUSY_FRAMES_PER_S or more each read already brings many frames: the connection reads as
    they come after its first rate window (holds there would only add latency), and still gets
    every trade in order."""
    adapter = get_adapter("binance")
    sink, runtime = asyncio.run(asyncio.wait_for(_run(tmp_path, "binance", 25.0, 4.0, rate=8000), 60))
    conn = runtime.connections[0]
    # held only in the first window (at most RATE_WINDOW_S / 25 ms = 40 times); held all along
    # it would be ~160 times in 4 s
    assert conn.stats.frames > 16_000, conn.stats.frames  # (8,000 frames a second offered)
    assert 0 < conn.holds <= 40 + 10, (conn.holds, conn.stats.frames)
    ids = sorted(r[adapter.trade_key_index] for r in sink.rows if r[adapter.symbol_index] == "BTCUSDT")
    assert ids == list(range(ids[0], ids[0] + len(ids))), "a hole in the trade ids"


def test_back_pressure_pause_outlasts_a_coalescing_hold(tmp_path):
    """The writer's pause holds while coalescing holds start and end around it: a hold's release
    must not resume reading; the writer's resume does (reading again at once if no hold is on)."""
    seen: dict[str, int] = {}

    async def during(runtime, sink):
        await asyncio.sleep(1.0)
        conn = runtime.connections[0]
        assert len(sink.rows) > 0 and conn.holds > 0
        runtime.pause(True)
        await asyncio.sleep(0.1)  # what was already read is handed on
        seen["paused_at"] = len(sink.rows)
        await asyncio.sleep(0.8)  # many coalescing intervals: a hold's end must not resume
        seen["paused_end"] = len(sink.rows)
        runtime.pause(False)
        await asyncio.sleep(1.0)
        seen["resumed"] = len(sink.rows)
        seen["holds"] = conn.holds

    sink, runtime = asyncio.run(asyncio.wait_for(_run(tmp_path, "binance", 25.0, 0, during), 60))
    assert seen["paused_end"] == seen["paused_at"], seen
    assert seen["resumed"] > seen["paused_end"] + 100, seen
    # every trade generated while paused was kept by the kernel and read after: nothing lost
    adapter = get_adapter("binance")
    ids = sorted(r[adapter.trade_key_index] for r in sink.rows if r[adapter.symbol_index] == "BTCUSDT")
    assert ids == list(range(ids[0], ids[0] + len(ids))), "a hole in the trade ids"


def test_setting_is_range_checked(tmp_path):
    assert load_settings({"K2_FEED_READ_COALESCE_MS": "20"}).feed_read_coalesce_ms == 20.0
    assert load_settings({}).feed_read_coalesce_ms == Settings().feed_read_coalesce_ms
    with pytest.raises(K2Error, match="K2_FEED_READ_COALESCE_MS must be between 0 and 100"):
        load_settings({"K2_FEED_READ_COALESCE_MS": "500"})
    toml = tmp_path / "k2.toml"
    toml.write_text("[feed]\nread_coalesce_ms = -1\n")
    with pytest.raises(K2Error, match=r"\[feed\] read_coalesce_ms must be between 0 and 100"):
        load_settings({}, str(toml))
    toml.write_text("[feed]\nread_coalesce = 5\n")
    with pytest.raises(K2Error, match="did you mean read_coalesce_ms"):
        load_settings({}, str(toml))
