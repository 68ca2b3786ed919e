"""`k2 coverage`: what the warehouse holds per exchange, symbol and UTC day, and the proof.

For every day: trades, where they came from (live, rest, archive, file), first and last trade.
Where the venue numbers its trades consecutively per symbol (Binance, Coinbase), a day is
*proven complete* when its ids form one run joining the previous stored day's last id and the
next stored day's first id; every hole in the ids is listed with the trades either side and the
gaps-ledger entry that covers it, if any (`k2 backfill --holes` fills them). Other venues'
days say what is known and that no proof is possible. Kraken's time-and-sales archive rows,
kept for reconciliation only, are counted beside silver's trades.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from k2.exchanges import ALL_ADAPTERS
from k2.warehouse import stored_query


def consecutive_venues() -> list[str]:
    """Venues whose REST history pages by consecutive ids (the ones whose days can be proven)."""
    return sorted({a.name for a in ALL_ADAPTERS if a.rest_history is not None and a.rest_history.pages_by == "id"})


@dataclass
class Hole:
    exchange: str
    symbol: str
    from_id: int
    to_id: int
    after_time: str
    before_time: str
    days: tuple[str, str]
    ledger: str = ""  # gap id (state) of a ledger entry overlapping it

    @property
    def size(self) -> int:
        return self.to_id - self.from_id + 1


@dataclass
class Day:
    exchange: str
    symbol: str
    day: str
    trades: int
    sources: str
    first_trade: str
    last_trade: str
    min_id: int
    max_id: int
    status: str
    proven: bool
    reconcile: int | None = None  # Kraken time & sales rows that day


@dataclass
class Coverage:
    days: list[Day] = field(default_factory=list)
    holes: list[Hole] = field(default_factory=list)

    @property
    def proven(self) -> int:
        return sum(d.proven for d in self.days)

    def to_json(self) -> str:
        return json.dumps({"days": [asdict(d) for d in self.days],
                           "holes": [{**asdict(h), "size": h.size} for h in self.holes]}, indent=1)

    def text(self) -> str:
        if not self.days:
            return ""
        head = ("exchange", "symbol", "day", "trades", "sources", "first", "last", "ids", "status")
        rows = [head]
        for d in self.days:
            ids = f"{d.min_id}..{d.max_id}" if d.max_id else "-"
            status = d.status + (f"; time&sales archive {d.reconcile}" if d.reconcile is not None else "")
            rows.append((d.exchange, d.symbol, d.day, str(d.trades), _sources(d.sources),
                         d.first_trade[:12], d.last_trade[:12], ids, status))
        widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
        out = ["  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
        out.append("")
        out.append(f"{self.proven} of {len(self.days)} day(s) proven complete, {len(self.holes)} hole(s)")
        if self.holes:
            out.append("holes (k2 backfill --exchange X --holes fills them):")
            for h in self.holes:
                out.append(f"  {h.exchange} {h.symbol} ids {h.from_id}..{h.to_id} ({h.size} trades) between "
                           f"{h.after_time} and {h.before_time}"
                           + (f"; gaps ledger: {h.ledger}" if h.ledger else "; not in the gaps ledger"))
        return "\n".join(out)


def _sources(raw: str) -> str:
    names = {"ws": "live", "kafka": "live", "rest": "rest", "archive": "archive", "file": "file"}
    return ",".join(dict.fromkeys(names.get(s, s) for s in raw.split(",") if s)) or "-"


def coverage(reader, exchange: str = "all", symbol: str = "", since: str = "1970-01-01 00:00:00",
             until: str = "2200-01-01 00:00:00") -> Coverage:
    consecutive = consecutive_venues()
    exchanges = consecutive if exchange == "all" else [e for e in consecutive if e in exchange.split(",")]
    params = {"exchange": exchange, "symbol": symbol, "since": since, "until": until,
              "consecutive": "[" + ",".join(f"'{e}'" for e in consecutive) + "]"}
    arr = "[" + ",".join(f"'{e}'" for e in exchanges) + "]"
    holes = []
    if exchanges:
        ledger = [r for r in reader.rows(stored_query("coverage_gaps"), {"exchanges": arr})]
        for r in reader.rows(stored_query("coverage_holes"), {**params, "exchanges": arr}):
            h = Hole(r[0], r[1], int(r[2]), int(r[3]), r[6], r[7], (r[4], r[5]))
            for g in ledger:
                if g[0] == h.exchange and g[1] == h.symbol and g[4] is not None and g[5] is not None \
                        and int(g[4]) <= h.to_id and int(g[5]) >= h.from_id:
                    h.ledger = f"{g[2]} ({g[3]})"
                    break
            holes.append(h)
    reconcile: dict[tuple[str, str], int] = {}
    if exchange == "all" or "kraken" in exchange.split(","):
        for pair, day, n in reader.rows(stored_query("coverage_timesales"), params):
            reconcile[(pair, day)] = int(n)
    cov = Coverage(holes=[h for h in holes if h.days[1] >= since[:10] and h.days[0] <= until[:10]])
    for r in reader.rows(stored_query("coverage_days"), params):
        ex, sym, day, trades, distinct, sources, first, last, lo, hi, prev_max, next_min, consec, proven = r
        trades, distinct, lo, hi = int(trades), int(distinct), int(lo), int(hi)
        proven = bool(int(proven)) if not isinstance(proven, bool) else proven
        if not (int(consec) if not isinstance(consec, bool) else consec):
            status = "no proof possible: the venue's ids are not consecutive"
        elif proven:
            status = "proven complete"
        elif trades != distinct:
            status = f"{trades - distinct} trade id(s) stored twice"
        else:
            day_holes = [h for h in holes if h.exchange == ex and h.symbol == sym and h.days[0] <= day <= h.days[1]]
            if day_holes:
                status = f"{len(day_holes)} hole(s), {sum(h.size for h in day_holes)} trade(s) missing"
            elif int(prev_max) == 0:
                status = "not proven: the first stored day (nothing before it to join)"
            elif int(next_min) == 0:
                status = "not proven yet: the last stored day (its end joins no later trade)"
            else:
                status = "not proven"
        rec = reconcile.get((sym.replace("/", ""), day)) if ex == "kraken" else None
        cov.days.append(Day(ex, sym, day, trades, sources, first, last, lo, hi, status, proven, rec))
    return cov
