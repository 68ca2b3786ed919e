"""The feed's memory of trades it has already handed on, per (exchange, symbol).

Reconnect replays (Kraken's snapshot, Binance connection rotation overlaps) and REST backfill
overlaps arrive again as identical trades; dropping them here keeps them out of bronze without
a database round trip. Bronze's own key check catches anything older than the window.
"""

from __future__ import annotations

from itertools import islice
from operator import itemgetter, lt
from typing import Any, Hashable

from k2.exchanges.base import TradeKeys

#: `RecentKeys.high` once a value could not be compared: the high-water path is off for good
_UNORDERED = object()


class RecentKeys:
    """The last `limit` keys or more (up to twice as many), in two generations of sets: a key is
    known while it is in either; when the current one is full it becomes the previous one and the
    oldest generation is dropped whole. Per key that is a set lookup and an add -- no per-key
    eviction bookkeeping (a deque beside the set cost as much as the set itself).

    A generation may also hold frames not yet keyed (`frames`, `previous_frames`: a frame's rows
    as columns, one object per column, or its keys when the key is an id): a frame wholly newer
    than everything in the window is kept so and keyed only when a later check needs the sets
    (RecentTrades)."""

    __slots__ = ("current", "previous", "limit", "frames", "previous_frames", "pending", "previous_pending",
                 "high")

    def __init__(self, limit: int):
        self.current: set = set()
        self.previous: set = set()
        self.limit = limit
        self.frames: list[list[tuple]] = []  # of the current generation, not keyed yet
        self.previous_frames: list[list[tuple]] = []
        self.pending = 0  # trades in `frames`
        self.previous_pending = 0
        #: the highest order value (RecentTrades.order_index) of every trade ever remembered, None
        #: before the first
        self.high: Any = None

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False when it was already known (a duplicate). Only with no frame
        pending (RecentTrades keys them first)."""
        current = self.current
        if key in current or key in self.previous:
            return False
        current.add(key)
        if len(current) >= self.limit:
            self.previous, self.current = current, set()
        return True

    def turn_over(self) -> None:
        """The current generation (its set and its frames) becomes the previous one."""
        self.previous, self.previous_frames, self.previous_pending = self.current, self.frames, self.pending
        self.current, self.frames, self.pending = set(), [], 0

    def __len__(self) -> int:
        return len(self.current) + len(self.previous) + self.pending + self.previous_pending


class RecentTrades:
    """Windows for every symbol of one exchange. Size shrinks with the symbol count so that
    memory stays bounded (at most about 2M keys in all)."""

    def __init__(self, symbol_index: int, key_index: Any, n_symbols: int = 1, limit: int | None = None,
                 keys: TradeKeys | None = None, order_index: int | None = None):
        self.symbol_index = symbol_index
        self.key_index = key_index
        self.limit = limit or max(1_000, min(20_000, 1_000_000 // max(1, n_symbols)))
        self.windows: dict[str, RecentKeys] = {}
        #: the adapter's `trade_keys` (a cheaper key one-to-one with `row[key_index]`), or None
        self.key_one = keys.one if keys is not None else None
        #: keys from a frame's `Parsed.key_columns` (held by the high-water path as they are)
        self.of_columns = keys.of_columns if keys is not None else None
        self.order_column = keys.order_column if keys is not None else None
        #: rows -> keys in C loops (`row[key_index]`; a slice as an itemgetter of its indexes: the same tuple)
        if keys is not None:
            self.keys_of = keys.many
        else:
            key_of = (itemgetter(*range(*key_index.indices(1 << 16))) if isinstance(key_index, slice)
                      else itemgetter(key_index))
            self.keys_of = lambda rows: list(map(key_of, rows))
        #: `row[order_index]` is part of the key and rises trade after trade (the high-water path), or None
        self.order_index = order_index
        #: the order value is the key itself (a trade id): a frame is held as its keys, not as columns
        self.order_is_key = keys is None and order_index is not None and order_index == key_index

    def new_rows(self, rows: list[tuple], symbol: str | None = None, key_columns: Any = None) -> list[tuple]:
        """The rows whose trades were not handed on before, in their order; `rows` itself when all
        are new. `symbol`: the caller knows every row is of this symbol (a batched frame);
        `key_columns`: the parser's `Parsed.key_columns` of `rows`, if any."""
        si, ki, windows = self.symbol_index, self.key_index, self.windows
        if len(rows) == 1:  # most venues send one trade per frame
            row = rows[0]
            w = windows.get(row[si])
            if w is None:
                w = windows[row[si]] = RecentKeys(self.limit)
            if self.order_index is not None:
                return self._new_row_ordered(w, row, rows)
            key = row[ki] if self.key_one is None else self.key_one(row)
            current = w.current  # RecentKeys.add inlined: this runs per frame
            if key in current or key in w.previous:
                return []
            current.add(key)
            if len(current) >= w.limit:
                w.previous, w.current = current, set()
            return rows
        if symbol is not None:
            return self._new_rows_of(symbol, rows, key_columns)
        out = []
        key_one = self.key_one
        for row in rows:
            w = windows.get(row[si])
            if w is None:
                w = windows[row[si]] = RecentKeys(self.limit)
            if w.pending or w.previous_pending:
                self._key_frames(w)
            if w.add(row[ki] if key_one is None else key_one(row)):
                out.append(row)
                if self.order_index is not None:
                    _raise_high(w, (row[self.order_index],))
        return out

    def _new_row_ordered(self, w: RecentKeys, row: tuple, rows: list[tuple]) -> list[tuple]:
        """One trade, for a window with an order value: above the high water it is new (added
        to the current set without keying the frames held as columns), else the sets decide."""
        key = row[self.key_index] if self.key_one is None else self.key_one(row)
        high = w.high
        if high is not None and high is not _UNORDERED and w.pending + w.previous_pending:
            try:
                newer = row[self.order_index] > high
            except TypeError:
                newer = False
            if newer:
                w.current.add(key)
                w.high = row[self.order_index]
                if len(w.current) + w.pending >= w.limit:
                    w.turn_over()
                return rows
            self._key_frames(w)
        if not w.add(key):
            return []
        _raise_high(w, (row[self.order_index],))
        return rows

    def _new_rows_of(self, symbol: str, rows: list[tuple], key_columns: Any = None) -> list[tuple]:
        """A batch of one symbol, checked as a whole. The usual answer is "all new", found one of
        two ways:
          * high water (adapters whose key holds an order value, `order_index`: Kraken's time):
            when the batch's order values strictly increase (so its trades are distinct) and its
            first is above every order value in the window, no trade of it can be known; the
            batch is kept as columns (or its ids) and keyed only if a later check needs the sets.
            Per trade that is two comparisons instead of building, hashing and storing a key;
          * set operations (C loops): keys distinct and disjoint from both generations, then
            added at once.
        A repeat inside the batch or of a trade already handed on takes the row-by-row path,
        which keeps the first of each."""
        w = self.windows.get(symbol)
        if w is None:
            w = self.windows[symbol] = RecentKeys(self.limit)
        oi = self.order_index
        if oi is not None and w.high is not _UNORDERED:
            if self.order_is_key:
                held = order = tuple(map(itemgetter(oi), rows))
            elif key_columns is not None and self.of_columns is not None:
                held, order = key_columns, key_columns[self.order_column]  # a tuple: see _key_frames
            else:
                held = list(zip(*rows))
                order = held[oi]
            try:
                newer = (w.high is None or order[0] > w.high) and all(map(lt, order, islice(order, 1, None)))
            except TypeError:  # values that do not compare: the sets decide
                newer = False
            if newer:
                w.frames.append(held)
                w.pending += len(rows)
                w.high = order[-1]
                if len(w.current) + w.pending >= w.limit:  # as below: the generation turns over
                    w.turn_over()
                return rows
        if w.pending or w.previous_pending:
            self._key_frames(w)
        keys = self.keys_of(rows)
        fresh = set(keys)
        current = w.current
        if len(fresh) == len(keys) and current.isdisjoint(fresh) and w.previous.isdisjoint(fresh):
            current |= fresh
            if len(current) >= w.limit:  # the generation may pass the limit by one batch: kept longer
                w.previous, w.current = current, set()
            kept = rows
        else:
            add = w.add
            kept = [row for row, key in zip(rows, keys) if add(key)]
        if oi is not None and kept:
            _raise_high(w, map(itemgetter(oi), kept))
        return kept

    def _key_frames(self, w: RecentKeys) -> None:
        """Put the keys of the frames a window holds into its sets (a replay or a row-by-row check
        needs them)."""
        for frames, keys in ((w.frames, w.current), (w.previous_frames, w.previous)):
            for held in frames:  # ids; the parser's key columns (a tuple); the rows' columns (a list)
                if self.order_is_key:
                    keys.update(held)
                elif type(held) is tuple:
                    keys.update(self.of_columns(held))
                else:
                    keys.update(self.keys_of(list(zip(*held))))
        w.frames, w.previous_frames, w.pending, w.previous_pending = [], [], 0, 0


def _raise_high(w: RecentKeys, values) -> None:
    """Keep `w.high` at or above every order value remembered (values that do not compare turn
    the high-water path off for this window)."""
    if w.high is _UNORDERED:
        return
    try:
        top = max(values)
        if w.high is None or top > w.high:
            w.high = top
    except TypeError:
        w.high = _UNORDERED
