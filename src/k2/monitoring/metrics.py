"""Prometheus text exposition of the running pipeline (no client library needed: the values already
live in the feed's and writer's stats objects; the one thing measured here is the ingest-latency
histogram, fed by the writers after each successful insert).

Metric names are a contract (alerts in deploy/prometheus/alerts.yml and the Grafana dashboard use
them; docs/operations/monitoring.md lists them):

    k2_trades_received_total{exchange,symbol}      counter  trades from the exchange (after de-duplication)
    k2_trades_written_total{exchange}              counter  trades written to bronze
    k2_feed_connected{exchange,connection}         gauge    1 when the WebSocket is up
    k2_reconnects_total{exchange}                  counter  connections that were up and went down
    k2_connect_failures_total{exchange}            counter  connection attempts that failed
    k2_feed_duplicates_dropped_total{exchange}     counter  replays the feed dropped (the run summary's "duplicates")
    k2_last_trade_age_seconds{exchange,symbol}     gauge    seconds since the symbol's last trade
    k2_ingest_latency_seconds{exchange}            histogram  insert time - exchange trade time
    k2_rejects_total{exchange,reason}              counter  frames kept in the rejects table, by reason class
    k2_gaps_total{exchange,state}                  counter  gaps: detected, filled, unfillable
    k2_gaps_open{exchange}                         gauge    gaps not yet filled
    k2_sink_lag_messages{topic,partition}          gauge    Kafka consumer lag (k2 run --kafka, k2 sink)
    k2_health{condition}                           gauge    1 when the named condition holds (k2.monitoring.health)
    k2_up                                          gauge    1 when every condition holds (as /healthz)
    k2_venue_healthy{exchange}                     gauge    1 unless the venue is down, stale or in maintenance (k2.monitoring.markets)
    k2_venue_state{exchange,state}                 gauge    1 for the venue's state: ok, degraded, stale, down, maintenance
    k2_venue_maintenance{exchange}                 gauge    1 while the venue's own status endpoint reports maintenance
    k2_symbol_stale{exchange,symbol}               gauge    1 when the symbol is silent for longer than its own rate allows
    k2_symbol_stale_ratio{exchange,symbol}         gauge    last trade age / stale threshold (>= 1: stale)
    k2_symbol_typical_interval_seconds{exchange,symbol}  gauge  the symbol's typical time between trades
    k2_price_divergence_bps{exchange,symbol}       gauge    last price vs the median of the other venues' (3+ venues)
    k2_spread_bps{symbol,venue_a,venue_b}          gauge    last-trade spread of venue_b over venue_a, basis points
"""

from __future__ import annotations

import bisect
import math
import os
import threading
import time
from collections import defaultdict
from typing import Any, Iterable, Mapping

#: upper bounds (seconds) of the ingest-latency histogram buckets; +Inf is implicit
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: reject reason classes (label values of k2_rejects_total{reason})
REJECT_CLASSES = ("malformed_frame", "invalid_field", "invalid_trade", "parser_error", "other")


# -- exposition format --------------------------------------------------------------------------
def _esc(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


def _sample(name: str, labels: Mapping[str, Any], value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {_num(value)}"
    return f"{name} {_num(value)}"


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, Any], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.extend(_sample(name, labels, value) for labels, value in samples)

    def histogram(self, name: str, help_text: str, hist: "Histogram", label: str) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} histogram")
        for key, (counts, total, n) in sorted(hist.snapshot().items()):
            cumulative = 0
            for bound, c in zip((*hist.buckets, math.inf), counts):
                cumulative += c
                le = "+Inf" if math.isinf(bound) else repr(bound)
                self.lines.append(_sample(f"{name}_bucket", {label: key, "le": le}, cumulative))
            self.lines.append(_sample(f"{name}_sum", {label: key}, round(total, 6)))
            self.lines.append(_sample(f"{name}_count", {label: key}, n))

    def render(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


# -- ingest latency -----------------------------------------------------------------------------
class Histogram:
    """Bucket counts per label value, updated by writer threads, read by the HTTP thread. Plain
    Python: observations arrive as bucket counts per batch (k2.monitoring.latency counts a
    batch's values in numpy), so the processes that only serve metrics never load numpy."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS):
        self.buckets = buckets
        self._lock = threading.Lock()
        self._data: dict[str, list] = {}  # key -> [counts (len(buckets)+1), sum, count]

    def add(self, key: str, counts: Iterable[int], total: float, n: int) -> None:
        """Add one batch: `counts[i]` observations in bucket i (the last is +Inf), their sum and count."""
        with self._lock:
            slot = self._data.get(key)
            if slot is None:
                slot = self._data[key] = [[0] * (len(self.buckets) + 1), 0.0, 0]
            slot[0] = [a + int(b) for a, b in zip(slot[0], counts)]
            slot[1] += total
            slot[2] += n

    def observe_many(self, key: str, values: Iterable[float]) -> None:
        """Add observations (seconds) one by one; a negative value (a clock a little behind the
        exchange's) counts as 0. Writers use k2.monitoring.latency.observe instead."""
        counts = [0] * (len(self.buckets) + 1)
        total, n = 0.0, 0
        for v in values:
            v = max(0.0, float(v))
            counts[bisect.bisect_left(self.buckets, v)] += 1
            total += v
            n += 1
        if n:
            self.add(key, counts, total, n)

    def snapshot(self) -> dict[str, tuple[list[int], float, int]]:
        with self._lock:
            return {k: (list(v[0]), v[1], v[2]) for k, v in self._data.items()}

    def quantile(self, key: str, q: float) -> float | None:
        """The bucket upper bound below which a fraction q of observations lie (like
        histogram_quantile without interpolation); None before any observation."""
        snap = self.snapshot().get(key)
        if not snap or not snap[2]:
            return None
        target, cumulative = q * snap[2], 0
        for bound, c in zip((*self.buckets, math.inf), snap[0]):
            cumulative += c
            if cumulative >= target:
                return bound
        return math.inf

    def reset(self) -> None:
        with self._lock:
            self._data.clear()


#: the process-wide ingest-latency histogram (one pipeline or sink per process)
INGEST_LATENCY = Histogram()


# -- rejects --------------------------------------------------------------------------------------
def reject_class(reason: str) -> str:
    """A few stable classes from a reject reason's text (the part before ':')."""
    head = reason.split(":", 1)[0].strip().lower()
    if head.startswith("malformed") or head.startswith("empty message"):
        return "malformed_frame"
    if head.startswith("parser error"):
        return "parser_error"
    if head.startswith("not a valid trade"):
        return "invalid_trade"
    if " is not " in head or head.startswith("side/") or " not " in head:
        return "invalid_field"
    return "other"


# -- process ------------------------------------------------------------------------------------
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def process_samples() -> dict[str, float]:
    """RSS bytes, CPU seconds and start time of this process (Prometheus' process_* names)."""
    out: dict[str, float] = {}
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        out["process_cpu_seconds_total"] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
        out["process_resident_memory_bytes"] = int(fields[21]) * _PAGE
        with open("/proc/stat", "rb") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith(b"btime"))
        out["process_start_time_seconds"] = btime + int(fields[19]) / _CLK_TCK
    except (OSError, IndexError, ValueError, StopIteration):
        import resource

        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["process_cpu_seconds_total"] = ru.ru_utime + ru.ru_stime
        out["process_resident_memory_bytes"] = ru.ru_maxrss * 1024  # peak, the best available here
    return out


# -- families shared by k2 run, k2 feed and k2 sink ---------------------------------------------
def _parse_tp(key: str) -> tuple[str, str]:
    """`topic[3]` -> (topic, "3")."""
    if key.endswith("]") and "[" in key:
        topic, _, part = key[:-1].rpartition("[")
        return topic, part
    return key, ""


def sink_lag_family(e: Exposition, stats: Any) -> None:
    """k2_sink_lag_messages{topic,partition} from a Kafka sink's stats (`lag`: "topic[p]" -> n)."""
    lag = getattr(stats, "lag", None)
    if lag is None:
        return
    e.family("k2_sink_lag_messages", "gauge", "Kafka consumer lag of the bronze sink (messages behind the end).",
             (({"topic": t, "partition": p}, n) for t, p, n in
              sorted((*_parse_tp(k), n) for k, n in lag.items())))


def writer_families(e: Exposition, stats: Any, hist: Histogram = INGEST_LATENCY) -> None:
    """Writer-side families: trades written, ingest latency, insert errors (any writer stats
    object with `written`, and optionally `insert_errors`, `batches`, `last_insert_s`)."""
    if stats is not None and getattr(stats, "written", None) is not None:
        e.family("k2_trades_written_total", "counter", "Trades written to bronze.",
                 (({"exchange": ex}, n) for ex, n in sorted(stats.written.items())))
        dup = getattr(stats, "duplicates", None)
        if dup is not None:
            e.family("k2_writer_duplicates_skipped_total", "counter",
                     "Rows bronze already held, skipped at insert (exactly-once key check).",
                     (({"exchange": ex}, n) for ex, n in sorted(dup.items())))
        for attr, name, kind, text in (
            ("insert_errors", "k2_writer_insert_errors_total", "counter", "Failed bronze inserts (retried)."),
            ("batches", "k2_writer_batches_total", "counter", "Insert batches written."),
            ("last_insert_s", "k2_writer_last_insert_seconds", "gauge", "Duration of the last insert batch."),
            ("rejects_written", "k2_writer_rejects_written_total", "counter", "Rejects written to the rejects table."),
        ):
            value = getattr(stats, attr, None)
            if isinstance(value, (int, float)):
                e.family(name, kind, text, [({}, value)])
    e.histogram("k2_ingest_latency_seconds",
                "Ingest latency: insert time minus the exchange's trade time, per trade.", hist, "exchange")


def health_families(e: Exposition, health: Any) -> None:
    """k2_health{condition} and k2_up from a k2.monitoring.health.Health."""
    e.family("k2_health", "gauge", "1 when the named health condition holds; /healthz and k2 status say why "
             "when it does not.", (({"condition": c.name}, int(c.ok)) for c in health.conditions))
    e.family("k2_up", "gauge", "1 when every health condition holds (as /healthz).", [({}, int(health.ok))])


def process_families(e: Exposition) -> None:
    from k2 import __version__

    e.family("k2_info", "gauge", "K2 build information.", [({"version": __version__}, 1)])
    helps = {"process_cpu_seconds_total": "User and system CPU time of this process.",
             "process_resident_memory_bytes": "Resident memory of this process.",
             "process_start_time_seconds": "Start time of this process (epoch seconds)."}
    for name, value in process_samples().items():
        kind = "counter" if name.endswith("_total") else "gauge"
        e.family(name, kind, helps.get(name, name), [({}, value)])


class GapCounter:
    """Monotonic gap counts from the feed runtime's list of recent gaps (objects with `gap_id`,
    `exchange` and `state` open | filled | unfillable): every gap ever seen is remembered by id,
    so the counts survive the runtime trimming its list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict[str, tuple[str, str]] = {}  # gap id -> (exchange, state)

    def update(self, gaps: Iterable[Any]) -> None:
        with self._lock:
            for g in list(gaps):
                key = getattr(g, "gap_id", None) or id(g)
                self._state[key] = (str(getattr(g, "exchange", "")), str(getattr(g, "state", "open")))

    def totals(self) -> tuple[dict[tuple[str, str], int], dict[str, int]]:
        """({(exchange, detected|filled|unfillable): n}, {exchange: open gaps})"""
        counts: dict[tuple[str, str], int] = defaultdict(int)
        open_: dict[str, int] = defaultdict(int)
        with self._lock:
            for ex, state in self._state.values():
                counts[(ex, "detected")] += 1
                if state == "open":
                    open_[ex] += 1
                else:
                    counts[(ex, state)] += 1
        return dict(counts), dict(open_)


def gap_families(e: Exposition, pipeline, exchanges: list[str]) -> None:
    """k2_gaps_total{exchange,state} (state: detected, filled, unfillable; monotonic) and
    k2_gaps_open{exchange}, from the runtime's gap list (or a `gap_counts()` the pipeline offers);
    zeros when the pipeline tracks no gaps."""
    counts: dict[tuple[str, str], float] = {}
    open_: dict[str, float] = {}
    runtime = getattr(pipeline, "runtime", None)
    fn = getattr(pipeline, "gap_counts", None) or getattr(runtime, "gap_counts", None)
    if callable(fn):
        try:
            raw = fn() or {}
        except Exception:
            raw = {}
        for k, v in raw.items():
            pairs = [(k, v)] if isinstance(k, tuple) else \
                [((k, st), n) for st, n in v.items()] if isinstance(v, Mapping) else []
            for (ex, st), n in pairs:
                if st == "open":
                    open_[str(ex)] = n
                else:
                    counts[(str(ex), str(st))] = n
    elif isinstance(getattr(runtime, "gaps", None), list):
        counter = pipeline.__dict__.setdefault("_k2_gap_counter", GapCounter())
        counter.update(runtime.gaps)
        counts, open_ = counter.totals()
    for ex in exchanges:
        for st in ("detected", "filled", "unfillable"):
            counts.setdefault((ex, st), 0)
        open_.setdefault(ex, 0)
    e.family("k2_gaps_total", "counter", "Trade-stream gaps found by the feed (detected), and how they ended "
             "(filled by backfill, unfillable).",
             (({"exchange": ex, "state": st}, n) for (ex, st), n in sorted(counts.items())))
    e.family("k2_gaps_open", "gauge", "Gaps found and not yet filled (backfill pending).",
             (({"exchange": ex}, n) for ex, n in sorted(open_.items())))


def market_families(e: Exposition, report: Any) -> None:
    """Venue and symbol health and live spreads from a k2.monitoring.markets.MarketReport."""
    states = ("ok", "degraded", "stale", "down", "maintenance")
    venues = sorted(report.venues.items())
    e.family("k2_venue_healthy", "gauge", "1 unless the venue is down, stale or in maintenance (k2 health says why).",
             (({"exchange": ex}, int(v.state not in ("down", "stale", "maintenance"))) for ex, v in venues))
    e.family("k2_venue_state", "gauge", "1 for the venue's current health state.",
             (({"exchange": ex, "state": st}, int(v.state == st)) for ex, v in venues for st in states))
    e.family("k2_venue_maintenance", "gauge", "1 while the venue's own status endpoint reports maintenance.",
             (({"exchange": ex}, int(v.venue_status == "maintenance")) for ex, v in venues))
    syms = sorted(report.symbols, key=lambda s: (s.exchange, s.symbol))
    e.family("k2_symbol_stale", "gauge", "1 when the symbol has been silent longer than its own trade rate allows.",
             (({"exchange": s.exchange, "symbol": s.symbol}, int(s.state == "stale")) for s in syms))
    e.family("k2_symbol_stale_ratio", "gauge", "Seconds since the last trade over the symbol's stale threshold "
             "(1 or more: stale).", (({"exchange": s.exchange, "symbol": s.symbol}, round(s.age_s / s.stale_after_s, 4))
                                     for s in syms if s.age_s is not None and s.stale_after_s))
    e.family("k2_symbol_typical_interval_seconds", "gauge", "The symbol's typical time between trades.",
             (({"exchange": s.exchange, "symbol": s.symbol}, round(s.typical_interval_s, 4))
              for s in syms if s.typical_interval_s is not None))
    e.family("k2_price_divergence_bps", "gauge", "Last price against the median of the other venues' last prices "
             "for the same pair, basis points (pairs on 3 or more venues).",
             (({"exchange": s.exchange, "symbol": s.symbol}, round(s.divergence_bps, 4))
              for s in syms if s.divergence_bps is not None))
    e.family("k2_spread_bps", "gauge", "Last-trade price of venue_b over venue_a for the same pair, basis points "
             "(a signal from trades: no quotes, fees or transfer time).",
             (({"symbol": p.canonical, "venue_a": p.venue_a, "venue_b": p.venue_b}, round(p.bps, 4))
              for p in sorted(report.spreads, key=lambda p: (p.canonical, p.venue_a, p.venue_b))))


# -- the pipeline (k2 run, k2 feed, k2 run --kafka) ----------------------------------------------
RECONCILE_VERDICTS = ("match", "missing", "extra", "venue", "unexplained")


def reconcile_family(e: Exposition, pipeline, exchanges: list[str]) -> None:
    """k2_reconcile_windows_total{exchange,verdict}: windows this process compared with the
    venue's candles (K2_RECONCILE), by their final verdict (after a repair)."""
    if getattr(pipeline, "store", True) is None:  # k2 feed: no warehouse, no candles to compare
        return
    counts = getattr(pipeline, "reconcile_counts", None) or {}
    keys = {(ex, v) for ex in exchanges for v in RECONCILE_VERDICTS} | set(counts)
    e.family("k2_reconcile_windows_total", "counter",
             "Candle windows compared with the venue's own (K2_RECONCILE), by verdict: match, missing, extra, "
             "venue (a documented venue-side difference), unexplained.",
             (({"exchange": ex, "verdict": v}, counts.get((ex, v), 0)) for ex, v in sorted(keys)))


def render(pipeline) -> bytes:
    now = time.time()
    stats = pipeline.runtime.connection_stats()
    exchanges = list(getattr(pipeline, "exchanges", None) or sorted({s.exchange for s in stats}))
    e = Exposition()

    received: dict[tuple[str, str], int] = defaultdict(int)
    last_trade: dict[tuple[str, str], float] = {}
    reconnects: dict[str, int] = {ex: 0 for ex in exchanges}
    connect_failures: dict[str, int] = {ex: 0 for ex in exchanges}
    rejects_total: dict[str, int] = {ex: 0 for ex in exchanges}
    duplicates: dict[str, int] = {ex: 0 for ex in exchanges}
    for s in stats:
        for sym, n in s.trades_by_symbol.items():
            received[(s.exchange, sym)] += n
        for sym, t in s.last_trade_by_symbol.items():
            last_trade[(s.exchange, sym)] = max(t, last_trade.get((s.exchange, sym), 0.0))
        reconnects[s.exchange] = reconnects.get(s.exchange, 0) + s.reconnects
        connect_failures[s.exchange] = connect_failures.get(s.exchange, 0) + s.connect_failures
        rejects_total[s.exchange] = rejects_total.get(s.exchange, 0) + s.rejects
        duplicates[s.exchange] = duplicates.get(s.exchange, 0) + s.duplicates

    e.family("k2_trades_received_total", "counter", "Trades received from the exchange (after de-duplication).",
             (({"exchange": ex, "symbol": sym}, n) for (ex, sym), n in sorted(received.items())))
    e.family("k2_feed_duplicates_dropped_total", "counter",
             "Trades the feed had already handed on (replays after reconnects), dropped.",
             (({"exchange": ex}, n) for ex, n in sorted(duplicates.items())))
    e.family("k2_feed_connected", "gauge", "1 when the connection is up.",
             (({"exchange": s.exchange, "connection": s.connection}, int(s.connected)) for s in stats))
    e.family("k2_feed_last_message_age_seconds", "gauge", "Seconds since the connection's last message.",
             (({"exchange": s.exchange, "connection": s.connection}, round(now - s.last_message_at, 3))
              for s in stats if s.last_message_at is not None))
    e.family("k2_reconnects_total", "counter",
             "Connections that were up and went down (K2 then connects again), per exchange.",
             (({"exchange": ex}, n) for ex, n in sorted(reconnects.items())))
    e.family("k2_connect_failures_total", "counter",
             "Connection attempts that failed (DNS, refused, TLS, timeout, handshake), per exchange.",
             (({"exchange": ex}, n) for ex, n in sorted(connect_failures.items())))
    e.family("k2_last_trade_age_seconds", "gauge", "Seconds since the last trade of each symbol.",
             (({"exchange": ex, "symbol": sym}, round(now - t, 3)) for (ex, sym), t in sorted(last_trade.items())))

    # rejects by reason class: counted by the transport (it sees each reject's reason); a
    # transport that does not classify gives the feed's per-exchange totals as "unclassified"
    ts = getattr(pipeline.transport, "stats", None)
    by_reason = getattr(ts, "rejects_by_reason", None)
    if by_reason is None:
        by_reason = getattr(pipeline.transport, "rejects_by_reason", None)
    if by_reason is not None:
        samples = {(ex, cls): n for ex, classes in dict(by_reason).items() for cls, n in dict(classes).items()}
        for ex in exchanges:
            if not any(k[0] == ex for k in samples):
                samples[(ex, "malformed_frame")] = 0
    else:
        samples = {(ex, "unclassified"): n for ex, n in rejects_total.items()}
    e.family("k2_rejects_total", "counter", "Frames that could not be parsed (kept in the rejects table), "
             "by reason class.", (({"exchange": ex, "reason": r}, n) for (ex, r), n in sorted(samples.items())))
    gap_families(e, pipeline, exchanges)
    reconcile_family(e, pipeline, exchanges)

    if getattr(pipeline, "store", True) is None:  # k2 feed: trades go to Kafka, not to bronze
        written = getattr(ts, "written", None) or {}
        e.family("k2_trades_published_total", "counter", "Trades handed to Kafka by the feed.",
                 (({"exchange": ex}, n) for ex, n in sorted(written.items())))
    else:
        writer_families(e, ts)
    sink = getattr(pipeline.transport, "sink", None)
    sink_lag_family(e, getattr(sink, "stats", None) if sink is not None else None)
    buffered = getattr(pipeline.transport, "buffered", None)
    if isinstance(buffered, int):
        e.family("k2_transport_buffered", "gauge", "Rows/messages received but not yet written or acknowledged.",
                 [({}, buffered)])
    market_report = getattr(pipeline, "market_report", None)
    report = market_report() if callable(market_report) else None
    if report is not None:
        market_families(e, report)
    health = getattr(pipeline, "health", None)
    if callable(health):
        health_families(e, health())
    else:
        e.family("k2_up", "gauge", "1 when every configured feed is connected and fresh (as /healthz).",
                 [({}, int(bool(pipeline.runtime.healthy())))])
    process_families(e)
    return e.render()
