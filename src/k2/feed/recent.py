"""The feed's memory of trades it has already handed on, per (exchange, symbol).

Reconnect replays (Kraken's snapshot, Binance connection rotation overlaps) and REST backfill
overlaps arrive again as identical trades; dropping them here keeps them out of bronze without
a database round trip. Bronze's own key check catches anything older than the window.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any, Hashable

from k2.exchanges.base import TradeKeys


class RecentKeys:
    """The last `limit` keys or more (up to twice as many), in two generations of sets: a key is
    known while it is in either; when the current one is full it becomes the previous one and the
    oldest generation is dropped whole. Per key that is a set lookup and an add -- no per-key
    eviction bookkeeping (a deque beside the set cost as much as the set itself)."""

    __slots__ = ("current", "previous", "limit")

    def __init__(self, limit: int):
        self.current: set = set()
        self.previous: set = set()
        self.limit = limit

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False when it was already known (a duplicate)."""
        current = self.current
        if key in current or key in self.previous:
            return False
        current.add(key)
        if len(current) >= self.limit:
            self.previous, self.current = current, set()
        return True

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)


class RecentTrades:
    """Windows for every symbol of one exchange. Size shrinks with the symbol count so that
    memory stays bounded (at most about 2M keys in all)."""

    def __init__(self, symbol_index: int, key_index: Any, n_symbols: int = 1, limit: int | None = None,
                 keys: TradeKeys | None = None):
        self.symbol_index = symbol_index
        self.key_index = key_index
        self.limit = limit or max(1_000, min(20_000, 1_000_000 // max(1, n_symbols)))
        self.windows: dict[str, RecentKeys] = {}
        #: the adapter's `trade_keys` (a cheaper key one-to-one with `row[key_index]`), or None
        self.key_one = keys.one if keys is not None else None
        #: rows -> keys in C loops (`row[key_index]`; a slice as an itemgetter of its indexes: the same tuple)
        if keys is not None:
            self.keys_of = keys.many
        else:
            key_of = (itemgetter(*range(*key_index.indices(1 << 16))) if isinstance(key_index, slice)
                      else itemgetter(key_index))
            self.keys_of = lambda rows: list(map(key_of, rows))

    def new_rows(self, rows: list[tuple], symbol: str | None = None) -> list[tuple]:
        """The rows whose trades were not handed on before, in their order; `rows` itself when all
        are new. `symbol`: the caller knows every row is of this symbol (a batched frame)."""
        si, ki, windows = self.symbol_index, self.key_index, self.windows
        if len(rows) == 1:  # most venues send one trade per frame
            row = rows[0]
            w = windows.get(row[si])
            if w is None:
                w = windows[row[si]] = RecentKeys(self.limit)
            key = row[ki] if self.key_one is None else self.key_one(row)
            current = w.current  # RecentKeys.add inlined: this runs per frame
            if key in current or key in w.previous:
                return []
            current.add(key)
            if len(current) >= w.limit:
                w.previous, w.current = current, set()
            return rows
        if symbol is not None:
            return self._new_rows_of(symbol, rows)
        out = []
        key_one = self.key_one
        for row in rows:
            w = windows.get(row[si])
            if w is None:
                w = windows[row[si]] = RecentKeys(self.limit)
            if w.add(row[ki] if key_one is None else key_one(row)):
                out.append(row)
        return out

    def _new_rows_of(self, symbol: str, rows: list[tuple]) -> list[tuple]:
        """A batch of one symbol, checked as a whole with set operations (C loops): the usual
        answer is "all new" -- the keys are then added at once. A repeat inside the batch or of a
        trade already handed on takes the row-by-row path, which keeps the first of each."""
        w = self.windows.get(symbol)
        if w is None:
            w = self.windows[symbol] = RecentKeys(self.limit)
        keys = self.keys_of(rows)
        fresh = set(keys)
        current = w.current
        if len(fresh) == len(keys) and current.isdisjoint(fresh) and w.previous.isdisjoint(fresh):
            current |= fresh
            if len(current) >= w.limit:  # the generation may pass the limit by one batch: kept longer
                w.previous, w.current = current, set()
            return rows
        add = w.add
        return [row for row, key in zip(rows, keys) if add(key)]
