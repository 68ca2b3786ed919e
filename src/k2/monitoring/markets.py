"""Exchange health per venue and per symbol, and the live cross-venue spreads (ADR 0026).

Computed from what the feed already keeps (k2.feed.connection.ConnectionStats: per symbol the
count, the last trade's time and price; per connection the state, reconnects, rejects), the gap
ledger, the ingest-latency histogram and the venues' own status endpoints -- when asked (a
scrape, /healthz, `k2 status`, `k2 health`), never per trade.

A symbol is **stale** when its last trade is older than `stale_factor` times its own typical
interval between trades (and at least `stale_min_s`): a pair that trades every 10 minutes is
not stale after 60 s; BTC silent for 5 s may be. Trades are a Poisson process to a first
approximation, so with the default factor 10 a healthy pair looks stale with probability e^-10
(5e-5) per gap. The typical rate is an exponentially weighted mean (time constant 30 min) of the
trades counted between evaluations, started from the mean since the first trade; a symbol with
fewer than MIN_TRADES trades is "warming up" (never stale: its rate is not known yet).

States, worst first: a venue is **maintenance** (its status endpoint says so), **down** (no
connection up), **stale** (a symbol stale, or a connection without a message since it connected),
**degraded** (something to look at: price divergence, reconnect storm, rejects, ingest latency,
unfillable gaps or gaps open for over 10 min, maintenance announced, a connection down while
another is up) or **ok**. The first three
are unhealthy: `feed:<exchange>` turns red (/healthz 503, `k2 status` 1, `k2 health` 1).
A symbol is stale, **diverging** (its last price is more than `divergence_bps` from the median of
the other venues' recent last prices for the same pair; needs two other venues), warming or ok.
"""

from __future__ import annotations

import math
import statistics
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from k2.monitoring.health import Condition

MIN_TRADES = 5
RATE_TAU_S = 1800.0
#: a venue's last price counts for spreads and consensus while it is this recent (or, for a pair
#: that trades rarely, within its own stale threshold)
PRICE_FRESH_S = 60.0
RECONNECTS_WINDOW_S = 900.0
RECONNECTS_DEGRADED = 3
REJECTS_DEGRADED = 0.01  # share of frames since the last evaluation
LATENCY_P99_DEGRADED_S = 2.0
GAP_OPEN_DEGRADED_S = 600.0
UNHEALTHY = ("maintenance", "down", "stale")
_RANK = {"ok": 0, "degraded": 1, "stale": 2, "down": 3, "maintenance": 4}


@dataclass
class SymbolState:
    exchange: str
    symbol: str  # native
    canonical: str
    state: str = "ok"
    reasons: list[str] = field(default_factory=list)
    trades: int = 0
    age_s: float | None = None
    typical_interval_s: float | None = None
    stale_after_s: float | None = None
    divergence_bps: float | None = None


@dataclass
class VenueState:
    exchange: str
    state: str = "ok"
    reasons: list[str] = field(default_factory=list)
    venue_status: str = "n/a"  # what its status endpoint says: online, maintenance, ... n/a, unknown

    def worsen(self, state: str, reason: str) -> None:
        if _RANK[state] > _RANK[self.state]:
            self.state = state
        self.reasons.append(reason)


@dataclass
class Spread:
    canonical: str
    venue_a: str
    venue_b: str
    bps: float
    price_a: float
    price_b: float


@dataclass
class MarketReport:
    venues: dict[str, VenueState]
    symbols: list[SymbolState]
    spreads: list[Spread]
    at: float

    @property
    def healthy(self) -> bool:
        return not any(v.state in UNHEALTHY for v in self.venues.values())

    def conditions(self) -> list[Condition]:
        """`feed:<exchange>` per venue: red when the venue is unhealthy, with its reasons."""
        return [Condition(f"feed:{ex}", v.state not in UNHEALTHY,
                          "" if v.state not in UNHEALTHY else f"{v.state}: {'; '.join(v.reasons)}"[:400])
                for ex, v in self.venues.items()]

    def as_dict(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy, "at": self.at,
            "venues": {ex: {"state": v.state, "reasons": v.reasons, "venue_status": v.venue_status}
                       for ex, v in self.venues.items()},
            "symbols": [{"exchange": s.exchange, "symbol": s.symbol, "canonical": s.canonical, "state": s.state,
                         "reasons": s.reasons, "trades": s.trades, "age_s": _r(s.age_s),
                         "typical_interval_s": _r(s.typical_interval_s), "stale_after_s": _r(s.stale_after_s),
                         "divergence_bps": _r(s.divergence_bps)} for s in self.symbols],
            "spreads": [{"symbol": p.canonical, "venue_a": p.venue_a, "venue_b": p.venue_b, "bps": round(p.bps, 4),
                         "price_a": p.price_a, "price_b": p.price_b} for p in self.spreads],
        }


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _ago(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@dataclass
class _Rate:
    first_at: float
    count: int
    at: float
    rate: float  # trades per second


class MarketWatch:
    """Keeps the per-symbol typical rates and the per-venue counters between evaluations.
    `canonical(exchange, native)` names a symbol's pair (None: unknown, left out of spreads)."""

    def __init__(self, settings: Any, canonical: Callable[[str, str], str | None],
                 started_at: float | None = None):
        self.settings = settings
        self.canonical = canonical
        self.started_at = time.time() if started_at is None else started_at
        self._rates: dict[tuple[str, str], _Rate] = {}
        self._reconnects: dict[str, deque] = {}
        self._frames: dict[str, tuple[int, int]] = {}
        self._names: dict[tuple[str, str], str | None] = {}
        self._latency: dict[str, list[int]] = {}
        self._lock = threading.Lock()  # evaluated from the endpoint's threads and the loop

    def _canonical(self, ex: str, sym: str) -> str | None:
        key = (ex, sym)
        if key not in self._names:
            try:
                self._names[key] = self.canonical(ex, sym)
            except Exception:
                self._names[key] = None
        return self._names[key]

    def _typical_rate(self, key: tuple[str, str], count: int, first_seen: float, now: float) -> float:
        r = self._rates.get(key)
        if r is None:
            elapsed = max(1.0, now - first_seen)
            r = self._rates[key] = _Rate(first_seen, count, now, count / elapsed)
            return r.rate
        dt = now - r.at
        if dt >= 1.0:
            a = 1.0 - math.exp(-dt / RATE_TAU_S)
            # before one time constant has passed, the mean since the first trade is the better guess
            if now - r.first_at < RATE_TAU_S:
                r.rate = count / max(1.0, now - r.first_at)
            else:
                r.rate += a * ((count - r.count) / dt - r.rate)
            r.count, r.at = count, now
        return r.rate

    def _latency_p99(self, ex: str, latency: dict[str, Any] | None, buckets: tuple[float, ...]) -> float | None:
        """p99 of the ingest latencies observed since the last evaluation (the histogram itself
        counts since the start, where a backfill's old trades would weigh forever)."""
        snap = (latency or {}).get(ex)
        if not snap:
            return None
        counts = list(snap[0])
        before = self._latency.get(ex) or [0] * len(counts)
        self._latency[ex] = counts
        delta = [a - b for a, b in zip(counts, before)]
        n = sum(delta)
        if n < 20:
            return None
        cumulative = 0
        for bound, c in zip((*buckets, math.inf), delta):
            cumulative += c
            if cumulative >= 0.99 * n:
                return bound
        return math.inf

    def evaluate(self, stats: Iterable[Any], exchanges: Iterable[str], now: float | None = None,
                 venue_status: dict[str, Any] | None = None, gaps: Iterable[Any] = (),
                 latency: dict[str, Any] | None = None, buckets: tuple[float, ...] = ()) -> MarketReport:
        with self._lock:
            return self._evaluate(list(stats), list(exchanges), time.time() if now is None else now,
                                  venue_status, list(gaps), latency, buckets)

    def _evaluate(self, stats: list[Any], exchanges: list[str], now: float, venue_status: dict[str, Any] | None,
                  gaps: list[Any], latency: dict[str, Any] | None, buckets: tuple[float, ...]) -> MarketReport:
        cfg = self.settings
        venues = {ex: VenueState(ex) for ex in exchanges}
        per_venue: dict[str, list[Any]] = {}
        for s in stats:
            venues.setdefault(s.exchange, VenueState(s.exchange))
            per_venue.setdefault(s.exchange, []).append(s)

        # -- symbols: staleness relative to their own rate ------------------------------------
        symbols: list[SymbolState] = []
        prices: dict[str, dict[str, tuple[float, SymbolState]]] = {}  # canonical -> venue -> (price, state)
        for s in stats:
            for sym in s.symbols:
                count = s.trades_by_symbol.get(sym, 0)
                st = SymbolState(s.exchange, sym, self._canonical(s.exchange, sym) or "", trades=count)
                last = s.last_trade_by_symbol.get(sym)
                if not s.connected:
                    st.state, st.reasons = "down", ["connection down"]
                elif last is None or count < MIN_TRADES:
                    st.state = "warming"
                    st.reasons = ["no trade yet" if last is None else f"{count} trades so far: rate not known yet"]
                if last is not None:
                    st.age_s = now - last
                    rate = self._typical_rate((s.exchange, sym), count, min(self.started_at, last), now)
                    if rate > 0:
                        st.typical_interval_s = 1.0 / rate
                        st.stale_after_s = max(cfg.stale_min_s, cfg.stale_factor / rate)
                    if st.state == "ok" and st.stale_after_s is not None and st.age_s > st.stale_after_s:
                        st.state = "stale"
                        st.reasons.append(f"no trade for {_ago(st.age_s)}, typically one every "
                                          f"{_ago(st.typical_interval_s or 0)} (stale after {_ago(st.stale_after_s)})")
                    price_text = s.last_price_by_symbol.get(sym)
                    fresh = max(PRICE_FRESH_S, st.stale_after_s or 0.0)
                    if st.canonical and price_text and s.connected and st.age_s <= fresh:
                        try:
                            p = float(price_text)
                        except ValueError:
                            p = 0.0
                        if p > 0:
                            prices.setdefault(st.canonical, {})[s.exchange] = (p, st)
                symbols.append(st)

        # -- divergence from the other venues' consensus, and the spreads ---------------------
        spreads: list[Spread] = []
        for canonical, by_venue in prices.items():
            names = sorted(by_venue)
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    pa, pb = by_venue[a][0], by_venue[b][0]
                    spreads.append(Spread(canonical, a, b, (pb / pa - 1.0) * 10_000, pa, pb))
            if len(names) < 3:
                continue
            for ex, (p, st) in by_venue.items():
                median = statistics.median(q for other, (q, _) in by_venue.items() if other != ex)
                st.divergence_bps = (p / median - 1.0) * 10_000
                if abs(st.divergence_bps) > cfg.divergence_bps and st.state in ("ok", "warming"):
                    st.state = "diverging"
                    st.reasons.append(f"last price {p:g} is {st.divergence_bps:+.1f} bp from the other venues' "
                                      f"median {median:g}")

        # -- venues -----------------------------------------------------------------------------
        unfillable: dict[str, int] = {}
        waiting: dict[str, int] = {}  # gaps open for longer than GAP_OPEN_DEGRADED_S
        for g in gaps:
            state = getattr(g, "state", "")
            if state == "unfillable":
                unfillable[g.exchange] = unfillable.get(g.exchange, 0) + 1
            elif state == "open" and now - getattr(g, "detected_us", now * 1e6) / 1e6 > GAP_OPEN_DEGRADED_S:
                waiting[g.exchange] = waiting.get(g.exchange, 0) + 1
        for ex, v in venues.items():
            conns = per_venue.get(ex, [])
            reading = (venue_status or {}).get(ex)
            if reading is not None:
                status = getattr(reading, "status", None)
                if status is None:
                    v.venue_status = "unknown"
                    if getattr(reading, "error", ""):
                        v.reasons.append(f"status endpoint unreadable: {reading.error}")
                else:
                    v.venue_status = status.state
                    if status.state == "maintenance":
                        v.worsen("maintenance", f"the venue reports maintenance{f' ({status.detail})' if status.detail else ''}")
                    elif status.state in ("limited", "scheduled"):
                        v.worsen("degraded", f"the venue reports {status.state}: {status.detail}")
            up = [c for c in conns if c.connected]
            if not conns:
                v.worsen("down", "no connection")
            elif not up:
                errs = "; ".join(f"{c.connection} down{f': {c.last_error}' if c.last_error else ''}" for c in conns)
                v.worsen("down", errs[:300])
            elif len(up) < len(conns):
                v.worsen("degraded", ", ".join(f"{c.connection} down" for c in conns if not c.connected))
            for c in up:  # (a connection silent past its watchdog is cut and reconnected by the feed)
                if c.last_message_at is None and now - (c.connected_since or now) > 30.0:
                    v.worsen("stale", f"{c.connection} has had no message since it connected")
            stale = [s for s in symbols if s.exchange == ex and s.state == "stale"]
            if stale:
                v.worsen("stale", "stale: " + ", ".join(f"{s.symbol} ({s.reasons[-1]})" for s in stale[:3])
                         + (f" and {len(stale) - 3} more" if len(stale) > 3 else ""))
            diverging = [s for s in symbols if s.exchange == ex and s.state == "diverging"]
            if diverging:
                v.worsen("degraded", "price divergence: " + ", ".join(
                    f"{s.symbol} {s.divergence_bps:+.1f} bp" for s in diverging[:3]))
            total_reconnects = sum(c.reconnects for c in conns)
            hist = self._reconnects.setdefault(ex, deque())
            hist.append((now, total_reconnects))
            while len(hist) > 1 and hist[0][0] < now - RECONNECTS_WINDOW_S:
                hist.popleft()
            recent = total_reconnects - hist[0][1]
            if recent >= RECONNECTS_DEGRADED:
                v.worsen("degraded", f"{recent} reconnects in the last {RECONNECTS_WINDOW_S / 60:.0f} min")
            frames = sum(c.frames for c in conns)
            rejects = sum(c.rejects for c in conns)
            f0, r0 = self._frames.get(ex, (0, 0))
            self._frames[ex] = (frames, rejects)
            if frames > f0 and (rejects - r0) / (frames - f0) > REJECTS_DEGRADED:
                v.worsen("degraded", f"{rejects - r0} of {frames - f0} frames rejected since the last check")
            if unfillable.get(ex):
                v.worsen("degraded", f"{unfillable[ex]} trade gaps could not be backfilled")
            if waiting.get(ex):
                v.worsen("degraded", f"{waiting[ex]} trade gaps waiting for backfill for over "
                                     f"{GAP_OPEN_DEGRADED_S / 60:.0f} min")
            p99 = self._latency_p99(ex, latency, buckets)
            if p99 is not None and p99 > LATENCY_P99_DEGRADED_S:
                v.worsen("degraded", f"ingest latency p99 {p99:.1f} s")
        return MarketReport(venues, symbols, spreads, now)
