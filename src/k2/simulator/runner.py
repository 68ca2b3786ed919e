"""The simulator: one engine, one server per venue, one clock that drives them all.

    async with Simulator(SimConfig(exchanges=["kraken"], port=0, rate=500, seed=7)) as sim:
        url = sim.urls["kraken"]["ws"]        # ws://127.0.0.1:40123/
        ...
        sim.stats()["kraken"]["trades_generated"]

Every tick (10 ms) the clock applies the fault schedule, advances the engine by the ticks that
are due (catching up at most half a second after a stall), hands each venue its trades, runs the
venues' housekeeping (heartbeats, pings, connection age) and writes each connection's frames
in one go. Everything runs on the caller's event loop; nothing blocks.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from k2.errors import K2Error
from k2.exchanges import ADAPTERS, get_adapter
from k2.exchanges.base import Instrument
from k2.simulator import binance, bitfinex, bybit, coinbase, gemini, kraken, okx
from k2.simulator.engine import MarketEngine
from k2.simulator.faults import FaultClock, Faults, in_window
from k2.simulator.replay import ReplaySource, instrument_for, load_replay
from k2.simulator.server import Venue, now_us

log = logging.getLogger("k2.simulator")

#: venue module per exchange; the order of k2.exchanges.ADAPTERS fixes the ports
VENUES = {
    "binance": (binance.BinanceVenue, binance), "kraken": (kraken.KrakenVenue, kraken),
    "coinbase": (coinbase.CoinbaseVenue, coinbase), "bybit": (bybit.BybitVenue, bybit),
    "okx": (okx.OkxVenue, okx), "bitfinex": (bitfinex.BitfinexVenue, bitfinex),
    "gemini": (gemini.GeminiVenue, gemini),
}
MAX_CATCHUP_S = 0.05
DEFAULT_PORT = 8765


@dataclass
class SimConfig:
    exchanges: list[str] = field(default_factory=lambda: list(ADAPTERS))
    host: str = "127.0.0.1"
    #: exchange i of k2.exchanges.ADAPTERS listens on port + i; 0 = any free port
    port: int = DEFAULT_PORT
    #: trades per second per exchange over its subscribed symbols (replay: frames per second)
    rate: float = 100.0
    seed: int = 1
    #: restrict the markets to these symbols (canonical BTC/USD or native), None = all built-in
    symbols: list[str] | None = None
    replay: Path | None = None  # replay this file (one exchange) instead of generating
    record_dir: Path | None = None
    faults: Faults = field(default_factory=Faults)
    bursts: bool = True
    tick_s: float = 0.01
    heartbeat_s: float = 1.0  # Kraken: heartbeat after this long idle; Coinbase every period, Gemini every 5
    # periods, Bitfinex per channel after 15 idle periods
    ping_interval_s: float = 20.0  # Binance protocol pings
    pong_timeout_s: float = 60.0
    max_connection_age_s: float = 24 * 3600.0  # Binance closes connections after 24 h
    binance_max_messages_per_s: int = 5  # 0 = no limit
    kraken_snapshot: int = 0  # v1: send the last N trades on subscribe
    history_size: int = 100_000  # trades kept per symbol for REST
    #: Binance: days of past trades before the start, served over REST (historicalTrades) and
    #: written as archive files to `archive_dir` (k2.simulator.history); 0 = none
    history_days: int = 0
    history_trades_per_day: int = 20_000
    archive_dir: Path | None = None
    archive_monthly: bool = False
    #: Binance REST request weight allowed per window (the real venue: 6000 a minute); 0 = no limit
    rest_weight_limit: int = 6000
    rest_window_s: float = 60.0
    max_buffer_bytes: int = 64 << 20  # a client further behind than this is cut

    def check(self) -> None:
        if not self.exchanges:
            raise K2Error("no exchange to simulate")
        for name in self.exchanges:
            get_adapter(name)
            if name not in VENUES:
                raise K2Error(f"the simulator has no {name} venue yet")
        if self.rate < 0:
            raise K2Error("--rate must not be negative")
        if not 0 <= self.port <= 65535 - len(ADAPTERS):
            raise K2Error(f"--port must be between 0 and {65535 - len(ADAPTERS)}")
        if self.replay is not None and len(self.exchanges) != 1:
            raise K2Error("--replay needs exactly one --exchange (the one that sent the frames)")
        if self.replay is not None and self.rate <= 0:
            raise K2Error("--replay needs a positive --rate (frames per second)")
        for name in ("tick_s", "heartbeat_s", "ping_interval_s", "pong_timeout_s", "max_connection_age_s"):
            if getattr(self, name) <= 0:
                raise K2Error(f"{name} must be positive")
        if self.history_days < 0 or self.history_trades_per_day < 1 or self.rest_weight_limit < 0 \
                or self.rest_window_s <= 0:
            raise K2Error("--history-days must not be negative, the trades per day and REST window positive")
        if self.history_size < 1 or self.kraken_snapshot < 0 or self.binance_max_messages_per_s < 0:
            raise K2Error("--history must be positive, --kraken-snapshot and the message limit not negative")
        self.faults.check()


def select_instruments(name: str, symbols: list[str] | None) -> list[Instrument]:
    """The built-in instruments of `name`, narrowed to `symbols` (canonical or native)."""
    adapter = get_adapter(name)
    instruments = list(adapter.fallback_instruments)
    if not symbols:
        return instruments
    wanted = set()
    for s in symbols:
        wanted.add(s.strip().upper())
        try:
            wanted.add(adapter.native_symbol(s))
        except ValueError:
            pass
    return [i for i in instruments if i.native_symbol.upper() in wanted or i.canonical_symbol in wanted]


class Simulator:
    def __init__(self, config: SimConfig | None = None):
        self.config = config or SimConfig()
        self.config.check()
        seed = self.config.seed
        self.engine = MarketEngine(seed, self.config.tick_s, self.config.history_size)
        self.fault_rng = random.Random(f"k2-sim:{seed}:faults")
        self.connection_rng = random.Random(f"k2-sim:{seed}:connections")
        self.silent = False
        self.withholding = False  # --withhold: trades made now are kept off the WebSocket
        self.started_wall_us = 0  # wall clock at the start (--skew-candle counts from it)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.venues: dict[str, Venue] = {}
        self.urls: dict[str, dict[str, str]] = {}
        self.replays: dict[str, ReplaySource] = {}
        self.started_at = 0.0
        self._task: asyncio.Task | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    async def start(self) -> dict[str, dict[str, str]]:
        """Open the servers and start the clock; return {exchange: {"ws": url, "rest": url, ...}}."""
        if self._task is not None:
            return self.urls
        cfg = self.config
        self.loop = asyncio.get_running_loop()
        if cfg.record_dir is not None:
            try:
                cfg.record_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise K2Error(f"--record: cannot create {cfg.record_dir}: {exc.strerror or exc}") from None
        registry = list(ADAPTERS)
        names = sorted(cfg.exchanges, key=registry.index)
        listed = {name: select_instruments(name, cfg.symbols) for name in names}
        if cfg.replay is None and not any(listed.values()):
            raise K2Error(f"none of --symbols {','.join(cfg.symbols or [])} is listed on {', '.join(names)}")
        try:
            for name in names:
                venue_cls, rules = VENUES[name]
                instruments = listed[name]
                if not instruments and cfg.replay is None:
                    log.warning("%s: none of the --symbols is listed there; it serves no markets", name)
                rate = cfg.rate
                if cfg.replay is not None:
                    frames = load_replay(cfg.replay, get_adapter(name))
                    known = {i.native_symbol for i in instruments}
                    extra = dict.fromkeys(f.native for f in frames if f.native not in known)
                    instruments += [instrument_for(get_adapter(name), n) for n in extra]
                    self.replays[name] = ReplaySource(frames, cfg.rate)
                    rate = 0.0
                venue_markets = self.engine.add_exchange(
                    name, instruments, rate, rules.tick_rule, rules.lot_rule, rules.first_id,
                    bursts=cfg.bursts and cfg.replay is None)
                try:
                    venue = venue_cls(self, cfg.port + registry.index(name) if cfg.port else 0, venue_markets.markets)
                except OSError as exc:  # the record files
                    raise K2Error(f"--record: cannot write in {cfg.record_dir}: {exc.strerror or exc}") from None
                self.venues[name] = venue
                if cfg.archive_dir is not None and getattr(venue, "histories", None):
                    self.write_archives(venue)
                try:
                    port = await venue.start(cfg.host)
                except OSError as exc:
                    raise K2Error(f"{name}: cannot listen on {cfg.host}:{venue.requested_port}: "
                                  f"{exc.strerror or exc} (try --port 0 for free ports)") from None
                self.urls[name] = venue.urls(f"{cfg.host}:{port}")
        except BaseException:
            await self._close_venues()
            raise
        self.started_at = self.loop.time()
        self.started_wall_us = now_us()
        self._task = self.loop.create_task(self._drive(), name="k2-simulator-clock")
        return self.urls

    def write_archives(self, venue) -> None:
        """The venue's past as archive files (trades and aggTrades, zip + CHECKSUM)."""
        from k2.simulator.history import write_archives

        folder = Path(self.config.archive_dir)
        try:
            for past in venue.histories.values():
                write_archives(past, folder, ("trades", "aggTrades"), monthly=self.config.archive_monthly)
        except OSError as exc:
            raise K2Error(f"--archive-dir: cannot write in {folder}: {exc.strerror or exc}") from None

    async def stop(self) -> None:
        """Stop the clock, close every connection and server, flush the records."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        await self._close_venues()

    async def _close_venues(self) -> None:
        for venue in self.venues.values():
            await venue.close()

    async def __aenter__(self) -> "Simulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def wait(self) -> None:
        """Until the clock stops (a crash in it is raised here)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    # -- used by the venues ---------------------------------------------------------------------
    def rest_down(self) -> bool:
        """True inside a --rest-down window (the REST API answers 503)."""
        if not self.config.faults.rest_down or not self.started_at:
            return False
        return FaultClock(self.config.faults, self.started_at).rest_down(self.loop.time())

    def activate(self, exchange: str, native: str) -> bool:
        return self.engine.activate(exchange, native)

    # -- the clock ------------------------------------------------------------------------------
    async def _drive(self) -> None:
        cfg, loop, engine = self.config, self.loop, self.engine
        tick = cfg.tick_s
        faults = FaultClock(cfg.faults, self.started_at)
        max_catchup = max(1, int(MAX_CATCHUP_S / tick))
        anchor, done = loop.time(), 0
        next_flush = anchor + 1.0
        venues = list(self.venues.items())
        market_faults = bool(cfg.faults.drift or cfg.faults.maintenance or cfg.faults.slow)
        while True:
            now = loop.time()
            self.silent = faults.silent(now)
            self.withholding = faults.withholding(now)
            if market_faults:
                self._market_faults(now - self.started_at)
            if faults.drop_due(now):
                dropped = sum(v.drop_all() for v in self.venues.values())
                log.debug("fault: dropped %d connections", dropped)
            if faults.error_due(now):
                for v in self.venues.values():
                    v.send_error_event()
            if engine.running:
                due = int((now - anchor) / tick) - done
                if due > max_catchup:  # stalled: skip ahead rather than flood
                    anchor += (due - max_catchup) * tick
                    due = max_catchup
                if due > 0:
                    wall = now_us()
                    for _ in range(due):
                        for name, fills in engine.step().items():
                            self.venues[name].publish(fills, wall)
                    done += due
            else:
                anchor = now - done * tick  # nothing subscribed: the market waits
            for name, source in self.replays.items():
                if engine.venues[name].active and not source.done:
                    venue = self.venues[name]
                    for item in source.due(now, max_batch=max(1, int(source.rate * MAX_CATCHUP_S))):
                        venue.replay(item.native, item.frame)
            for _, venue in venues:
                venue.housekeeping(now)
                venue.flush_all()
            if now >= next_flush:
                next_flush = now + 1.0
                for _, venue in venues:
                    if venue.recorder:
                        venue.recorder.flush()
            await asyncio.sleep(max(0.0, anchor + (done + 1) * tick - loop.time()))

    def _market_faults(self, elapsed: float) -> None:
        """--drift, --maintenance, --slow: set the engine's factors for this moment."""
        f = self.config.faults
        for name, venue in self.engine.venues.items():
            venue.drift = 1.0
            for v, bps, a, b in f.drift:
                if v == name and in_window(elapsed, a, b):
                    venue.drift = 1.0 + bps / 10_000
            venue.halted = self.maintenance_phase(name, elapsed) == "ongoing"
            if f.slow:
                for m in venue.markets.values():
                    m.rate_factor = 1.0
                    for sym, factor, a, b in f.slow:
                        if m.instrument.canonical_symbol == sym and in_window(elapsed, a, b):
                            m.rate_factor = factor

    def maintenance_phase(self, exchange: str, elapsed: float | None = None) -> str:
        """"none", "scheduled" (announced, before it starts), "ongoing" or "completed"."""
        windows = [(a, b) for v, a, b in self.config.faults.maintenance if v == exchange]
        if not windows:
            return "none"
        if elapsed is None:
            elapsed = (self.loop.time() - self.started_at) if self.started_at and self.loop else 0.0
        if any(in_window(elapsed, a, b) for a, b in windows):
            return "ongoing"
        if any(elapsed < a for a, _ in windows):
            return "scheduled"
        return "completed"

    def maintenance_window_ms(self, exchange: str) -> tuple[int, int]:
        """The first maintenance window of `exchange` as wall-clock ms (for the status answers)."""
        a, b = next((a, b) for v, a, b in self.config.faults.maintenance if v == exchange)
        wall0 = time.time() - ((self.loop.time() - self.started_at) if self.loop else 0.0)
        end = wall0 + b if b != float("inf") else wall0 + 86400 * 365
        return int((wall0 + a) * 1000), int(end * 1000)

    # -- counters -------------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, Any]]:
        """Per exchange: trades/frames generated and sent, connections, faults applied."""
        out = {}
        for name, venue in self.venues.items():
            row = asdict(venue.stats)
            row["active_symbols"] = [m.native for m in self.engine.venues[name].active]
            if name in self.replays:
                row["replay_position"] = self.replays[name].position
                row["replay_done"] = self.replays[name].done
            out[name] = row
        return out
