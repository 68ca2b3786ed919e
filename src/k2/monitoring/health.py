"""Health: a few named conditions, each ok or not with a reason, that every service reports the
same way -- `/healthz` (503 and the reasons when one fails), `k2 status` (exit 1 and why), the
`k2_health{condition}` gauge and the alert rules built on it.

A condition is about one thing an operator can act on:

    feed:<exchange>   every connection of the exchange is up and has had a message lately
    venues            every configured exchange has connected at least once (a wrong URL, a venue
                      down at start)
    writes            the last insert into the warehouse worked (fails on any cause: a full disk,
                      a read-only session, a broken part, a server that refuses)
    buffer            rows are not waiting with nothing written for `stall_s` (a writer stuck
                      behind a slow read, a lock, a frozen server)
    broker:<role>     the Kafka broker answers the producer / the consumer (Kafka mode)
    disk              the data dir's filesystem has room (the writer keeps a reserve free)
    storage           no damaged part left unrepaired, no repair deferred (k2.warehouse.repair)

The writers keep the facts (`last_write_at`, `failing_since`, `last_error` in their stats); this
module only turns facts into conditions, so another kind of condition (per symbol, per venue
maintenance) is one more function returning `Condition`s.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Iterable

#: rows waiting with nothing written for this long turn `buffer` red
STALL_S = 30.0
#: a connection silent for this long turns its `feed:<exchange>` red
FEED_MAX_AGE_S = 60.0
#: the writer stops inserting (and `disk` turns red) below this much free space on the data dir's
#: filesystem, so that ClickHouse never runs out halfway through a part and the data dir stays
#: readable and repairable (a merge or a repair needs room too)
DISK_RESERVE_BYTES = 128 * 2**20


@dataclass(frozen=True)
class Condition:
    name: str
    ok: bool
    reason: str = ""


@dataclass
class Health:
    conditions: list[Condition] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.conditions)

    @property
    def failing(self) -> list[Condition]:
        return [c for c in self.conditions if not c.ok]

    def summary(self) -> str:
        """One line: the failing conditions and why ("" when healthy)."""
        return "; ".join(f"{c.name}: {c.reason}" for c in self.failing)

    def as_dict(self) -> dict[str, Any]:
        return {"healthy": self.ok,
                "conditions": {c.name: {"ok": c.ok, "reason": c.reason} for c in self.conditions}}


def _ago(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


# -- feeds ------------------------------------------------------------------------------------------
def feed_conditions(connections: Iterable[Any], exchanges: Iterable[str], now: float | None = None,
                    max_age_s: float = FEED_MAX_AGE_S) -> list[Condition]:
    """`feed:<exchange>` per exchange, and `venues`: has every exchange connected at least once.
    `connections`: objects with exchange, connection, connected, last_message_at, last_error and,
    optionally, ever_connected (k2.feed.connection.ConnectionStats)."""
    now = time.time() if now is None else now
    by_exchange: dict[str, list[Any]] = {ex: [] for ex in exchanges}
    for c in connections:
        by_exchange.setdefault(c.exchange, []).append(c)
    out, never = [], []
    for ex, conns in by_exchange.items():
        problems = []
        if not conns:
            problems.append("no connection (nothing to subscribe)")
        for c in conns:
            if not c.connected:
                err = f": {c.last_error}" if getattr(c, "last_error", "") else ""
                problems.append(f"{c.connection} down{err}")
            elif c.last_message_at is None:
                problems.append(f"{c.connection} has had no message yet")
            elif now - c.last_message_at >= max_age_s:
                problems.append(f"{c.connection} silent for {_ago(now - c.last_message_at)}")
        if conns and not any(getattr(c, "ever_connected", True) for c in conns):
            never.append(ex)
        out.append(Condition(f"feed:{ex}", not problems, "; ".join(problems)[:300]))
    out.append(Condition("venues", not never,
                         f"never connected: {', '.join(never)}" if never else ""))
    return out


# -- writes -----------------------------------------------------------------------------------------
def write_conditions(stats: Any, buffered: int, started_at: float, now: float | None = None,
                     stall_s: float = STALL_S) -> list[Condition]:
    """`writes` and `buffer` from a writer's stats (`failing_since`, `failures_in_a_row`,
    `last_error`, `last_write_at`, all optional) and how many rows wait."""
    now = time.time() if now is None else now
    failing_since = getattr(stats, "failing_since", None)
    if failing_since is not None:
        n = getattr(stats, "failures_in_a_row", 0) or 1
        writes = Condition("writes", False, f"inserts failing for {_ago(now - failing_since)} ({n} attempts): "
                                            f"{getattr(stats, 'last_error', '') or 'unknown error'}"[:400])
    else:
        writes = Condition("writes", True)
    last = getattr(stats, "last_write_at", None) or started_at
    if buffered > 0 and now - last >= stall_s:
        buffer = Condition("buffer", False, f"{buffered:,} rows waiting, nothing written for {_ago(now - last)}")
    else:
        buffer = Condition("buffer", True)
    return [writes, buffer]


def broker_condition(watch: Any) -> Condition:
    """`broker:<role>` (producer, consumer) from a k2.transport.kafka_common.BrokerWatch
    (`down_since`: monotonic, or None; `fatal`: a fatal client error)."""
    name = f"broker:{getattr(watch, 'role', 'kafka')}"
    if getattr(watch, "fatal", ""):
        return Condition(name, False, f"Kafka client failed: {watch.fatal}"[:300])
    down = getattr(watch, "down_since", None)
    if down is None:
        return Condition(name, True)
    why = f" ({watch.last_reason})" if getattr(watch, "last_reason", "") else ""
    return Condition(name, False, f"Kafka broker unreachable for {_ago(time.monotonic() - down)}{why}"[:300])


def history_condition(incomplete: list[str] | None) -> Condition:
    """`history`: `k2 feed` could not read all of what the broker held at its start (the last trade
    per symbol, the open gaps), so the trades of its own downtime, or gaps an earlier feed left
    open, may never be fetched. It stays red for the life of the process: only a restart that
    reads the broker fully (or `k2 backfill` over the hours) makes the hole known again."""
    if not incomplete:
        return Condition("history", True)
    return Condition("history", False, ("could not read what the broker holds at start: "
                                        + "; ".join(incomplete))[:300])


# -- disk -------------------------------------------------------------------------------------------
def free_bytes(path: os.PathLike | str) -> int | None:
    """Free bytes for an unprivileged writer on the filesystem holding `path` (None: unknown)."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def disk_condition(path: os.PathLike | str | None, reserve: int = DISK_RESERVE_BYTES) -> Condition:
    if path is None:
        return Condition("disk", True)
    free = free_bytes(path)
    if free is None or free >= reserve:
        return Condition("disk", True)
    return Condition("disk", False, f"{free / 2**20:.0f} MB free on the filesystem of {path} "
                                    f"(K2 keeps {reserve / 2**20:.0f} MB free); writes wait until space is freed")


def storage_condition(wh: Any) -> Condition:
    """`storage` from an opened warehouse's `damage` (parts found broken, not repaired) and
    `deferred` (repairs waiting for free space), set by k2.warehouse.open_warehouse."""
    damage, deferred = list(getattr(wh, "damage", None) or []), list(getattr(wh, "deferred", None) or [])
    if not damage and not deferred:
        return Condition("storage", True)
    what = [f"damaged: {getattr(d, 'text', lambda: str(d))()}" for d in damage] + [f"deferred: {d}" for d in deferred]
    return Condition("storage", False, ("; ".join(what) + " (k2 repair)")[:400])
