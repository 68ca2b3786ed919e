"""Gap detection and REST backfill: the trades missed while a connection was down.

Two ways to notice a gap:
  * by id, where the exchange numbers trades one by one per symbol (Binance `t`): a live trade
    whose id jumps past the last one seen opens a gap [last + 1, id - 1];
  * by time, where it does not (Kraken v1): after every reconnect, the window between the last
    trade seen before and the first new trade after is a gap to ask the REST API about.
The same applies across restarts: the pipeline seeds the last id / time from bronze.

A third case is a symbol's first trade of a run arriving after a reconnect: whatever it traded
between the first subscription and that trade went by while the connection was down, with no
earlier trade to measure the hole from. It is a gap from the moment K2 first connected to it (by
time; for sequential ids, the ids traded since then, found by paging back from the first one seen).

Every gap is a row in the `gaps` ledger (open -> filled | unfillable, trades recovered). The
backfiller fetches the missing trades page by page from the exchange's public REST endpoint and
hands them to the transport like live ones (source 'rest'), through the same recent-trades
window, so an overlap with live trades is written once.

A gap is `unfillable` only when the venue's own answer proves it (its REST no longer serves the
trades: retention), or when K2's per-gap cap stops it. A REST outage, an error page or a
shutdown leaves it `open`: it is retried with backoff while the process runs, and the next start
picks up every open gap from the ledger. Each ledger version carries the time its content changed
(`updated_us`), so versions written out of order still resolve to the latest.
"""

from __future__ import annotations

import asyncio
import logging
import random
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


#: how far back (ids) a symbol's first trade after a reconnect is searched from at first
HEAD_SEARCH_IDS = 1000


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
    #: ids gaps at a symbol's first trade after a reconnect: the ids traded since this time (µs);
    #: `start` is where the search begins until the backfiller has found the first of them
    since_us: int | None = None
    #: when this version's content changed (µs): the ledger keeps the highest (ReplacingMergeTree)
    updated_us: int = field(default_factory=now_us)
    #: failed REST attempts in a row (the venue unreachable or answering errors)
    attempts: int = 0
    gap_id: str = ""  # fixed when found: `start` of a head gap moves when its first id is found

    def __post_init__(self) -> None:
        if not self.gap_id:
            self.gap_id = f"{self.exchange}:{self.symbol}:{self.kind}:{self.start}"

    def changed(self) -> "Gap":
        """Stamp a new version: later than every earlier one of this gap, whatever the clock did."""
        self.updated_us = max(now_us(), self.updated_us + 1)
        return self

    def ledger_params(self) -> dict:
        """This version of the gap as the parameters of `queries/gap_upsert.sql` (also the JSON
        of a gap event on the Kafka gaps topic)."""
        return {"gap_id": self.gap_id, "exchange": self.exchange, "symbol": self.symbol, "kind": self.kind,
                "start": self.start, "end": self.end, "state": self.state, "recovered": self.recovered,
                "detail": self.detail, "detected": self.detected_us, "updated": self.updated_us,
                "since": -1 if self.since_us is None else self.since_us}

    @classmethod
    def from_ledger(cls, row: dict) -> "Gap":
        """A gap read back from the ledger (queries/gaps_to_retry.sql), to be retried."""
        return cls(row["exchange"], row["symbol"], row["kind"], int(row["start"]), int(row["end"]),
                   state="open", recovered=int(row["recovered"]), detail=row["detail"],
                   detected_us=int(row["detected"]), updated_us=int(row["updated"]), gap_id=row["gap_id"],
                   since_us=None if row.get("since") is None or int(row["since"]) < 0 else int(row["since"]))

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
        #: symbol -> µs when this run first connected for it: K2 answers for its trades from then on
        self.covered_since: dict[str, int] = {}
        #: id venues: symbol -> covered_since, for symbols with no trade yet when a connection dropped
        self.head_since: dict[str, int] = {}

    def seed(self, last_ids: dict[str, int] | None = None, last_times_us: dict[str, int] | None = None) -> None:
        """What bronze already holds, so a gap since the previous run is found too."""
        for sym, last in (last_ids or {}).items():
            self.last_id.setdefault(sym, last)
        for sym, last in (last_times_us or {}).items():
            self.window_from.setdefault(sym, last)

    def connected(self, symbols: list[str]) -> None:
        """A connection for `symbols` is up: from the first time, their trades are K2's to keep."""
        now = now_us()
        for sym in symbols:
            self.covered_since.setdefault(sym, now)

    def reconnected(self) -> None:
        """A connection came back. Ids tell a hole on their own once a symbol has a last id; a
        symbol with none yet (no trade seen, nothing stored) has a hole from when it was covered."""
        if self.id_index is not None:
            for sym, since in self.covered_since.items():
                if sym not in self.last_id:
                    self.head_since.setdefault(sym, since)
            return
        for sym, row in self.last_row.items():
            self.window_from.setdefault(sym, self.adapter.row_time_us(row))
        for sym, since in self.covered_since.items():
            if sym not in self.last_row:
                self.window_from.setdefault(sym, since)

    def observe(self, rows: list[tuple], symbol: str | None = None) -> None:
        """New live trades, in the order received; `symbol`: all of them are of this symbol (a
        batched frame), so time venues do per-frame work only."""
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
                    elif last is None and self.head_since and sym in self.head_since and tid > 0:
                        self.on_gap(Gap(self.adapter.name, sym, "ids", max(0, tid - HEAD_SEARCH_IDS), tid - 1,
                                        since_us=self.head_since.pop(sym)))
                    last_id[sym] = tid
            return
        last_row = self.last_row
        if symbol is not None:  # the same as the loops below, for a batch of one symbol
            last_row[symbol] = rows[-1]
            if self.window_from:
                start = self.window_from.pop(symbol, None)
                if start is not None:
                    end = self.adapter.row_time_us(rows[0])
                    if end > start:
                        self.on_gap(Gap(self.adapter.name, symbol, "time", start, end))
            return
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


class RestUnavailable(Exception):
    """The venue's REST endpoint could not be reached, or answered with an error or something that
    is not a trades page: nothing is proven about the gap, it is tried again later."""


class Backfiller:
    """Fills gaps one at a time per exchange, politely (a pause between pages). When the venue's
    REST fails, the gap stays open and the whole exchange's queue waits (exponential backoff with
    jitter, `retry_base_s` doubling up to `retry_cap_s`) before trying it again: one venue-level
    outage, one request per wait, never a gap given up for it."""

    def __init__(self, adapter: ExchangeAdapter, rest_url: str, deliver: Callable[[list[tuple]], int],
                 on_update: Callable[[Gap], None], max_trades: int = 50_000, pause_s: float = 0.2,
                 fetch: Callable[[str], bytes] = http_get, retry_base_s: float = 1.0, retry_cap_s: float = 60.0,
                 rng: random.Random | None = None):
        self.adapter, self.rest_url = adapter, rest_url.rstrip("/")
        self.deliver, self.on_update = deliver, on_update
        self.max_trades, self.pause_s = max_trades, pause_s
        self.fetch = fetch
        self.retry_base_s, self.retry_cap_s = retry_base_s, retry_cap_s
        self.failures = 0  # REST failures in a row, for this exchange
        self._rng = rng or random.Random()
        self.queue: asyncio.Queue[Gap] = asyncio.Queue()

    def submit(self, gap: Gap) -> None:
        self.queue.put_nowait(gap)

    @property
    def pending(self) -> int:
        return self.queue.qsize()

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
            while not stop.is_set():
                try:
                    await self._fill(gap, stop)
                except RestUnavailable as exc:  # nothing proven: the gap stays open, tried again
                    self.failures += 1
                    gap.attempts += 1
                    delay = self._retry_delay()
                    gap.detail = (f"REST unavailable ({exc}); {gap.attempts} attempt(s), "
                                  f"next in {delay:.0f} s")[:300]
                    self.on_update(gap.changed())
                    log.warning("%s %s: backfill: %s", gap.exchange, gap.symbol, gap.detail)
                    if await _sleep_unless(stop, delay):
                        break
                    continue
                except Exception as exc:  # a bug: never let one gap stop the feed; it stays open
                    gap.detail = f"backfill error: {type(exc).__name__}: {exc}"[:300]
                    log.exception("%s %s: backfill failed", gap.exchange, gap.symbol)
                    self.on_update(gap.changed())
                    break
                self.failures = 0
                gap.attempts = 0
                self.on_update(gap.changed())
                break
            if stop.is_set() and gap.state == "open":
                gap.detail = (gap.detail + "; " if gap.detail else "") + "interrupted by the stop; retried at next start"
                gap.detail = gap.detail[-300:]
                self.on_update(gap.changed())

    def _retry_delay(self) -> float:
        ceiling = min(self.retry_cap_s, self.retry_base_s * 2 ** min(self.failures - 1, 20))
        return self._rng.uniform(ceiling / 2, ceiling)

    async def _page(self, native: str, cursor: int) -> tuple[list[tuple], int | None]:
        """One REST page as bronze rows and the next cursor; RestUnavailable when there is none."""
        try:
            body = await asyncio.to_thread(self.fetch, self.rest_url + self.adapter.rest_trades_path(native, cursor))
        except (OSError, urllib.error.URLError, TimeoutError) as exc:  # HTTPError is a URLError
            raise RestUnavailable(_network_reason(exc)) from None
        try:
            return self.adapter.parse_rest_trades(body, native, now_us())
        except FrameError as exc:
            raise RestUnavailable(f"not a trades page: {exc}"[:200]) from None

    async def _fill(self, gap: Gap, stop: asyncio.Event) -> None:
        """Fetch the gap's trades and decide: filled, unfillable (proven by the venue's answer, or
        K2's cap), or still open (stopped). REST failures raise RestUnavailable."""
        adapter, native = self.adapter, gap.symbol
        if gap.since_us is not None and gap.kind == "ids":
            if not await self._find_head(gap, stop):
                return
        cursor, fetched, covered, stopped = gap.start, 0, False, False
        if gap.kind == "ids" and gap.start > gap.end:  # a head gap with nothing traded before its first trade
            covered = True
        while not covered and fetched < self.max_trades:
            if stop.is_set():
                stopped = True
                break
            rows, nxt = await self._page(native, cursor)
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
        if stopped:
            return  # still open: the next start goes on with it
        capped = fetched >= self.max_trades and not covered
        if gap.kind == "ids":
            missing = gap.end - gap.start + 1
            gap.state = "filled" if covered and fetched >= missing else "unfillable"
            if gap.state == "unfillable":
                gap.detail = (f"recovered {fetched} of {missing} trades"
                              + (f" (stopped at {self.max_trades}; raise K2_BACKFILL_MAX_TRADES)"
                                 if capped or fetched >= self.max_trades
                                 else " (the exchange no longer serves the rest: its REST retention)"))
            else:
                gap.detail = ""
        else:
            gap.state = "filled" if covered else "unfillable"
            if not covered:
                gap.detail = (f"stopped after {fetched} trades (K2_BACKFILL_MAX_TRADES)" if capped
                              else f"recovered {fetched} trades; the exchange serves only its most recent ones "
                                   "(its REST retention)")
            else:
                gap.detail = ""
        log.info("%s %s: gap %s..%s %s, %d trades recovered", gap.exchange, gap.symbol, gap.start, gap.end,
                 gap.state, gap.recovered)

    async def _find_head(self, gap: Gap, stop: asyncio.Event) -> bool:
        """A symbol's first trade after a reconnect (id `end + 1`): page back from `start` until
        the trades are older than `since_us`, and start the gap at the first one that is not.
        False when stopped."""
        adapter, ii = self.adapter, self.adapter.sequential_id_index
        cursor = gap.start
        while True:
            if stop.is_set():
                return False
            rows, _ = await self._page(gap.symbol, cursor)
            before = [r for r in rows if r[ii] <= gap.end]
            if not before:  # nothing served up to the first trade: its REST keeps no older ones
                break
            reached = adapter.row_time_us(before[0]) < gap.since_us  # the page goes back past since_us
            if reached or cursor == 0 or gap.end - cursor >= self.max_trades:
                since = [r[ii] for r in before if adapter.row_time_us(r) >= gap.since_us]
                gap.start = since[0] if since else gap.end + 1
                break
            if before[0][ii] > cursor:
                # asked from `cursor`, served from a later id, still after since_us: the venue has no
                # older trade of the symbol. The two venues with sequential ids (Binance, Coinbase)
                # serve their whole history over REST, so no older trade exists (a new market)
                gap.start = before[0][ii]
                break
            cursor = max(0, cursor - HEAD_SEARCH_IDS)
            await asyncio.sleep(self.pause_s)
        gap.since_us = None
        return True


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds`; True when `stop` was set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return stop.is_set()


def _network_reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}"[:160]

