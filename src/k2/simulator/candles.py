"""Candles a simulated venue serves from its own trades (k2 reconcile compares K2's with them).

A venue module hands its trades as `(time_us, price, qty, taker_buy)` in the order it made them
(decimal strings, as on its wire) and formats the result in its own candle format. Windows start
at whole multiples of the interval in UTC (epoch-aligned), as on every venue K2 knows; a window
without trades has no candle here. Sums are exact decimals: the venue module rounds a derived
value (quote volume, VWAP) to the decimals its real counterpart prints.

`--skew-candle S` raises the high of the window holding the instant S s after the start by one
price tick (every interval), a difference no trade explains.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

import msgspec


@dataclass(slots=True)
class Candle:
    start_us: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    count: int
    buy_volume: Decimal  # taker buys (the buyer took liquidity)
    buy_quote_volume: Decimal
    price_text: str  # one trade's price text (its decimals are the venue's price decimals)

    @property
    def vwap(self) -> Decimal:
        return self.quote_volume / self.volume


def build(trades: Iterable[tuple[int, str, str, bool]], interval_us: int, since_us: int,
          until_us: int) -> dict[int, Candle]:
    """Candles of the windows starting in [since_us, until_us), from `trades` in venue order."""
    out: dict[int, Candle] = {}
    for t_us, price_text, qty_text, taker_buy in trades:
        start = t_us - t_us % interval_us
        if start < since_us or start >= until_us:
            continue
        price, qty = Decimal(price_text), Decimal(qty_text)
        quote = price * qty
        c = out.get(start)
        if c is None:
            out[start] = Candle(start, price, price, price, price, qty, quote, 1,
                                qty if taker_buy else Decimal(0), quote if taker_buy else Decimal(0), price_text)
            continue
        c.close = price
        if price > c.high:
            c.high = price
        if price < c.low:
            c.low = price
        c.volume += qty
        c.quote_volume += quote
        c.count += 1
        if taker_buy:
            c.buy_volume += qty
            c.buy_quote_volume += quote
    return out


def skew(candles: dict[int, Candle], sim, interval_us: int) -> None:
    """Apply --skew-candle: the window holding start + S s shows a high one tick too high."""
    offset = sim.config.faults.skew_candle
    if offset is None or not sim.started_wall_us:
        return
    at = sim.started_wall_us + int(offset * 1_000_000)
    c = candles.get(at - at % interval_us)
    if c is not None:
        exponent = Decimal(c.price_text).as_tuple().exponent
        c.high += Decimal(1).scaleb(exponent if isinstance(exponent, int) else 0)


def places(value: Decimal, decimals: int) -> str:
    """`value` with exactly `decimals` decimals, rounded half-even (the venue's print)."""
    return f"{value.quantize(Decimal(1).scaleb(-decimals)):f}"


def served(sim, trades: Iterable[tuple[int, str, str, bool]], interval_us: int, since_us: int,
           until_us: int) -> list[Candle]:
    """The candles of windows starting in [since_us, until_us), oldest first, --skew-candle applied."""
    found = build(trades, interval_us, since_us, until_us)
    skew(found, sim, interval_us)
    return sorted(found.values(), key=lambda c: c.start_us)


def text(value: Decimal) -> str:
    """Plain decimal text without trailing zeros (how venues print unpadded values)."""
    out = format(value.normalize(), "f")
    return out


def number(value: Decimal) -> msgspec.Raw:
    """`value` as a JSON number (venues that print floats); exact in the simulator."""
    return msgspec.Raw(text(value).encode())


def closed(start_us: int, interval_us: int, now_us: int) -> bool:
    return start_us + interval_us <= now_us
