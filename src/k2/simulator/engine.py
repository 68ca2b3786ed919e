"""The seeded market behind every simulated venue.

One random walk per asset, in USD, is shared by all venues, so BTC/USD on Kraken and BTC/USDT
on Binance quote the same bitcoin (each a hair apart), and ETH/BTC stays ETH/USD ÷ BTC/USD. A
market (one native symbol on one exchange) only trades once someone has subscribed to it, and
then keeps trading until the simulator stops, also while its subscriber reconnects: the gap is
real and has to be backfilled over REST, as on the real venues. An exchange's rate (trades per
second, about 16 % of it in short bursts) is shared by its trading markets by activity: BTC
pairs trade most, cross pairs least.

Determinism: the engine advances in fixed ticks (10 ms by default) and every draw comes from
RNGs seeded with `seed`: the asset walk per tick, and per exchange the trade counts, the symbol
each trade lands on, prices, sizes, sides and order types. The same seed and the same
subscriptions (made at the same tick) give the same trades; only their timestamps, which are the
wall clock at publication so that ingest latency can be measured, differ between runs. The clock
stands still while nothing is subscribed anywhere.

Trades come out as plain tuples per market and tick, ready for the venue module to format:
`(price, qty, taker_sell, market_order)`; consecutive market-order fills of one side at
successive price levels are one taker order sweeping the book.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Sequence

from k2.exchanges.base import Instrument

#: rough USD value per asset; the walk starts here
USD_LEVELS = {
    "BTC": 97_500.0, "ETH": 3_400.0, "BNB": 650.0, "SOL": 180.0, "XRP": 2.3, "DOGE": 0.18,
    "ADA": 0.7, "TRX": 0.25, "AVAX": 25.0, "LINK": 15.0, "DOT": 4.5, "LTC": 95.0, "BCH": 450.0,
    "SHIB": 0.000014, "PEPE": 0.00001, "USD": 1.0, "USDT": 1.0002, "USDC": 1.0, "FDUSD": 0.9995,
    "DAI": 0.9998, "EUR": 1.08, "GBP": 1.27, "JPY": 0.0066, "TRY": 0.029, "BRL": 0.17,
}
#: assets that follow another one at a fixed ratio (wrapped tokens)
PEGGED = {"WBTC": ("BTC", 0.9996)}
#: assets that barely move and are pulled back to their level (fiat, stablecoins)
STEADY = frozenset(("USD", "USDT", "USDC", "FDUSD", "DAI", "EUR", "GBP", "JPY", "TRY", "BRL"))
#: relative activity per base asset (how often a trade lands on a symbol)
ACTIVITY = {"BTC": 10.0, "ETH": 6.0, "SOL": 4.0, "XRP": 3.0, "DOGE": 3.0, "BNB": 2.0, "PEPE": 1.5}

VOL_PER_SQRT_S = 1.5e-4  # BTC: about 0.12 % per minute, 4.4 % per day
ALT_VOL_FACTOR = 1.6
STEADY_VOL_PER_SQRT_S = 2e-6
MEDIAN_NOTIONAL_USD = 150.0
NOTIONAL_SIGMA = 1.5
HALF_SPREAD = 2e-6  # of the mid: BTC 0.2 USD
SWEEP_PROBABILITY = 0.06  # share of taker orders that fill at several price levels
BURST_EVERY_S = 20.0  # a burst of activity starts on average this often
BURST_SECONDS = (0.2, 1.0)
BURST_FACTOR = (3.0, 10.0)
_MEAN_BURST_BOOST = 1.0 + (sum(BURST_SECONDS) / 2) / BURST_EVERY_S * (sum(BURST_FACTOR) / 2 - 1.0)


#: one trade as drawn: (price, qty, taker_sell, market_order), a plain tuple because it is made
#: per trade (a NamedTuple's constructor costs as much as the rest of the draw)
Fill = tuple[float, float, bool, bool]


def _decade(x: float) -> int:
    return math.floor(math.log10(x))


@dataclass(eq=False, slots=True)
class Market:
    """One native symbol on one exchange: its price grid, its trade ids and recent history.

    `history` holds the venue's own encoding of each recent trade (the venue decides what); for
    generated trades the id of `history[i]` is `next_id - len(history) + i`.
    """

    exchange: str
    instrument: Instrument
    tick: float  # price grid
    lot: float  # quantity grid
    next_id: int  # id the next trade gets
    history: deque
    weight: float = 1.0
    active: bool = False
    basis: float = 1.0  # tiny persistent venue premium
    mid: float = 0.0  # set every tick while active
    last_us: int = 0  # time of the last trade, for venues whose timestamps must differ
    rate_factor: float = 1.0  # share of this market's drawn trades that happen (k2 simulate --slow)

    @property
    def native(self) -> str:
        return self.instrument.native_symbol


class AssetWalk:
    """Log random walk per asset in USD, one step per engine tick."""

    def __init__(self, seed: int, tick_s: float, assets: Sequence[str]):
        self.rng = random.Random(f"k2-sim:{seed}:assets")
        self.tick_s = tick_s
        self.level: dict[str, float] = {}
        self._log: dict[str, float] = {}
        self._sigma: dict[str, float] = {}
        for asset in sorted(set(assets)):
            self.add(asset)

    def add(self, asset: str) -> None:
        if asset in self.level:
            return
        if asset in PEGGED:
            self.add(PEGGED[asset][0])
            self.level[asset] = self.level[PEGGED[asset][0]] * PEGGED[asset][1]
            return
        start = USD_LEVELS.get(asset)
        if start is None:  # an asset we know nothing about: a stable, seeded level
            start = 10 ** random.Random(f"k2-sim:level:{asset}").uniform(-1, 2)
        steady = asset in STEADY
        per_s = STEADY_VOL_PER_SQRT_S if steady else VOL_PER_SQRT_S * (1 if asset == "BTC" else ALT_VOL_FACTOR)
        self._sigma[asset] = 0.0 if asset == "USD" else per_s * math.sqrt(self.tick_s)
        self._log[asset] = math.log(start)
        self.level[asset] = start

    def step(self) -> None:
        gauss = self.rng.gauss
        for asset, sigma in self._sigma.items():  # insertion order: deterministic
            if not sigma:
                continue
            x = self._log[asset] + gauss(0.0, sigma)
            if asset in STEADY:  # pulled back towards its level
                x -= 0.01 * (x - math.log(USD_LEVELS.get(asset, 1.0)))
            self._log[asset] = x
            self.level[asset] = math.exp(x)
        for asset, (anchor, ratio) in PEGGED.items():
            if asset in self.level:
                self.level[asset] = self.level[anchor] * ratio

    def price(self, base: str, quote: str) -> float:
        return self.level[base] / self.level[quote]


@dataclass
class VenueMarkets:
    """The markets of one exchange plus the RNG that draws its trades."""

    exchange: str
    markets: dict[str, Market]  # native symbol -> market
    rng: random.Random
    rate: float  # mean trades per second over its active markets
    bursts: bool = True
    burst_ticks_left: int = 0
    burst_factor: float = 1.0
    active: list[Market] = field(default_factory=list)
    cum_weights: list[float] = field(default_factory=list)
    drift: float = 1.0  # price multiplier of the whole venue (k2 simulate --drift)
    halted: bool = False  # in maintenance: no trades (k2 simulate --maintenance)


class MarketEngine:
    """Draws the trades of every exchange, tick by tick."""

    def __init__(self, seed: int = 1, tick_s: float = 0.01, history_size: int = 100_000):
        self.seed = seed
        self.tick_s = tick_s
        self.history_size = history_size
        self.ticks = 0
        self.venues: dict[str, VenueMarkets] = {}
        self.walk = AssetWalk(seed, tick_s, [])
        size_rng = random.Random(f"k2-sim:{seed}:sizes")
        #: notional multipliers drawn once; a trade picks one by a uniform draw (cheap)
        self._notional = [MEDIAN_NOTIONAL_USD * math.exp(size_rng.gauss(0.0, NOTIONAL_SIGMA)) for _ in range(4096)]

    # -- setup --------------------------------------------------------------------------------
    def add_exchange(self, exchange: str, instruments: Sequence[Instrument], rate: float,
                     tick_rule=None, lot_rule=None, first_id=None, bursts: bool = True) -> VenueMarkets:
        """Register the markets of one exchange. The rules map a mid price (or the base asset's
        USD price for lots) to that venue's grid; `first_id(rng, market_weight)` picks the id
        of the first trade."""
        rng = random.Random(f"k2-sim:{self.seed}:{exchange}")
        markets = {}
        for inst in instruments:
            for asset in (inst.base, inst.quote):
                self.walk.add(asset)
            mid = self.walk.price(inst.base, inst.quote)
            base_usd = self.walk.level[inst.base]
            weight = ACTIVITY.get(inst.base, 1.0) * (1.0 if inst.quote in STEADY else 0.5)
            tick = tick_rule(mid) if tick_rule else 10.0 ** (_decade(mid) - 6)
            lot = lot_rule(base_usd) if lot_rule else 1e-8
            start = first_id(rng, weight) if first_id else rng.randrange(10_000_000, 100_000_000)
            markets[inst.native_symbol] = Market(
                exchange, inst, tick, lot, start, deque(maxlen=self.history_size), weight,
                basis=1.0 + rng.uniform(-2e-5, 2e-5),
            )
        venue = VenueMarkets(exchange, markets, rng, rate, bursts)
        self.venues[exchange] = venue
        return venue

    def activate(self, exchange: str, native: str) -> bool:
        """Start trading a market (on its first subscription). False if it does not exist."""
        venue = self.venues.get(exchange)
        market = venue.markets.get(native) if venue else None
        if market is None:
            return False
        if not market.active:
            market.active = True
            market.mid = self.walk.price(market.instrument.base, market.instrument.quote) * market.basis
            venue.active = [m for m in venue.markets.values() if m.active]  # registry order
            total, venue.cum_weights = 0.0, []
            for m in venue.active:
                total += m.weight
                venue.cum_weights.append(total)
        return True

    @property
    def running(self) -> bool:
        return any(v.active for v in self.venues.values())

    # -- the tick -----------------------------------------------------------------------------
    def step(self) -> dict[str, dict[Market, list[Fill]]]:
        """Advance one tick; return, per exchange, the fills of each market that traded."""
        self.ticks += 1
        self.walk.step()
        out: dict[str, dict[Market, list[Fill]]] = {}
        for name, venue in self.venues.items():
            if venue.active:
                fills = self._venue_tick(venue)
                if fills:
                    out[name] = fills
        return out

    def _venue_tick(self, venue: VenueMarkets) -> dict[Market, list[Fill]]:
        rng = venue.rng
        rnd = rng.random
        level = self.walk.level
        # this tick's quotes per market: takers buy at the ask and sell at the bid, a hair
        # (at least half a tick) off the mid
        quotes = {}
        if venue.halted:
            return {}
        drift = venue.drift
        for m in venue.active:
            mid = m.mid = level[m.instrument.base] / level[m.instrument.quote] * m.basis * drift
            half_spread = max(mid * HALF_SPREAD, 0.5 * m.tick)
            quotes[m] = (mid - half_spread, mid + half_spread, m.tick, m.lot,
                         1.0 / (level[m.instrument.base] * m.lot), [])
        factor = 1.0
        if venue.bursts:
            if venue.burst_ticks_left:
                venue.burst_ticks_left -= 1
                factor = venue.burst_factor
            elif rnd() < self.tick_s / BURST_EVERY_S:
                venue.burst_ticks_left = max(1, round(rng.uniform(*BURST_SECONDS) / self.tick_s))
                venue.burst_factor = rng.uniform(*BURST_FACTOR)
            factor /= _MEAN_BURST_BOOST
        n = _poisson(rng, venue.rate * self.tick_s * factor)
        if not n:
            return {}
        picks = rng.choices(venue.active, cum_weights=venue.cum_weights, k=n)
        notional = self._notional
        table = float(len(notional))
        i = 0
        while i < n:
            m = picks[i]
            if m.rate_factor != 1.0 and rnd() >= m.rate_factor:  # --slow: this draw never trades
                i += 1
                continue
            bid, ask, tick, lot, qty_per_usd, fills = quotes[m]
            sell = rnd() < 0.5
            if rnd() >= SWEEP_PROBABILITY:  # the usual case: one fill
                p = round(((bid if sell else ask) + (rnd() - 0.5) * 2.0 * tick) / tick) * tick
                q = round(notional[int(rnd() * table)] * qty_per_usd) * lot
                fills.append((p if p > 0.0 else tick, q if q > 0.0 else lot, sell, rnd() < 0.65))
                i += 1
                continue
            levels = min(n - i, 2 + int(rnd() * 5))  # one market order eats several levels
            start = round(((bid if sell else ask) + (rnd() - 0.5) * 2.0 * tick) / tick)
            step = -1 if sell else 1
            for k in range(levels):
                p = (start + k * step) * tick
                q = round(notional[int(rnd() * table)] * qty_per_usd) * lot
                fills.append((p if p > 0.0 else tick, q if q > 0.0 else lot, sell, True))
            i += levels
        return {m: q[5] for m, q in quotes.items() if q[5]}


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0.0:
        return 0
    if lam > 30.0:
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k
