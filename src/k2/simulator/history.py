"""The simulated Binance market's past: the days before the simulator started, trade by trade.

Deterministic from (seed, symbol, day): the same trades whether they are read from an archive
file, paged over REST or compared as ground truth in a test. Trade ids run without a hole from
the first history day into the live feed: the last history trade has the id just below the live
market's first one, and the history ends when the simulator started.

Times are whole milliseconds (what Binance's live feed and REST carry); archive files for days
from 2025-01-01 write them in microseconds, as Binance's spot archive does since then, so a
file of each unit carries the same instants.

Archives are byte-compatible with data.binance.vision's spot files: `SYMBOL-trades-YYYY-MM-DD.zip`
holding one headerless CSV of the same name (`id,price,qty,quoteQty,time,isBuyerMaker,
isBestMatch`, prices with 8 decimals, `True`/`False`), and `<zip>.CHECKSUM` with
`<sha256>  <zip name>`; monthly files (`SYMBOL-trades-YYYY-MM.zip`) concatenate the days;
`aggTrades` group consecutive fills of one taker order at one price.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
import zipfile
from datetime import datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from k2.simulator.engine import USD_LEVELS

DAY_US = 86_400_000_000
US_FROM = datetime(2025, 1, 1, tzinfo=timezone.utc)

#: one trade: (id, price, qty, time_us, is_buyer_maker)
Trade = tuple[int, str, str, int, bool]


def day_start_us(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()) * 1_000_000


def day_of(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, timezone.utc).strftime("%Y-%m-%d")


class BinanceHistory:
    """The past of one simulated Binance symbol: `days` days before `end_us`, ids up to `end_id`."""

    def __init__(self, seed: int, symbol: str, base: str, quote: str, end_id: int, end_us: int,
                 days: int, trades_per_day: int = 20_000):
        self.seed, self.symbol = seed, symbol
        self.end_id, self.end_us = end_id, end_us
        first_day = day_start_us(day_of(end_us)) - days * DAY_US
        self.days = [day_of(first_day + i * DAY_US) for i in range(days + 1)]  # the last is partial
        counts = []
        for i, day in enumerate(self.days):
            rng = random.Random(f"k2-sim:{seed}:history:{symbol}:{day}:count")
            n = int(trades_per_day * rng.uniform(0.8, 1.2))
            if i == len(self.days) - 1:  # today: up to the simulator's start
                n = int(n * (end_us - day_start_us(day)) / DAY_US)
            counts.append(max(n, 1))
        self.counts = counts
        total = sum(counts)
        self.first_ids = []
        next_id = end_id - total
        for n in counts:
            self.first_ids.append(next_id)
            next_id += n
        self.start_id = end_id - total
        self.level = USD_LEVELS.get(base, 10.0) / USD_LEVELS.get(quote, 1.0)
        self.tick = 10.0 ** (math.floor(math.log10(self.level)) - 6) if self.level < 1000 else 0.01
        self.lot = 1e-5 if self.level > 1000 else 1e-3 if self.level > 1 else 1.0
        self._day = lru_cache(maxsize=4)(self._generate)

    def trades_of_day(self, day: str) -> list[Trade]:
        return self._day(day)

    def _generate(self, day: str) -> list[Trade]:
        i = self.days.index(day)
        n, first = self.counts[i], self.first_ids[i]
        rng = random.Random(f"k2-sim:{self.seed}:history:{self.symbol}:{day}")
        start = day_start_us(day)
        end = min(start + DAY_US, self.end_us)
        span_ms = max((end - start) // 1000, 1)
        times = sorted(rng.randrange(span_ms) for _ in range(n))
        price = self.level * (1 + 0.02 * math.sin(i))  # a slow swing across the days
        tick, lot = self.tick, self.lot
        out: list[Trade] = []
        sweep_left = 0
        for k in range(n):
            if sweep_left:  # one taker order through several fills at one price and time
                sweep_left -= 1
                t_ms, taker_sold = times[k - 1], out[-1][4]
                times[k] = t_ms
            else:
                price *= math.exp(rng.gauss(0.0, 3e-4))
                t_ms, taker_sold = times[k], rng.random() < 0.5
                if rng.random() < 0.1:
                    sweep_left = rng.randrange(1, 4)
            qty = max(lot, round(rng.lognormvariate(math.log(150 / max(price, 1e-9) / lot), 1.2)) * lot)
            p = round(price / tick) * tick
            out.append((first + k, f"{p:.8f}", f"{qty:.8f}", start + t_ms * 1000, taker_sold))
        return out

    def trades_from_id(self, from_id: int, limit: int) -> list[Trade]:
        """Up to `limit` history trades from `from_id` on (ids below end_id only)."""
        out: list[Trade] = []
        from_id = max(from_id, self.start_id)
        while len(out) < limit and from_id < self.end_id:
            i = bisect.bisect_right(self.first_ids, from_id) - 1
            trades = self.trades_of_day(self.days[i])
            k = from_id - self.first_ids[i]
            take = trades[k:k + limit - len(out)]
            out.extend(take)
            from_id += len(take)
        return out

    def all_trades(self, days: list[str] | None = None):
        for day in days or self.days:
            yield from self.trades_of_day(day)


# -- archive files ----------------------------------------------------------------------------------
def _bool(b: bool) -> str:
    return "True" if b else "False"


def _quote_qty(price: str, qty: str) -> str:
    return f"{Decimal(price) * Decimal(qty):.8f}"


def _time(us: int, unit: str) -> int:
    return us if unit == "us" else us // 1000


def unit_of_day(day: str) -> str:
    return "us" if day_start_us(day) >= int(US_FROM.timestamp()) * 1_000_000 else "ms"


def trade_lines(trades, unit: str):
    for tid, price, qty, t_us, sold in trades:
        yield f"{tid},{price},{qty},{_quote_qty(price, qty)},{_time(t_us, unit)},{_bool(sold)},True\n"


def agg_trade_lines(trades, unit: str, first_agg_id: int):
    """Consecutive fills at one price, time and side form one aggregate trade."""
    agg, group = first_agg_id, []

    def line(g):
        qty = sum(Decimal(t[2]) for t in g)
        return (f"{agg},{g[0][1]},{qty:.8f},{g[0][0]},{g[-1][0]},{_time(g[0][3], unit)},"
                f"{_bool(g[0][4])},True\n")

    for t in trades:
        if group and (t[1], t[3], t[4]) != (group[-1][1], group[-1][3], group[-1][4]):
            yield line(group)
            agg += 1
            group = []
        group.append(t)
    if group:
        yield line(group)


def write_zip(folder: Path, name: str, lines) -> Path:
    """`name`.zip holding `name`.csv, and its `.CHECKSUM`, as Binance publishes them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open(f"{name}.csv", "w") as member:
            buf = []
            for line in lines:
                buf.append(line)
                if len(buf) >= 10_000:
                    member.write("".join(buf).encode())
                    buf = []
            member.write("".join(buf).encode())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (folder / f"{name}.zip.CHECKSUM").write_text(f"{digest}  {name}.zip\n")
    return path


def write_archives(history: BinanceHistory, folder: Path, kinds=("trades",), monthly: bool = False,
                   unit: str | None = None) -> list[Path]:
    """Daily (or monthly) archive files of every complete history day; the partial last day is
    not published yet (Binance publishes a day on the next one)."""
    days = history.days[:-1]
    out = []
    groups: dict[str, list[str]] = {}
    for day in days:
        groups.setdefault(day[:7] if monthly else day, []).append(day)
    for label, group in groups.items():
        u = unit or unit_of_day(group[0])
        for kind in kinds:
            name = f"{history.symbol}-{kind}-{label}"
            trades = history.all_trades(group)
            lines = trade_lines(trades, u) if kind == "trades" else agg_trade_lines(
                trades, u, first_agg_id=history.first_ids[history.days.index(group[0])])
            out.append(write_zip(folder, name, lines))
    return out
