"""Gap detection and REST backfill: the trades missed while a connection was down.

Two ways to notice a gap:
  * by id, where the exchange numbers trades one by one per symbol (Binance `t`): a live trade
    whose id jumps past the last one seen opens a gap [last + 1, id - 1];
  * by time, where it does not (Kraken v1): after every reconnect, the window between the last
    trade seen before and the first new trade after is a gap to ask the REST API about.
The same applies across restarts: the pipeline seeds the last id / time from bronze.

Every gap is a row in the `gaps` ledger (open -> filled | unfillable, trades recovered). The
backfiller fetches the missing trades page by page from the exchange's public REST endpoint and
hands them to the transport like live ones (source 'rest'), through the same recent-trades
window, so an overlap with live trades is written once.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable

from k2.errors import FrameError
from k2.exchanges.base import ExchangeAdapter

log = logging.getLogger("k2.gaps")


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class Gap:
    exchange: str
    symbol: str
    kind: str  # 'ids' or 'time'
    start: int  # first missing id, or time (µs) of the last trade seen before
    end: int  # last missing id, or time (µs) of the first trade seen after
    state: str = "open"  # open | filled | unfillable
    recovered: int = 0
    detail: str = ""
    detected_us: int = field(default_factory=now_us)

    @property
    def gap_id(self) -> str:
        return f"{self.exchange}:{self.symbol}:{self.kind}:{self.start}"

    def ledger_params(self) -> dict:
        """This version of the gap as the parameters of `queries/gap_upsert.sql` (also the JSON
        of a gap event on the Kafka gaps topic)."""
        return {"gap_id": self.gap_id, "exchange": self.exchange, "symbol": self.symbol, "kind": self.kind,
                "start": self.start, "end": self.end, "state": self.state, "recovered": self.recovered,
                "detail": self.detail, "detected": self.detected_us}

    @property
    def size(self) -> int | None:
        return self.end - self.start + 1 if self.kind == "ids" else None


class GapTracker:
    """Watches one exchange's live trades for holes. Per-trade work is one dict update."""

    def __init__(self, adapter: ExchangeAdapter, on_gap: Callable[[Gap], None]):
        self.adapter = adapter
        self.on_gap = on_gap
        self.id_index = adapter.sequential_id_index
        self.last_id: dict[str, int] = {}
        self.last_row: dict[str, tuple] = {}
        self.window_from: dict[str, int] = {}  # symbol -> µs of the last trade before a reconnect

    def seed(self, last_ids: dict[str, int] | None = None, last_times_us: dict[str, int] | None = None) -> None:
        """What bronze already holds, so a gap since the previous run is found too."""
        for sym, last in (last_ids or {}).items():
            self.last_id.setdefault(sym, last)
        for sym, last in (last_times_us or {}).items():
            self.window_from.setdefault(sym, last)

    def reconnected(self) -> None:
        if self.id_index is not None:
            return  # ids tell on their own
        for sym, row in self.last_row.items():
            self.window_from.setdefault(sym, self.adapter.row_time_us(row))

    def observe(self, rows: list[tuple]) -> None:
        si, ii = self.adapter.symbol_index, self.id_index
        if ii is not None:
            last_id = self.last_id
            if len(rows) == 1:  # one trade per frame (Binance, Coinbase): the next id, usually
                row = rows[0]
                sym, tid = row[si], row[ii]
                last = last_id.get(sym)
                if last is not None and tid == last + 1:
                    last_id[sym] = tid
                    return
            for row in rows:
                sym, tid = row[si], row[ii]
                last = last_id.get(sym)
                if last is None or tid > last:
                    if last is not None and tid > last + 1:
                        self.on_gap(Gap(self.adapter.name, sym, "ids", last + 1, tid - 1))
                    last_id[sym] = tid
            return
        last_row = self.last_row
        for row in rows:
            last_row[row[si]] = row
        if self.window_from:
            for row in rows:
                sym = row[si]
                start = self.window_from.pop(sym, None)
                if start is not None:
                    end = self.adapter.row_time_us(row)
                    if end > start:
                        self.on_gap(Gap(self.adapter.name, sym, "time", start, end))


def http_get(url: str, timeout: float = 15.0) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "k2"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:  # TLS verified for https
        return resp.read()


class Backfiller:
    """Fills gaps one at a time per exchange, politely (a pause between pages)."""

    def __init__(self, adapter: ExchangeAdapter, rest_url: str, deliver: Callable[[list[tuple]], int],
                 on_update: Callable[[Gap], None], max_trades: int = 50_000, pause_s: float = 0.2,
                 fetch: Callable[[str], bytes] = http_get):
        self.adapter, self.rest_url = adapter, rest_url.rstrip("/")
        self.deliver, self.on_update = deliver, on_update
        self.max_trades, self.pause_s = max_trades, pause_s
        self.fetch = fetch
        self.queue: asyncio.Queue[Gap] = asyncio.Queue()

    def submit(self, gap: Gap) -> None:
        self.queue.put_nowait(gap)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            getter = asyncio.ensure_future(self.queue.get())
            stopper = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if getter not in done:
                getter.cancel()
                return
            gap = getter.result()
            try:
                await self._fill(gap, stop)
            except (OSError, urllib.error.URLError) as exc:  # the network: one line, no traceback
                gap.state, gap.detail = "unfillable", f"{self.rest_url}: {getattr(exc, 'reason', None) or exc}"[:300]
                log.warning("%s %s: backfill gave up: %s", gap.exchange, gap.symbol, gap.detail)
            except Exception as exc:  # never let one gap stop the feed (a bug: the traceback is logged)
                gap.state, gap.detail = "unfillable", f"{type(exc).__name__}: {exc}"[:300]
                log.exception("%s %s: backfill failed", gap.exchange, gap.symbol)
            self.on_update(gap)

    async def _page(self, path: str) -> bytes:
        delay = 1.0
        for attempt in range(4):
            try:
                return await asyncio.to_thread(self.fetch, self.rest_url + path)
            except (OSError, urllib.error.URLError) as exc:
                if attempt == 3:
                    raise
                log.warning("%s backfill: %s%s: %s; retry %d in %.0f s", self.adapter.name, self.rest_url, path.split("?")[0],
                            getattr(exc, "reason", None) or exc, attempt + 2, delay)
                await asyncio.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")

    async def _fill(self, gap: Gap, stop: asyncio.Event) -> None:
        adapter, native = self.adapter, gap.symbol
        cursor, fetched, covered = gap.start, 0, False
        while not stop.is_set() and fetched < self.max_trades:
            body = await self._page(adapter.rest_trades_path(native, cursor))
            try:
                rows, nxt = adapter.parse_rest_trades(body, native, now_us())
            except FrameError as exc:
                gap.state, gap.detail = "unfillable", f"bad REST answer: {exc}"
                return
            if gap.kind == "ids":
                ii = adapter.sequential_id_index
                inside = [r for r in rows if gap.start <= r[ii] <= gap.end]
                covered = bool(rows) and rows[-1][ii] >= gap.end
            else:
                inside = [r for r in rows if gap.start <= adapter.row_time_us(r) <= gap.end]
                covered = not rows or adapter.row_time_us(rows[-1]) >= gap.end
                if not adapter.rest_pages_from_cursor and rows and adapter.row_time_us(rows[0]) > gap.start:
                    covered = False  # only the newest trades are served: the gap's start is out of reach
                    nxt = None
            fetched += len(inside)
            gap.recovered += self.deliver(inside) if inside else 0
            if covered or nxt is None or nxt <= cursor:
                break
            cursor = nxt
            await asyncio.sleep(self.pause_s)
        if gap.kind == "ids":
            missing = gap.end - gap.start + 1
            gap.state = "filled" if covered and fetched >= missing else "unfillable"
            if gap.state == "unfillable":
                gap.detail = (f"recovered {fetched} of {missing} trades"
                              + (f" (stopped at {self.max_trades}; raise K2_BACKFILL_MAX_TRADES)"
                                 if fetched >= self.max_trades else " (the exchange no longer serves the rest)"))
        else:
            gap.state = "filled" if covered else "unfillable"
            if not covered:
                gap.detail = (f"stopped after {fetched} trades (K2_BACKFILL_MAX_TRADES)" if fetched >= self.max_trades
                              else f"recovered {fetched} trades; the exchange serves only its most recent ones")
        log.info("%s %s: gap %s..%s %s, %d trades recovered", gap.exchange, gap.symbol, gap.start, gap.end,
                 gap.state, gap.recovered)
