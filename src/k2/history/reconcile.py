"""`k2 reconcile`: K2's candles compared with the venue's own, window by window, and holes repaired.

`k2 validate` proves gold equals a recomputation from silver; it cannot see a trade the feed
never received. The venue's candles are computed from the venue's trades: equal counts and
volumes per window prove K2 holds them all (ADR 0021 says what it proves and what it cannot).

Per window, on every field both sides carry (the adapter's `candles.fields`):
  match        every field equal; open/high/low/close/volume/count/taker-buy volume exactly,
               quote volume and VWAP after rounding K2's exact value to the decimals the venue
               printed (half-even; the venue's documented rounding)
  missing      the venue counts more trades (or, without a count, more volume) than K2 holds:
               a hole, entered in the gaps ledger; `--repair` backfills it over REST and checks
               the window again
  extra        K2 holds more than the venue: never expected, shown loudly
  venue        a documented venue-side difference, its cause named (a derived value one unit
               off in the venue's last printed decimal: the venue rounds differently)
  unexplained  anything else (equal counts and volumes, different prices)

The venue is asked politely (its documented limit, `Pacer` and the 429/418 handling of
k2 backfill); an error stops that symbol with one line and keeps what was checked before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from decimal import ROUND_HALF_EVEN, Decimal, localcontext
from typing import Callable

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import CANDLE_INTERVAL_S, ExchangeAdapter
from k2.history.backfill import SAFETY, Backfill, Pacer, RateLimited, http_get
from k2.rejects import now_us
from k2.warehouse import stored_query

VERDICTS = ("match", "missing", "extra", "venue", "unexplained")
#: values K2 derives from sums (compared after rounding to the venue's printed decimals)
DERIVED = ("quote_volume", "vwap")
VIEWS = {"1m": "ohlcv_1m", "1h": "ohlcv_1h", "1d": "ohlcv_1d"}


@dataclass
class Window:
    start_us: int
    verdict: str
    cause: str = ""
    fields: list[str] = field(default_factory=list)
    k2: dict = field(default_factory=dict)
    venue: dict = field(default_factory=dict)


@dataclass
class SymbolReport:
    exchange: str
    symbol: str
    canonical: str
    interval: str
    since_us: int
    until_us: int
    windows: list[Window] = field(default_factory=list)
    requests: int = 0
    throttled: int = 0
    seconds: float = 0.0
    error: str = ""  # why checking stopped early (the windows before it are kept)
    not_served: str = ""  # part of the range the venue does not serve
    repaired: int = 0  # trades written by --repair

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(VERDICTS, 0)
        for w in self.windows:
            out[w.verdict] += 1
        return out

    @property
    def unexplained(self) -> int:
        c = self.counts()
        return c["missing"] + c["extra"] + c["unexplained"]

    def summary(self) -> str:
        c = self.counts()
        line = (f"{self.exchange} {self.symbol} {self.interval} {_iso(self.since_us)} .. {_iso(self.until_us)}: "
                f"{len(self.windows)} windows with trades: {c['match']} match, {c['missing']} missing trades, "
                f"{c['extra']} extra trades, {c['venue']} venue-side, {c['unexplained']} unexplained "
                f"({self.requests} requests, {self.throttled} rate-limit answers, {self.seconds:.1f} s)")
        if self.repaired:
            line += f"; --repair wrote {self.repaired} trades"
        return line

    def details(self, limit: int = 20) -> list[str]:
        """One line per window that is not a match (the first `limit`, then how many more)."""
        bad = [w for w in self.windows if w.verdict != "match"]
        out = []
        for w in bad[:limit]:
            what = ", ".join(f"{f} k2 {w.k2.get(f, '-')} venue {w.venue.get(f, '-')}" for f in w.fields)
            label = {"missing": "MISSING TRADES", "extra": "EXTRA TRADES", "venue": "venue-side",
                     "unexplained": "UNEXPLAINED"}[w.verdict]
            out.append(f"  {_iso(w.start_us)} {label}: {what}" + (f" ({w.cause})" if w.cause else ""))
        if len(bad) > limit:
            out.append(f"  ... and {len(bad) - limit} more: SELECT * FROM k2.reconciliation FINAL WHERE "
                       f"exchange = '{self.exchange}' AND symbol = '{self.symbol}' AND verdict != 'match'")
        return out


def _iso(us: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(us / 1e6))


def _dec(text: str) -> Decimal:
    return Decimal(text)


def _round_like(value: Decimal, venue_text: str) -> Decimal:
    """`value` rounded half-even to the decimals `venue_text` shows."""
    exponent = Decimal(venue_text).as_tuple().exponent
    if not isinstance(exponent, int) or exponent >= 0:
        return value.quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    return value.quantize(Decimal(1).scaleb(exponent), rounding=ROUND_HALF_EVEN)


def _significant(value: Decimal, digits: int = 15) -> Decimal:
    if not value:
        return value
    return value.quantize(Decimal(1).scaleb(value.adjusted() - digits + 1), rounding=ROUND_HALF_EVEN)


def compare(fields: tuple[str, ...], k2: dict | None, venue: dict | None, floats: bool = False) -> Window | None:
    """The verdict of one window (None: neither side has a trade in it). `floats`: the venue prints
    JSON numbers, which keep 15 significant digits (an IEEE double); a difference past them is the
    venue's, named as such."""
    venue_trades = venue is not None and (Decimal(venue.get("volume", "0")) > 0
                                          or int(venue.get("trade_count", "0") or 0) > 0)
    if k2 is None and not venue_trades:
        return None
    start = (k2 or venue or {})["start_us"]
    k2v = {f: k2[f] for f in fields if k2 is not None and f in k2}
    vv = {f: venue[f] for f in fields if venue is not None and f in venue}
    if k2 is None:
        return Window(start, "missing", "K2 holds no trade in this window", ["trade_count" if "trade_count" in fields
                                                                          else "volume"], {}, vv)
    if not venue_trades:
        return Window(start, "extra", "the venue has no candle for this window", ["trade_count"], k2v, vv)
    differ, rounding_only, float_only = [], True, True
    for f in fields:
        a, b = _dec(k2v[f]), _dec(vv[f])
        if f in DERIVED:
            a = _round_like(a, vv[f])
        if a != b:
            differ.append(f)
            ulp = Decimal(1).scaleb(Decimal(vv[f]).as_tuple().exponent)  # type: ignore[arg-type]
            if f not in DERIVED or abs(a - b) > ulp:
                rounding_only = False
            if not floats or _significant(a) != _significant(b):
                float_only = False
    if not differ:
        return Window(start, "match", "", [], k2v, vv)
    if float_only:
        return Window(start, "venue", "float: the venue prints JSON numbers, exact to 15 significant digits",
                      differ, k2v, vv)
    dv = _dec(vv["volume"]) - _dec(k2v["volume"])
    dn = int(vv["trade_count"]) - int(k2v["trade_count"]) if "trade_count" in fields else None
    more = dn > 0 if dn is not None else dv > 0
    fewer = dn < 0 if dn is not None else dv < 0
    if more and dv >= 0:
        return Window(start, "missing", f"the venue counts {dn if dn is not None else dv} more", differ, k2v, vv)
    if fewer and dv <= 0:
        return Window(start, "extra", f"K2 holds {-dn if dn is not None else -dv} more than the venue", differ, k2v, vv)
    if rounding_only:
        return Window(start, "venue", "rounding: a derived value one unit off in the venue's last printed decimal",
                      differ, k2v, vv)
    return Window(start, "unexplained", "same trades counted, different values", differ, k2v, vv)


class Reconciler:
    """Reconcile one exchange: fetch the venue's candles, read K2's, compare, store, repair."""

    def __init__(self, adapter: ExchangeAdapter, rest_url: str, wh, *, fetch: Callable[[str], bytes] = http_get,
                 rate: float | None = None, max_wait_s: float = 120.0,
                 progress: Callable[[str], None] | None = None, state_dir=None):
        if adapter.candles is None:
            raise K2Error(f"k2 reconcile does not read {adapter.name}'s candles yet")
        self.adapter, self.facts, self.wh = adapter, adapter.candles, wh
        self.rest_url = rest_url.rstrip("/")
        self.fetch = fetch
        self.pacer = Pacer(rate or self.facts.requests_per_s * SAFETY)
        self.max_wait_s = max_wait_s
        self.progress = progress
        self.state_dir = state_dir
        self.requests = self.throttled = 0

    # -- the venue ----------------------------------------------------------------------------------
    def _get(self, path: str) -> bytes:
        for attempt in range(4):
            self.pacer.wait()
            self.requests += 1
            try:
                return self.fetch(self.rest_url + path)
            except RateLimited as exc:
                self.throttled += 1
                if exc.status == 418 or exc.retry_after > self.max_wait_s:
                    raise K2Error(f"{self.adapter.name} refuses more requests for {exc.retry_after:.0f} s "
                                  f"(HTTP {exc.status}); run the same command later") from None
                time.sleep(exc.retry_after)
                self.pacer.slow_down()
            except (OSError, ConnectionError) as exc:
                if attempt == 3:
                    raise K2Error(f"{self.adapter.name} candles: {str(exc)[:200]}") from None
                time.sleep(min(2.0 ** attempt, 10.0))
        raise K2Error(f"{self.adapter.name}: still rate limited after 4 tries; run the same command later")

    def venue_candles(self, native: str, interval: str, since_us: int, until_us: int,
                      rep: SymbolReport) -> tuple[dict[int, dict], int]:
        """The venue's candles of windows in [since_us, until_us), and how far they were read (an
        error stops early: rep.error says why, the windows before are kept)."""
        step = CANDLE_INTERVAL_S[interval] * 1_000_000
        out: dict[int, dict] = {}
        cursor = since_us
        try:
            while cursor < until_us:
                body = self._get(self.adapter.candles_path(native, interval, cursor, until_us))
                try:
                    rows = self.adapter.parse_candles(body, interval)
                except (ValueError, TypeError, IndexError, KeyError, AttributeError) as exc:
                    raise FrameError(f"unexpected candles answer: {str(exc)[:200]}") from None
                inside = [r for r in rows if cursor <= r["start_us"] < until_us]
                for r in inside:
                    out[r["start_us"]] = r
                # a full page ends at its last window; a shorter one covered all `page_windows`
                # windows from the cursor (a venue may leave windows without trades out)
                if len(rows) >= self.facts.page_windows and inside:
                    cursor = inside[-1]["start_us"] + step
                else:
                    cursor += self.facts.page_windows * step
        except (K2Error, FrameError) as exc:
            rep.error = f"{self.adapter.name} {native}: {exc}"
            return out, cursor
        return out, until_us

    # -- K2 -----------------------------------------------------------------------------------------
    def k2_candles(self, canonical: str, interval: str, since_us: int, until_us: int) -> dict[int, dict]:
        rows = self.wh.rows(stored_query("reconcile_gold"), {
            "view": VIEWS[interval], "exchange": self.adapter.name, "symbol": canonical,
            "since": since_us // 1_000_000, "until": until_us // 1_000_000})
        out = {}
        names = ("open", "high", "low", "close", "volume", "quote_volume", "trade_count", "buy_volume")
        for r in rows:
            c = dict(zip(names, r[1:]))
            c["start_us"] = int(r[0]) * 1_000_000
            if "vwap" in self.facts.fields:
                with localcontext() as ctx:
                    ctx.prec = 80
                    c["vwap"] = str(Decimal(c["quote_volume"]) / Decimal(c["volume"]))
            out[c["start_us"]] = c
        return out

    # -- one symbol ---------------------------------------------------------------------------------
    def canonical(self, native: str) -> str:
        found = self.adapter.canonical_symbol(native)
        if found:
            return found
        known = self.wh.scalar(stored_query("native_to_canonical"), {"native": native})
        if not known:
            raise K2Error(f"{self.adapter.name}: unknown symbol {native!r} (not in K2's instrument list)")
        return known

    def check(self, native: str, interval: str, since_us: int, until_us: int) -> SymbolReport:
        if interval not in self.facts.intervals:
            raise K2Error(f"{self.adapter.name} candles come in {', '.join(self.facts.intervals)}, not {interval}")
        step = CANDLE_INTERVAL_S[interval] * 1_000_000
        started = time.perf_counter()
        canonical = self.canonical(native)
        since_us = since_us // step * step
        closed = now_us() // step * step  # only closed windows: the current one is still trading
        until_us = min((until_us + step - 1) // step * step, closed)
        rep = SymbolReport(self.adapter.name, native, canonical, interval, since_us, until_us)
        if self.facts.reaches_back_windows:
            oldest = closed - self.facts.reaches_back_windows * step + step
            if since_us < oldest:
                rep.not_served = (f"{self.adapter.name} serves only its {self.facts.reaches_back_windows} newest "
                                  f"{interval} candles: windows before {_iso(oldest)} not checked")
                since_us = rep.since_us = min(oldest, until_us)
        if until_us <= since_us:
            rep.seconds = time.perf_counter() - started
            return rep
        r0, t0 = self.requests, self.throttled
        venue, read_until = self.venue_candles(native, interval, since_us, until_us, rep)
        k2 = self.k2_candles(canonical, interval, since_us, read_until)
        for start in sorted(set(venue) | set(k2)):
            if start >= read_until:
                continue
            w = compare(self.facts.fields, k2.get(start), venue.get(start), self.facts.floats)
            if w is not None:
                rep.windows.append(w)
        rep.requests, rep.throttled = self.requests - r0, self.throttled - t0
        rep.seconds = time.perf_counter() - started
        self.store(rep)
        return rep

    # -- storing ------------------------------------------------------------------------------------
    def store(self, rep: SymbolReport) -> None:
        checked = now_us()
        rows = [{"exchange": rep.exchange, "symbol": rep.symbol, "canonical_symbol": rep.canonical,
                 "interval": rep.interval, "start_s": w.start_us // 1_000_000, "verdict": w.verdict, "cause": w.cause,
                 "fields": w.fields, "k2": {k: v for k, v in w.k2.items() if k != "start_us"},
                 "venue": {k: v for k, v in w.venue.items() if k != "start_us"}, "checked_us": checked}
                for w in rep.windows]
        for i in range(0, len(rows), 2000):
            self.wh.execute(stored_query("reconcile_insert"),
                            {"rows": msgspec.json.encode(rows[i:i + 2000]).decode()})
        step = CANDLE_INTERVAL_S[rep.interval] * 1_000_000
        for w in rep.windows:
            if w.verdict == "missing":
                self._ledger(rep, w.start_us, w.start_us + step - 1, "open", 0,
                             f"k2 reconcile {rep.interval}: {w.cause}; k2 reconcile --repair fills it", checked)

    def _ledger(self, rep: SymbolReport, start_us: int, end_us: int, state: str, recovered: int, detail: str,
                detected: int) -> None:
        self.wh.execute(stored_query("gap_upsert"), {
            "gap_id": f"reconcile:{rep.exchange}:{rep.symbol}:{start_us}", "exchange": rep.exchange,
            "symbol": rep.symbol, "kind": "time", "start": start_us, "end": end_us, "state": state,
            "recovered": recovered, "detail": detail, "detected": detected, "updated": max(now_us(), detected + 1), "since": -1})

    # -- repairing ----------------------------------------------------------------------------------
    def repair(self, rep: SymbolReport, write: Callable[[list[tuple]], int]) -> SymbolReport:
        """Backfill every missing window over REST (adjacent ones as one range), mark the holes
        filled, and check the range again. Returns the report of the second check."""
        step = CANDLE_INTERVAL_S[rep.interval] * 1_000_000
        starts = sorted(w.start_us for w in rep.windows if w.verdict == "missing")
        if not starts:
            return rep
        if self.adapter.rest_history is None:
            raise K2Error(f"{rep.exchange} serves no range of its trade history over REST: the missing windows "
                          "cannot be backfilled")
        ranges: list[list[int]] = []
        for s in starts:
            if ranges and ranges[-1][1] == s:
                ranges[-1][1] = s + step
            else:
                ranges.append([s, s + step])
        written = 0
        fetched: dict[int, int] = {}  # window start -> trades fetched over REST

        def tally(rows: list[tuple]) -> int:
            for row in rows:
                t = self.adapter.row_time_us(row)
                fetched[t - t % step] = fetched.get(t - t % step, 0) + 1
            return write(rows)

        for a, b in ranges:
            bf = Backfill(self.adapter, self.rest_url, tally, Path(self.state_dir or "."), fetch=self.fetch,
                          progress=self.progress)
            r = bf.run(rep.symbol, a, b, until_label=f"reconcile-{b}")
            written += r.written
            for s in range(a, b, step):
                if s in starts:
                    self._ledger(rep, s, s + step - 1, "filled", fetched.get(s, 0),
                                 f"k2 reconcile --repair: {fetched.get(s, 0)} trades of this window fetched over REST "
                                 f"({r.written} new in the range)", now_us())
        again = self.check(rep.symbol, rep.interval, rep.since_us, rep.until_us)
        again.repaired = written
        return again

    def last_by_exchange(self) -> list[list]:
        return self.wh.rows(stored_query("reconcile_last"))


def reconcile_symbols(rec: Reconciler, natives: list[str], interval: str, since_us: int, until_us: int,
                      repair_write: Callable[[list[tuple]], int] | None,
                      say: Callable[[str, bool], None]) -> int:
    """`k2 reconcile` over several symbols (here or in the running k2 run that holds the data dir):
    `say(line, is_error)` prints; returns the exit status (1 when a window is not explained or part
    of the range could not be checked)."""
    status = 0
    name = rec.adapter.name
    for native in natives:
        rep = rec.check(native, interval, since_us, until_us)
        if repair_write is not None and rep.counts()["missing"]:
            say(rep.summary(), False)
            say(f"{name} {native}: repairing {rep.counts()['missing']} windows with missing trades over REST, "
                "then checking again", False)
            try:
                rep = rec.repair(rep, repair_write)
            except K2Error as exc:  # this symbol's repair failed: say so, keep the others going
                say(f"k2: error: {name} {native}: --repair: {exc}", True)
                status = 1
        say(rep.summary(), False)
        for line in rep.details():
            say(line, False)
        if rep.not_served:
            say(f"k2: warning: {rep.not_served}", True)
            status = 1
        if rep.error:
            say(f"k2: error: {rep.error} (the windows before it were checked and stored)", True)
            status = 1
        if rep.unexplained:
            status = 1
    return status


def reconcile_job(wh, transport, req: dict) -> dict:
    """`k2 reconcile` handed to the running k2 run (POST /api/history, job "reconcile"): repairs are
    written through the live transport's writer. Returns the lines to print and the exit status."""
    from k2.exchanges import get_adapter

    adapter = get_adapter(req["exchange"])
    rec = Reconciler(adapter, req["rest_url"], wh, rate=req.get("max_rps"), state_dir=req.get("state_dir"))
    lines: list[list] = []
    write = (lambda rows: transport.write_now(adapter, rows, "rest")) if req.get("repair") else None
    status = reconcile_symbols(rec, list(req["symbols"]), req["interval"], int(req["since_us"]), int(req["until_us"]),
                               write, lambda line, err: lines.append([line, err]))
    return {"lines": lines, "status": status}
