"""The feed runtime: resolves symbols, refreshes instrument lists, shards symbols over
connections (per the exchange's per-connection limit) and runs them all on one event loop."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.error
import urllib.request
from dataclasses import asdict
from typing import Any, Callable

from k2.config import ExchangeSettings, Settings
from k2.errors import K2Error
from k2.exchanges.base import ExchangeAdapter, Instrument
from k2.feed.backoff import Backoff
from k2.feed.connection import ConnectionStats, FeedConnection
from k2.feed.gaps import Backfiller, Gap, GapTracker
from k2.feed.recent import RecentTrades
from k2.feed.venue_status import VenueStatusPoller, pollers_for

log = logging.getLogger("k2.feed")


def fetch_instruments(adapter: ExchangeAdapter, rest_url: str, natives: list[str],
                      timeout: float = 10.0) -> list[Instrument]:
    """GET the exchange's public metadata endpoint (TLS verified for https)."""
    url = rest_url.rstrip("/") + adapter.instruments_path(natives)
    req = urllib.request.Request(url, headers={"User-Agent": "k2"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return adapter.parse_instruments(resp.read())


def resolve_symbols(adapter: ExchangeAdapter, symbols: list[str]) -> list[str]:
    natives = []
    for s in symbols:
        try:
            natives.append(adapter.native_symbol(s))
        except ValueError as exc:
            raise K2Error(str(exc)) from None
    return list(dict.fromkeys(natives))


class FeedRuntime:
    def __init__(self, settings: Settings, transport: Any, exchanges: list[str],
                 on_instruments: Callable[[str, list[Instrument]], None] | None = None,
                 known_instruments: Callable[[str], set[str]] | None = None,
                 on_gap: Callable[[Gap], None] | None = None,
                 stored_history: Callable[[ExchangeAdapter], tuple[dict, dict]] | None = None,
                 gaps_to_retry: Callable[[ExchangeAdapter], list[Gap]] | None = None):
        self.settings = settings
        self.transport = transport
        self.exchanges = exchanges
        self.on_instruments = on_instruments
        self.known_instruments = known_instruments
        self.on_gap = on_gap  # persists a gap (new or updated) in the ledger
        self.stored_history = stored_history  # (last ids, last times) per symbol already stored
        self.gaps_to_retry = gaps_to_retry  # gaps a previous run left open, from the ledger
        self.connections: list[FeedConnection] = []
        self.trackers: dict[str, GapTracker] = {}
        self.backfillers: dict[str, Backfiller] = {}
        self.gaps: list[Gap] = []  # the most recent gaps, for status
        self.skipped: dict[str, dict[str, str]] = {}
        self.started_at = time.time()
        #: the venues' own status endpoints (k2.feed.venue_status), read by health
        self.status_pollers: dict[str, VenueStatusPoller] = {}

    # -- planning -------------------------------------------------------------------------------
    async def plan(self) -> None:
        for name in self.exchanges:
            ex = self.settings.exchange(name)
            adapter = ex.adapter
            natives = resolve_symbols(adapter, ex.symbols)
            natives = await self._check_listed(adapter, ex, natives)
            if not natives:
                log.error("%s: no symbol left to subscribe", name)
                continue
            recent = RecentTrades(adapter.symbol_index, adapter.trade_key_index, len(natives),
                                  keys=adapter.trade_keys, order_index=adapter.trade_order_index)
            tracker = self._gap_tracking(adapter, ex, natives, recent)
            size = adapter.max_symbols_per_connection
            for n, i in enumerate(range(0, len(natives), size)):
                backoff = Backoff(self.settings.reconnect_base_s, self.settings.reconnect_cap_s,
                                  self.settings.reconnect_max_attempts)
                conn = FeedConnection(adapter, ex.ws_url, natives[i:i + size], f"{name}-{n}", self.transport,
                                      recent, backoff, stale_after_s=ex.options.get("stale_after_s"),
                                      ping_interval_s=float(ex.options.get("ping_interval_s", adapter.ping_interval_s)),
                                      read_coalesce_ms=self.settings.feed_read_coalesce_ms)
                conn.gaps = tracker
                self.connections.append(conn)
        if not self.connections:
            raise K2Error("nothing to subscribe: check --exchange and --symbols")
        health = self.settings.health
        if health.markets:
            self.status_pollers = pollers_for([(c.adapter.name, self.settings.exchange(c.adapter.name).rest_url)
                                               for c in self.connections], health.status_poll_s)

    def _gap_tracking(self, adapter: ExchangeAdapter, ex: ExchangeSettings, natives: list[str],
                      recent: RecentTrades) -> GapTracker | None:
        if not adapter.can_backfill and adapter.sequential_id_index is None:
            return None
        tracker = GapTracker(adapter, self._gap_found)
        if self.stored_history is not None:
            last_ids, last_times = self.stored_history(adapter)
            wanted = set(natives)
            tracker.seed({s: v for s, v in last_ids.items() if s in wanted},
                         {s: v for s, v in last_times.items() if s in wanted})
        if adapter.can_backfill and self.settings.backfill:
            def deliver(rows: list[tuple]) -> int:
                new = recent.new_rows(rows)
                if new:
                    self.transport.submit(adapter, new, source="rest")
                return len(new)

            backfiller = self.backfillers[adapter.name] = Backfiller(
                adapter, ex.rest_url, deliver, self._gap_updated, max_trades=self.settings.backfill_max_trades)
            for gap in (self.gaps_to_retry(adapter) if self.gaps_to_retry else []):
                log.info("%s %s: retrying gap %s left open by an earlier run", gap.exchange, gap.symbol, gap.gap_id)
                self.gaps.append(gap)
                backfiller.submit(gap)
        self.trackers[adapter.name] = tracker
        return tracker

    def _gap_found(self, gap: Gap) -> None:
        log.warning("%s %s: gap detected (%s %s..%s)", gap.exchange, gap.symbol, gap.kind, gap.start, gap.end)
        backfiller = self.backfillers.get(gap.exchange)
        if backfiller is None:
            gap.state, gap.detail = "unfillable", "backfill is off or not available for this exchange"
        self.gaps.append(gap)
        del self.gaps[:-1000]
        self._gap_updated(gap)
        if backfiller is not None:
            backfiller.submit(gap)

    def _gap_updated(self, gap: Gap) -> None:
        if self.on_gap is not None:
            self.on_gap(gap)

    async def _check_listed(self, adapter: ExchangeAdapter, ex: ExchangeSettings, natives: list[str]) -> list[str]:
        """Drop symbols the exchange does not list. Listings come from its metadata endpoint when
        reachable (and are stored in the instruments table), else from what K2 already knows."""
        fetched: list[Instrument] | None = None
        if self.settings.instruments_refresh:
            try:
                fetched = await asyncio.to_thread(fetch_instruments, adapter, ex.rest_url, natives)
            except Exception as exc:  # unreachable, refused, TLS, timeout, or an answer that does not parse
                log.warning("%s: could not fetch instruments from %s (%s); using the built-in list",
                            adapter.name, ex.rest_url, getattr(exc, "reason", None) or exc)
        if fetched:
            if self.on_instruments:
                self.on_instruments(adapter.name, fetched)
            listed = {i.native_symbol for i in fetched}
            keep = [s for s in natives if s in listed]
            for s in natives:
                if s not in listed:
                    self.skipped.setdefault(adapter.name, {})[s] = "not listed by the exchange"
                    log.warning("%s: %s is not listed by the exchange; skipped", adapter.name, s)
            return keep
        known = {i.native_symbol for i in adapter.fallback_instruments}
        if self.known_instruments:
            known |= self.known_instruments(adapter.name)
        for s in natives:
            if s not in known:
                log.warning("%s: %s is not a known instrument; subscribing anyway (its trades are flagged "
                            "unknown_instrument in silver until the instrument list is refreshed)", adapter.name, s)
        return natives

    # -- running --------------------------------------------------------------------------------
    def pause(self, paused: bool) -> None:
        for conn in self.connections:
            conn.pause(paused)
        log.warning("writer is behind: %s reading from the exchanges", "pausing" if paused else "resuming")

    async def run(self, stop: asyncio.Event) -> None:
        tasks = [asyncio.create_task(c.run(stop), name=c.conn_id) for c in self.connections]
        tasks += [asyncio.create_task(b.run(stop), name=f"{name}-backfill") for name, b in self.backfillers.items()]
        tasks += [asyncio.create_task(p.run(stop), name=f"{name}-status") for name, p in self.status_pollers.items()]
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()

    # -- status ---------------------------------------------------------------------------------
    def connection_stats(self) -> list[ConnectionStats]:
        return [c.stats for c in self.connections]

    def status(self) -> dict[str, Any]:
        now = time.time()
        conns = []
        for st in self.connection_stats():
            d = asdict(st)
            d["last_message_age_s"] = None if st.last_message_at is None else round(now - st.last_message_at, 3)
            d["last_trade_age_s"] = None if st.last_trade_at is None else round(now - st.last_trade_at, 3)
            conns.append(d)
        gaps: dict[str, int] = {}
        for g in self.gaps:
            gaps[g.state] = gaps.get(g.state, 0) + 1
        return {"started_at": self.started_at, "now": now, "connections": conns, "skipped": self.skipped,
                "gaps": gaps, "gaps_recovered": sum(g.recovered for g in self.gaps)}

    def healthy(self, max_age_s: float = 60.0) -> bool:
        now = time.time()
        return bool(self.connections) and all(
            c.stats.connected and c.stats.last_message_at is not None and now - c.stats.last_message_at < max_age_s
            for c in self.connections)
