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


# -- batched frames: the per-frame path (one symbol per frame) ------------------------------------
_KRAKEN = get_adapter("kraken")


def _kraken_row(n: int, pair: str = "XBT/USD", occurrence: int = 0) -> tuple:
    return (1, pair, f"{97000 + n}.5", "0.1", f"1784116800.{n:06d}", "b", "l", "", occurrence, 99)


def _id_row(n: int, pair: str = "XBT/USD") -> tuple:
    """A trade of an id venue (OKX, Bybit, Coinbase Advanced: the id a digit string, the key and
    the order value); unpadded, so string order is not number order ("9" > "10")."""
    return (0, pair, str(n), "1.5", "0.1", 99)


#: (window, row maker): Kraken's (string keys, the time as order value; no order value), an id
#: venue's (the id as key and order value)
_WINDOWS = {
    "kraken": (lambda limit: RecentTrades(_KRAKEN.symbol_index, _KRAKEN.trade_key_index, limit=limit,
                                          keys=_KRAKEN.trade_keys, order_index=_KRAKEN.trade_order_index),
               _kraken_row),
    "kraken, sets only": (lambda limit: RecentTrades(_KRAKEN.symbol_index, _KRAKEN.trade_key_index, limit=limit,
                                                     keys=_KRAKEN.trade_keys), _kraken_row),
    "id venue": (lambda limit: RecentTrades(1, 2, limit=limit, order_index=2), _id_row),
    "kraken, parser's key columns": (lambda limit: RecentTrades(
        _KRAKEN.symbol_index, _KRAKEN.trade_key_index, limit=limit, keys=_KRAKEN.trade_keys,
        order_index=_KRAKEN.trade_order_index), _kraken_row),
}


def _key_columns(venue: str, rows: list[tuple]):
    """What Kraken's parser hands the window beside a frame's rows (Parsed.key_columns)."""
    return tuple(list(zip(*rows))[2:8]) if venue == "kraken, parser's key columns" else None


@given(st.lists(st.lists(st.integers(0, 40), min_size=1, max_size=12), max_size=40), st.integers(2, 30),
       st.sampled_from(sorted(_WINDOWS)))
@settings(max_examples=500, deadline=None)
def test_batched_window_keeps_exactly_what_the_row_by_row_rules_keep(frames, limit, venue):
    """`new_rows(rows, symbol)` checks a frame as a whole (high water, set operations); whatever
    the frames, it follows the row-by-row window's rules, row by row in frame order: a trade never
    handed on (nor earlier in the frame) is kept, a repeat of one of the last `limit` trades
    handed on is dropped, the order stays; and while no generation has turned over, it gives
    exactly the row-by-row answer."""
    window, make_row = _WINDOWS[venue]
    batched = window(limit)
    one_by_one = window(10_000)
    handed: list[int] = []  # trades kept, in order
    for frame in frames:
        rows = [make_row(n) for n in frame]
        kept = batched.new_rows(rows, "XBT/USD", _key_columns(venue, rows))
        reference = [r for r in rows if one_by_one.new_rows([r])]
        ids = {id(r) for r in kept}
        assert kept == [r for r in rows if id(r) in ids]  # a subsequence, in frame order
        fresh_window = len(handed) + len(frame) < limit
        for row, n in zip(rows, frame):
            if n not in handed:
                assert id(row) in ids, (frame, handed[-limit:], n)
            elif n in handed[-limit:]:
                assert id(row) not in ids, (frame, handed[-limit:], n)
            if id(row) in ids:
                handed.append(n)
        if fresh_window:  # nothing forgotten yet: the very same answer
            assert kept == reference
        # memory stays bounded: each generation holds at most `limit` keys plus one frame's
        largest = max(len(f) for f in frames)
        assert len(batched.windows["XBT/USD"]) <= 2 * (limit + largest)


_KEY_TEXT = st.sampled_from(["", "b", "l", "1.5", "a", "a\x1f", "\x1fb", "a\x1fb"])
_KEY_FIELD = st.one_of(_KEY_TEXT, _KEY_TEXT, _KEY_TEXT, _KEY_TEXT, st.integers(0, 1))


@given(st.lists(st.tuples(_KEY_FIELD, _KEY_FIELD, _KEY_FIELD, _KEY_FIELD, _KEY_FIELD, _KEY_FIELD,
                          st.sampled_from([0, 0, 0, 1, 2])), min_size=1, max_size=8))
@settings(max_examples=500, deadline=None)
def test_kraken_window_keys_are_one_to_one_with_the_trade(fields):
    """The window keys Kraken rows by a string (not a 7-tuple per trade); whatever the values --
    separators inside them, values that are not strings, numbered repeats -- two rows get the same
    key exactly when their trades (`row[2:9]`) are equal, and the batch keys are the row keys."""
    keys = _KRAKEN.trade_keys
    rows = [(1, "XBT/USD", *f, 99) for f in fields]
    one = [keys.one(r) for r in rows]
    assert keys.many(rows) == one
    for a, ka in zip(rows, one):
        for b, kb in zip(rows, one):
            assert (ka == kb) == (a[2:9] == b[2:9]), (a, b, ka, kb)



def test_kraken_window_keys_tell_apart_what_a_plain_join_would_not():
    keys = _KRAKEN.trade_keys
    row = (1, "XBT/USD", "97000.5", "0.1", "1784116800.000001", "b", "l", "", 0, 99)
    assert type(keys.one(row)) is str and keys.many([row, row]) == [keys.one(row)] * 2  # not tracked by the GC
    repeat = row[:8] + (1,) + row[9:]  # the second of two equal trades in one frame
    shifted = row[:6] + ("l\x1fb", "") + row[8:]  # order type "l\x1fb", misc "": joined, the same text as...
    split = row[:6] + ("l", "b\x1f") + row[8:]  # ...order type "l", misc "b\x1f"
    for a, b in ((row, repeat), (shifted, split)):
        assert keys.one(a) != keys.one(b)
        assert len(set(keys.many([a, b]))) == 2


@given(st.lists(st.one_of(st.just("reconnect"),
                          st.lists(st.tuples(st.integers(0, 50), st.sampled_from(["XBT/USD", "ETH/USD"])),
                                   min_size=1, max_size=6)), max_size=30))
@settings(max_examples=300, deadline=None)
def test_gap_tracker_per_frame_and_per_row_find_the_same_gaps(events):
    """Time venues: `observe(rows, symbol)` (a frame of one symbol) does per frame what the
    per-row loop does: the same gaps, the same last trade per symbol."""
    found: dict[str, list] = {"frame": [], "row": []}
    trackers = {k: GapTracker(_KRAKEN, lambda g, k=k: found[k].append((g.symbol, g.kind, g.start, g.end)))
                for k in found}
    trackers["frame"].connected(["XBT/USD", "ETH/USD"])
    trackers["row"].covered_since = dict(trackers["frame"].covered_since)  # the same clock reading
    for ev in events:
        if ev == "reconnect":
            for t in trackers.values():
                t.reconnected()
            continue
        for pair in ("XBT/USD", "ETH/USD"):
            rows = [_kraken_row(n, pair) for n, p in ev if p == pair]
            if rows:
                trackers["frame"].observe(rows, pair)
                trackers["row"].observe(rows)
    assert found["frame"] == found["row"]
    assert trackers["frame"].last_row == trackers["row"].last_row
    assert trackers["frame"].window_from == trackers["row"].window_from


def _kraken_frame(ns: list[int], pair: str = "XBT/USD") -> bytes:
    trades = [[f"{97000 + n}.5", "0.1", f"1784116800.{n:06d}", "b", "l", ""] for n in ns]
    return json.dumps([119930881, trades, "trade", pair]).encode()


def test_on_payload_batched_frames_count_per_frame():
    """Kraken's batched frames: trades, duplicates (a reconnect's replay overlapping what was
    handed on), per-symbol counts and the time gap after a reconnect, through the per-frame path."""
    sink, gaps = _CountingSink(), []
    conn = FeedConnection(_KRAKEN, "ws://127.0.0.1:1/", ["XBT/USD", "ETH/USD"], "kraken-0", sink,
                          RecentTrades(_KRAKEN.symbol_index, _KRAKEN.trade_key_index, 2), Backoff())
    conn.gaps = GapTracker(_KRAKEN, gaps.append)
    conn.gaps.connected(["XBT/USD", "ETH/USD"])
    conn.on_payload(_kraken_frame([1, 2, 3, 4]))
    conn.on_payload(_kraken_frame([10, 11], "ETH/USD"))
    conn.gaps.reconnected()
    conn.on_payload(_kraken_frame([3, 4, 5, 9]))  # the replay overlaps 3 and 4
    s = conn.stats
    assert [r[4][-2:] for r in sink.rows] == ["01", "02", "03", "04", "10", "11", "05", "09"]
    assert (s.frames, s.trades, s.duplicates) == (3, 8, 2)
    assert s.trades_by_symbol == {"XBT/USD": 6, "ETH/USD": 2}
    assert set(s.last_trade_by_symbol) == {"XBT/USD", "ETH/USD"}
    # the hole: from the last trade before the reconnect (4) to the first new one after (5)
    assert [(g.symbol, g.kind, g.start, g.end) for g in gaps] == [
        ("XBT/USD", "time", 1784116800_000004, 1784116800_000005)]
