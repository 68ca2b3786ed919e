"""The feed's in-process pieces without a network: the recent-trades window and the per-frame
bookkeeping of `FeedConnection.on_payload` (the live paths are in test_feed.py)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from k2.exchanges import get_adapter
from k2.feed.backoff import Backoff
from k2.feed.connection import FeedConnection
from k2.feed.gaps import GapTracker
from k2.feed.recent import RecentKeys, RecentTrades


@given(st.lists(st.integers(0, 60), max_size=400), st.integers(1, 20))
@settings(max_examples=300, deadline=None)
def test_window_drops_exactly_the_repeats_of_its_last_limit_keys(keys, limit):
    """A key seen among the last `limit` distinct keys is always a repeat; a key never seen is
    always new; older keys may be forgotten but only beyond 2 x limit."""
    w = RecentKeys(limit)
    history: list[int] = []  # distinct keys in the order they were accepted
    for k in keys:
        recent = history[-limit:]
        accepted = w.add(k)
        if k in recent:
            assert not accepted, (k, recent)
        elif k not in history:
            assert accepted, k
        elif k in history[-2 * limit:] and accepted:
            # forgotten early is allowed only when it fell out of a full generation
            assert len(history) >= limit
        if accepted:
            history.append(k)
        assert len(w) <= 2 * limit


def test_recent_trades_single_and_multi_row_frames_agree():
    binance = get_adapter("binance")
    rows = [("trade", 1, s, tid, "1.0", "1.0", 1, True, True, 0)
            for tid in range(50) for s in ("BTCUSDT", "ETHUSDT")]
    one_by_one = RecentTrades(binance.symbol_index, binance.trade_key_index, limit=30)
    batched = RecentTrades(binance.symbol_index, binance.trade_key_index, limit=30)
    replay = rows[:20] + rows[60:80]  # repeats: a reconnect overlap
    kept_single = [r for r in rows + replay if one_by_one.new_rows([r])]
    kept_batch = batched.new_rows(rows) + batched.new_rows(replay)
    assert kept_single == kept_batch == rows[:60] + rows[60:] and len(kept_single) == 100


class _CountingSink:
    def __init__(self):
        self.rows, self.rejects = [], []

    def submit(self, adapter, rows, source="ws"):
        self.rows.extend(rows)

    def submit_reject(self, reject):
        self.rejects.append(reject)


def _frame(symbol: str, trade_id: int) -> bytes:
    data = {"e": "trade", "E": 1784116800123 + trade_id, "s": symbol, "t": trade_id, "p": "97512.34000000",
            "q": "0.00120000", "T": 1784116800122 + trade_id, "m": True, "M": True}
    return json.dumps({"stream": symbol.lower() + "@trade", "data": data}).encode()


def test_on_payload_counts_trades_duplicates_gaps_and_rejects():
    binance = get_adapter("binance")
    sink, gaps = _CountingSink(), []
    conn = FeedConnection(binance, "ws://127.0.0.1:1/stream", ["BTCUSDT", "ETHUSDT"], "binance-0", sink,
                          RecentTrades(binance.symbol_index, binance.trade_key_index, 2), Backoff())
    conn.gaps = GapTracker(binance, gaps.append)
    frames = [_frame("BTCUSDT", i) for i in (1, 2, 3, 2, 7)] + [_frame("ETHUSDT", 5), b'{"stream":"x","data":{"e":']
    frames.append(b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":8,"p":"1e5","q":"1",'
                  b'"T":1,"m":true,"M":true}}')
    for f in frames:
        conn.on_payload(f)
    s = conn.stats
    assert [r[3] for r in sink.rows] == [1, 2, 3, 7, 5]
    assert (s.frames, s.trades, s.duplicates, s.rejects) == (8, 5, 1, 2)
    assert s.trades_by_symbol == {"BTCUSDT": 4, "ETHUSDT": 1}
    assert set(s.last_trade_by_symbol) == {"BTCUSDT", "ETHUSDT"}
    assert [(g.symbol, g.start, g.end) for g in gaps] == [("BTCUSDT", 4, 6)]
    assert "malformed frame" in sink.rejects[0].reason and "price" in sink.rejects[1].reason
