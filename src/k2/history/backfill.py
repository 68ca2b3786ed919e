"""`k2 backfill`: a range of a venue's public REST trade history into the warehouse.

Pages go through the adapters' own REST calls (`rest_trades_path` / `parse_rest_trades`, the
same as the live feed's gap filling) and are written like live rows (source 'rest'), so a trade
also seen live or in an archive is stored once.

Politeness: requests are spaced to stay under the venue's documented limit (`rest_history`
on the adapter; 97 % of it, so a fixed window never sees one too many); a 429 waits for its
Retry-After and slows down; a 418 (Binance's ban) or a wait longer than `max_wait_s` stops
with an error instead of hammering. Network errors and 5xx answers are retried with backoff.

Resuming: after every written page the cursor is saved in `<data dir>/history/`; Ctrl-C, a
crash or a network failure leaves it there, and the same command continues from it. A page
written but not yet checkpointed is fetched again and written once (the bronze key probe).
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from k2.errors import FrameError, K2Error
from k2.exchanges.base import ExchangeAdapter
from k2.rejects import now_us
from k2.terminal import Progress

#: share of the documented limit a backfill uses
SAFETY = 0.97


@dataclass
class BackfillReport:
    exchange: str
    symbol: str
    trades: int = 0  # rows fetched in the range
    written: int = 0  # rows new to bronze
    pages: int = 0
    throttled: int = 0  # 429 answers seen (and waited out)
    seconds: float = 0.0
    resumed_from: int | None = None
    first_us: int | None = None
    last_us: int | None = None

    def summary(self) -> str:
        rate = self.trades / self.seconds if self.seconds else 0.0
        span = ""
        if self.first_us is not None:
            span = f" from {_iso(self.first_us)} to {_iso(self.last_us or self.first_us)}"
        return (f"{self.exchange} {self.symbol}: {self.trades} trades{span} ({self.written} new, "
                f"{self.trades - self.written} already stored) in {self.pages} pages, "
                f"{self.throttled} rate-limit answers; {self.seconds:.1f} s, {rate:,.0f} trades/s"
                + (f"; resumed at cursor {self.resumed_from}" if self.resumed_from is not None else ""))


def _iso(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us / 1e6)) + "Z"


class RateLimited(Exception):
    def __init__(self, status: int, retry_after: float, body: str):
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after, self.body = status, retry_after, body


def http_get(url: str, timeout: float = 20.0) -> bytes:
    """GET; a 429/418 becomes RateLimited (with its Retry-After), other HTTP errors OSError."""
    req = urllib.request.Request(url, headers={"User-Agent": "k2-backfill"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # TLS verified for https
            return resp.read()
    except urllib.error.HTTPError as exc:
        body = exc.read()[:300].decode("utf-8", "replace")
        if exc.code in (418, 429):
            try:
                retry = float(exc.headers.get("Retry-After") or 60)
            except ValueError:
                retry = 60.0
            raise RateLimited(exc.code, retry, body) from None
        if exc.code >= 500:
            raise OSError(f"HTTP {exc.code}: {body}") from None
        raise K2Error(f"{url}: HTTP {exc.code}: {body}") from None


class Pacer:
    """At most `rate` requests a second, evenly spaced (no bursts)."""

    def __init__(self, rate: float):
        self.interval = 1.0 / rate
        self.next_at = 0.0

    def wait(self) -> None:
        now = time.monotonic()
        if now < self.next_at:
            time.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + self.interval

    def slow_down(self) -> None:
        self.interval *= 1.25


class Checkpoint:
    """The cursor of one backfill, saved after every page (atomically: write, then rename)."""

    def __init__(self, folder: Path, key: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"backfill-{hashlib.blake2b(key.encode(), digest_size=8).hexdigest()}.json"
        self.key = key

    def load(self) -> dict | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return doc if doc.get("key") == self.key else None

    def save(self, **state) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"key": self.key, **state}))
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


@dataclass
class Backfill:
    adapter: ExchangeAdapter
    rest_url: str
    write: Callable[[list[tuple]], int]  # rows -> how many were new
    state_dir: Path
    fetch: Callable[[str], bytes] = http_get
    rate: float | None = None  # requests/s; default: the venue's documented limit x SAFETY
    max_wait_s: float = 600.0
    progress: Callable[[str], None] | None = None  # events (rate limited, retrying) and, without `bar`, progress lines
    bar: Progress | None = None  # percent of the range done, redrawn (k2.terminal)
    retries: int = 5
    stats: dict = field(default_factory=dict)

    def __post_init__(self):
        facts = self.adapter.rest_history
        if facts is None:
            raise K2Error(f"{self.adapter.name} serves no range of its trade history over REST "
                          "(only its most recent trades); nothing to backfill from")
        self.facts = facts
        self.pacer = Pacer(self.rate or facts.requests_per_s * SAFETY)
        self.rest_url = self.rest_url.rstrip("/")
        self.throttled = 0

    # -- HTTP -------------------------------------------------------------------------------------
    def _get(self, path: str) -> bytes:
        delay = 1.0
        for attempt in range(self.retries + 1):
            self.pacer.wait()
            try:
                return self.fetch(self.rest_url + path)
            except RateLimited as exc:
                self.throttled += 1
                if exc.status == 418:
                    raise K2Error(f"{self.adapter.name} has banned this IP for {exc.retry_after:.0f} s "
                                  f"(HTTP 418: {exc.body[:120]}); run the same command later to resume") from None
                if exc.retry_after > self.max_wait_s:
                    raise K2Error(f"{self.adapter.name} asks to wait {exc.retry_after:.0f} s (HTTP 429); "
                                  "run the same command later to resume") from None
                self._say(f"rate limited (HTTP 429): waiting {exc.retry_after:.0f} s, then slower")
                time.sleep(exc.retry_after)
                self.pacer.slow_down()
            except (OSError, urllib.error.URLError) as exc:
                if attempt == self.retries:
                    raise K2Error(f"{self.adapter.name} REST failed {self.retries + 1} times ({exc}); "
                                  "run the same command to resume where it stopped") from None
                self._say(f"{exc}; retrying in {delay:.0f} s")
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise K2Error(f"{self.adapter.name}: still rate limited after {self.retries + 1} tries; "
                      "run the same command later to resume")

    def _page(self, native: str, cursor: int) -> tuple[list[tuple], int | None]:
        body = self._get(self.adapter.rest_trades_path(native, cursor))
        try:
            return self.adapter.parse_rest_trades(body, native, now_us())
        except FrameError as exc:
            raise K2Error(f"{self.adapter.name}: unexpected REST answer: {exc}") from None

    def _say(self, text: str) -> None:
        if self.progress:
            self.progress(text)

    # -- where a time lies in the ids ---------------------------------------------------------------
    def first_id_at(self, native: str, since_us: int) -> int:
        """The first trade id at or after `since_us` (id-paged venues). Every page spent here is a
        page of the rate limit not spent on trades, so the search interpolates: ids grow about
        evenly with time, so the newest page's rate of ids per second puts the first guess close,
        and each answer narrows the bracket by interpolating between its ends (a step that does not
        halve the bracket is followed by a bisection, so the worst case stays logarithmic). A few
        pages where a bisection over all ids took ~32."""
        body = self._get(self.facts.latest_path.format(native=native))
        rows, _ = self.adapter.parse_rest_trades(body, native, now_us())
        if not rows:
            raise K2Error(f"{self.adapter.name} {native}: no trades at all")
        idx = self.adapter.sequential_id_index if self.adapter.sequential_id_index is not None else 1
        t_of = self.adapter.row_time_us
        rows = sorted(rows, key=lambda r: int(r[idx]))
        if t_of(rows[-1]) < since_us:
            return int(rows[-1][idx]) + 1
        if t_of(rows[0]) < since_us:  # since lies inside the newest page
            return next(int(r[idx]) for r in rows if t_of(r) >= since_us)
        # the bracket: every id below lo is older than since (lo_t: the time at lo-1, None unknown);
        # the trade at hi is not
        lo, lo_t = 0, None
        hi, hi_t = int(rows[0][idx]), t_of(rows[0])
        span_us = t_of(rows[-1]) - t_of(rows[0])
        ids_per_us = (int(rows[-1][idx]) - hi) / span_us if span_us > 0 else 1e-3
        per_page = len(rows)
        reach = 1.0  # how far back the guess reaches, relative to the estimate (grows while it falls short)
        halved = True
        while lo < hi:
            if lo_t is None:  # no older trade seen yet: reach back further each time
                mid = hi - max(1, int((hi_t - since_us) * ids_per_us * reach * 1.05))
                reach *= 4
            elif not halved:
                mid = (lo + hi) // 2
            else:  # aim the page's middle at the estimate: a page answers for `per_page` ids
                mid = lo + int((since_us - lo_t) / max(1, hi_t - lo_t) * (hi - lo)) - per_page // 2
            mid = min(max(mid, lo), hi - 1)
            width = hi - lo
            page = sorted((r for r in self._page(native, mid)[0] if int(r[idx]) >= mid), key=lambda r: int(r[idx]))
            per_page = max(per_page, len(page))
            if not page or t_of(page[0]) >= since_us:
                hi, hi_t = mid, (t_of(page[0]) if page else hi_t)
            elif t_of(page[-1]) < since_us:
                lo, lo_t = int(page[-1][idx]) + 1, t_of(page[-1])
            else:  # since lies inside this page
                return next(int(r[idx]) for r in page if t_of(r) >= since_us)
            halved = (hi - lo) * 2 <= width
        return lo

    # -- the range ----------------------------------------------------------------------------------
    def run(self, native: str, since_us: int, until_us: int | None, *, from_id: int | None = None,
            to_id: int | None = None, until_label: str = "") -> BackfillReport:
        """Trades of `native` in [since_us, until_us) (until None: up to now), or, for id-paged
        venues, ids from_id..to_id (a hole `k2 coverage` listed)."""
        rep = BackfillReport(self.adapter.name, native)
        key = f"{self.adapter.name}|{native}|{since_us}|{until_label or until_us}|{from_id}|{to_id}"
        cp = Checkpoint(self.state_dir, key)
        started = time.perf_counter()
        state = cp.load()
        by_id = self.facts.pages_by == "id"
        if state:
            cursor = int(state["cursor"])
            rep.resumed_from = cursor
            rep.trades, rep.written = int(state.get("trades", 0)), int(state.get("written", 0))
            self._say(f"resuming at cursor {cursor} ({rep.trades} trades done before)")
        elif from_id is not None:
            cursor = from_id
        elif by_id:
            cursor = self.first_id_at(native, since_us)
        else:
            cursor = since_us
        end_us = until_us if until_us is not None else now_us()
        idx = self.adapter.sequential_id_index
        last_progress = 0.0
        writer = _PageWriter(self.write, cp, rep)  # pages are written while the next ones are fetched
        try:
            while True:
                rows, nxt = self._page(native, cursor)
                rep.pages += 1
                if to_id is not None and idx is not None:
                    keep = [r for r in rows if from_id <= int(r[idx]) <= to_id]
                    done = not rows or any(int(r[idx]) >= to_id for r in rows)
                else:
                    keep = [r for r in rows if since_us <= self.adapter.row_time_us(r) < end_us]
                    done = not rows or any(self.adapter.row_time_us(r) >= end_us for r in rows)
                if keep:
                    rep.trades += len(keep)
                    t0, t1 = self.adapter.row_time_us(keep[0]), self.adapter.row_time_us(keep[-1])
                    rep.first_us = t0 if rep.first_us is None else min(rep.first_us, t0)
                    rep.last_us = t1 if rep.last_us is None else max(rep.last_us, t1)
                if done or nxt is None or nxt == cursor:
                    writer.put(keep, None)
                    break
                cursor = nxt
                writer.put(keep, {"cursor": cursor, "trades": rep.trades})
                now = time.perf_counter()
                if self.bar is not None and rep.last_us is not None:
                    if to_id is not None and idx is not None and keep:
                        frac = (int(keep[-1][idx]) - from_id) / max(to_id - from_id, 1)
                    else:
                        frac = (rep.last_us - since_us) / max(end_us - since_us, 1)
                    elapsed = now - started
                    self.bar.update(100 * min(max(frac, 0.0), 1.0),
                                    note=f"at {_iso(rep.last_us)}, {rep.trades:,} trades, "
                                         f"{rep.trades / elapsed if elapsed else 0:,.0f}/s")
                elif self.progress and now - last_progress >= 1.0:
                    last_progress = now
                    self._progress(rep, since_us, end_us, now - started)
        finally:
            writer.close()  # every fetched page written (and checkpointed), or the write's error raised
        cp.clear()
        if self.bar is not None:
            self.bar.update(100.0, note=f"{rep.trades:,} trades")
        rep.throttled = self.throttled
        rep.seconds = time.perf_counter() - started
        return rep

    def _progress(self, rep: BackfillReport, since_us: int, end_us: int, elapsed: float) -> None:
        if rep.last_us is None:
            return
        done = min(max((rep.last_us - since_us) / max(end_us - since_us, 1), 0.0), 1.0)
        rate = rep.trades / elapsed if elapsed else 0.0
        eta = elapsed * (1 - done) / done if done > 0 else 0.0
        self._say(f"{rep.trades:,} trades, at {_iso(rep.last_us)} ({done:.1%}), {rate:,.0f} trades/s, "
                  f"ETA {int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}")


class _PageWriter:
    """Writes fetched pages in order on a thread of its own and saves the cursor after each, so
    the fetch loop keeps the pace the rate limit allows instead of waiting for every insert (on a
    busy machine an insert took longer than the gap between two requests). At most `depth` pages
    wait, and the pages waiting are written in one insert. A write's error stops the fetching at
    the next page."""

    def __init__(self, write: Callable[[list[tuple]], int], cp: Checkpoint, rep: BackfillReport, depth: int = 8):
        import queue
        import threading

        self.write, self.cp, self.rep = write, cp, rep
        self.depth = depth
        self.queue: queue.Queue = queue.Queue(depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="k2-backfill-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import queue

        while True:
            items = [self.queue.get()]
            # the pages waiting by now go in one insert: an insert's cost is mostly per statement
            # (key probe, views, counters), so a writer that fell behind catches up
            while items[-1] is not None and len(items) < self.depth:
                try:
                    items.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            last = items[-1] is None
            pages = [i for i in items if i is not None]
            if pages and self.error is None:  # after a failed write nothing more is written
                rows = [r for page, _ in pages for r in page]
                state = next((st for _, st in reversed(pages) if st is not None), None)
                try:
                    if rows:
                        self.rep.written += self.write(rows)
                    if state is not None:
                        self.cp.save(**state, written=self.rep.written)
                except BaseException as exc:  # raised on the fetching thread
                    self.error = exc
            if last:
                return

    def put(self, rows: list[tuple], state: dict | None) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put((rows, state))

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

