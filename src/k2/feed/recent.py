"""The feed's memory of trades it has already handed on, per (exchange, symbol).

Reconnect replays (Kraken's snapshot, Binance connection rotation overlaps) and REST backfill
overlaps arrive again as identical trades; dropping them here keeps them out of bronze without
a database round trip. Bronze's own key check catches anything older than the window.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Hashable


class RecentKeys:
    __slots__ = ("seen", "order", "limit")

    def __init__(self, limit: int):
        self.seen: set = set()
        self.order: deque = deque()
        self.limit = limit

    def add(self, key: Hashable) -> bool:
        """Remember `key`; False when it was already known (a duplicate)."""
        if key in self.seen:
            return False
        self.seen.add(key)
        self.order.append(key)
        if len(self.order) > self.limit:
            self.seen.discard(self.order.popleft())
        return True

    def __len__(self) -> int:
        return len(self.order)


class RecentTrades:
    """Windows for every symbol of one exchange. Size shrinks with the symbol count so that
    memory stays bounded (about 2M keys in all)."""

    def __init__(self, symbol_index: int, key_index: Any, n_symbols: int = 1, limit: int | None = None):
        self.symbol_index = symbol_index
        self.key_index = key_index
        self.limit = limit or max(1_000, min(20_000, 2_000_000 // max(1, n_symbols)))
        self.windows: dict[str, RecentKeys] = {}

    def new_rows(self, rows: list[tuple]) -> list[tuple]:
        si, ki, windows = self.symbol_index, self.key_index, self.windows
        out = []
        for row in rows:
            w = windows.get(row[si])
            if w is None:
                w = windows[row[si]] = RecentKeys(self.limit)
            if w.add(row[ki]):
                out.append(row)
        return out
