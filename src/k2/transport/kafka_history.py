"""What the broker already holds, read by `k2 feed` before it subscribes: the Kafka analogue of
`k2 run` asking bronze (k2.services.store.WarehouseStore.stored_history / gaps_to_retry).

  * From each raw trades topic it produces to, the last trade of each of its symbols: the tail of
    every partition is read backwards in growing steps until every symbol has been seen or the
    partitions' starts are reached. Per symbol: the highest id (exchanges with sequential ids) or
    the latest trade time among the messages read, which seeds the gap tracker, so the trades
    the venue sent while the feed was down become a gap that REST backfill fills.
  * From the gaps topic, the newest version (by `updated`) of every gap of the feed's exchanges:
    the open ones (and those an older K2 marked unfillable because REST failed) are retried.

Both reads share one deadline. A read that fails or runs out of time is never silent: a warning
names the topic (and the symbols not found yet), and the feed runs with what was read (its live
trades matter more than the history it could not check). A symbol absent from a topic read to
its start has no history: the same as a symbol bronze has never stored.

One plain consumer (assign, never subscribe: it joins no group and commits nothing), with a
small fetch queue (the feed's memory budget is ~100 MB). Stays clear of chDB/pyarrow/numpy.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass, field

import msgspec

from k2.exchanges import ADAPTERS
from k2.exchanges.base import ExchangeAdapter
from k2.feed.gaps import Gap
from k2.transport.kafka_common import (
    GAPS_TOPIC,
    TABLE_HEADER,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
    client_config,
    new_client,
    trades_topic,
)

log = logging.getLogger("k2.kafka")

#: the whole read (every trades topic and the gaps topic) stops after this many seconds
HISTORY_TIMEOUT_S = 60.0
#: messages read back per partition in the first step; each further step doubles, up to the cap
FIRST_STEP, MAX_STEP = 2_000, 200_000
#: the gaps an older K2 marked unfillable because REST failed (an exception's name): retried too,
#: as in warehouse/queries/gaps_to_retry.sql
_REST_FAILURE = re.compile(r"^[A-Za-z]*(Error|Exception)\b")


@dataclass
class BrokerHistory:
    """What the broker held at the feed's start, per exchange; the pipeline asks it the way
    `k2 run` asks its store."""

    ids: dict[str, dict[str, int]] = field(default_factory=dict)
    times: dict[str, dict[str, int]] = field(default_factory=dict)
    gaps: dict[str, list[Gap]] = field(default_factory=dict)
    #: what could not be read (one line each; also logged as warnings)
    incomplete: list[str] = field(default_factory=list)

    def stored_history(self, adapter: ExchangeAdapter) -> tuple[dict[str, int], dict[str, int]]:
        ids = self.ids.get(adapter.name, {})
        return ids, ({} if adapter.sequential_id_index is not None else self.times.get(adapter.name, {}))

    def gaps_to_retry(self, adapter: ExchangeAdapter) -> list[Gap]:
        return list(self.gaps.get(adapter.name, []))


def read_broker_history(bootstrap: str, options: dict[str, str], wanted: dict[ExchangeAdapter, list[str]],
                        timeout_s: float = HISTORY_TIMEOUT_S, stop: threading.Event | None = None) -> BrokerHistory:
    """The last trade per symbol of `wanted` (adapter -> native symbols) and the gaps to retry."""
    history = BrokerHistory()
    deadline = time.monotonic() + timeout_s
    conf = client_config(bootstrap, options, "consumer", {
        "group.id": "k2-feed-history",  # required by the client; assign() joins no group
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,  # where a partition ends, as its fetches say
        # a small prefetch (the feed's memory budget): librdkafka's defaults queue up to 100,000
        # messages or 64 MB per partition ahead of the reader
        "queued.min.messages": 5000,
        "queued.max.messages.kbytes": 2048,
        "fetch.max.bytes": 1024 * 1024,
        "max.partition.fetch.bytes": 1024 * 1024,
        # the broker answers a fetch at a partition's end after this wait: the end of an empty or
        # fully read partition is known in ~0.1 s, not librdkafka's default 0.5 s (tansu: ~1 s)
        "fetch.wait.max.ms": 50,
        "fetch.error.backoff.ms": 50,
    })
    consumer = new_client(Consumer, conf)
    try:
        for adapter, natives in wanted.items():
            topic = trades_topic(adapter.name)
            try:
                _read_last_trades(consumer, adapter, natives, history, deadline, stop)
            except (KafkaException, _OutOfTime) as exc:
                if stop is not None and stop.is_set():
                    return history  # the feed is stopping (it says so)
                _incomplete(history, f"{topic}: {_reason(exc)}; the trades {adapter.name} sent while the feed "
                                     "was down are not backfilled for those")
        names = {a.name for a in wanted}
        try:
            _read_gaps(consumer, names, history, deadline, stop)
        except (KafkaException, _OutOfTime) as exc:
            if stop is not None and stop.is_set():
                return history
            _incomplete(history, f"{GAPS_TOPIC}: {_reason(exc)}; gaps an earlier feed left open may not be retried")
    finally:
        consumer.close()
    return history


class _OutOfTime(Exception):
    pass


def _reason(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and hasattr(exc.args[0], "str"):
        return exc.args[0].str()
    return str(exc) or type(exc).__name__


def _incomplete(history: BrokerHistory, line: str) -> None:
    history.incomplete.append(line)
    log.warning("kafka: could not read what the broker holds: %s", line)


def _partitions(consumer, topic: str, deadline: float) -> list[tuple[int, int, int]]:
    """(partition, low, high) of each partition of the topic; [] when it does not exist."""
    md = consumer.list_topics(topic, timeout=_left(deadline, 10.0))
    tm = md.topics.get(topic)
    if tm is None or tm.error is not None:
        return []
    out = []
    for p in sorted(tm.partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_left(deadline, 10.0))
        out.append((p, low, high))
    return out


def _high(consumer, topic: str, partition: int) -> int:
    """Where the partition ends as the last fetch said (for the count in the log line)."""
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
    except KafkaException:
        return 0


def _left(deadline: float, cap: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _OutOfTime("ran out of time")
    return min(cap, left)


def _read_range(consumer, topic: str, windows: dict[int, tuple[int, int | None]], deadline: float,
                stop: threading.Event | None, handle) -> None:
    """Hand every message of the offset windows {partition: [start, end)} to `handle(msg)`; an
    end of None reads to the partition's end as the broker reports it on fetching (a broker's
    high watermark from a listing may lag its log: tansu's names the last batch's first offset)."""
    open_ = {p: w for p, w in windows.items() if w[1] is None or w[1] > w[0]}
    if not open_:
        return
    consumer.assign([TopicPartition(topic, p, start) for p, (start, _end) in open_.items()])
    idle = 0
    while open_:
        if stop is not None and stop.is_set():
            raise _OutOfTime("stopped")
        msgs = consumer.consume(1000, _left(deadline, 0.05))  # returns at 1,000 or after 50 ms
        for msg in msgs:
            p, off = msg.partition(), msg.offset()
            w = open_.get(p)
            if msg.error() is not None:
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(msg.error())
                if w is not None and (w[1] is None or off >= w[1]):
                    del open_[p]
                continue
            if w is None or off < w[0]:
                continue
            if w[1] is not None and off >= w[1]:
                del open_[p]
                continue
            handle(msg)
            if w[1] is not None and off >= w[1] - 1:
                del open_[p]
        if not msgs:
            idle += 1
            if idle % 10 == 0:  # offsets may skip (compaction, control records): ask where each stands
                for tp in consumer.position([TopicPartition(topic, p) for p in list(open_)]):
                    end = open_[tp.partition][1]
                    if end is not None and tp.offset >= end:
                        del open_[tp.partition]
        else:
            idle = 0
    consumer.unassign()


def _read_last_trades(consumer, adapter: ExchangeAdapter, natives: list[str], history: BrokerHistory,
                      deadline: float, stop: threading.Event | None) -> None:
    topic = trades_topic(adapter.name)
    wanted = {s.encode(): s for s in natives}
    columns, defaults = adapter.columns, adapter.column_defaults
    id_index = adapter.sequential_id_index
    # records of the exchange's default API carry no table header; another API's name their table
    table = None if ADAPTERS.get(adapter.name) is adapter else adapter.bronze_table.encode()
    last: dict[str, int] = {}
    #: symbols still looked for: one found in an earlier (newer) window is done
    todo = dict(wanted)
    decode = msgspec.json.decode

    def handle(msg) -> None:
        sym = todo.get(msg.key() or b"")
        if sym is None:
            return
        headers = msg.headers()
        mine = table is None
        for k, v in headers or ():
            if k == TABLE_HEADER:
                mine = v == table
        if not mine:
            return
        try:
            rec = decode(msg.value() or b"")
            row = tuple(rec[c] if c in rec else defaults[c] for c in columns)
            value = int(row[id_index]) if id_index is not None else adapter.row_time_us(row)
        except Exception:  # noqa: BLE001 - a malformed record: the sink rejects it; it is no trade
            return
        if value > last.get(sym, -1):
            last[sym] = value

    step, read, first = FIRST_STEP, 0, True
    try:
        parts = _partitions(consumer, topic, deadline)
        cursors = {p: high for p, _low, high in parts}
        lows = {p: low for p, low, _high in parts}
        while (first or any(cursors[p] > lows[p] for p in cursors)) and len(last) < len(wanted):
            # the first window of each partition runs to its end, wherever the broker says it is now
            windows = {p: (max(lows[p], c - step), None if first else c) for p, c in cursors.items()
                       if first or c > lows[p]}
            _read_range(consumer, topic, windows, deadline, stop, handle)
            for p, (start, end) in windows.items():
                cursors[p] = start
                read += (end if end is not None else _high(consumer, topic, p)) - start
            step, first = min(step * 2, MAX_STEP), False
            todo = {k: v for k, v in todo.items() if v not in last}
    except (KafkaException, _OutOfTime) as exc:  # keep what was found; name what was not
        missing = [s for s in natives if s not in last]
        raise _OutOfTime(f"{_reason(exc)} after {read:,} messages, the last trade of "
                         f"{', '.join(missing[:10])}{' ...' if len(missing) > 10 else ''} not found") from None
    finally:
        (history.ids if id_index is not None else history.times)[adapter.name] = dict(last)
    missing = len(natives) - len(last)
    log.info("kafka: %s: the last trade of %d of %d symbols found in %s messages of %s%s", adapter.name,
             len(last), len(natives), f"{read:,}", topic, f" ({missing} never published there)" if missing else "")


def _read_gaps(consumer, exchanges: set[str], history: BrokerHistory, deadline: float,
               stop: threading.Event | None) -> None:
    """The newest version of every gap of these exchanges, from the whole gaps topic."""
    newest: dict[str, dict] = {}
    parts = _partitions(consumer, GAPS_TOPIC, deadline)
    decode = msgspec.json.decode

    def handle(msg) -> None:
        try:
            v = decode(msg.value() or b"")
            if v.get("exchange") not in exchanges:
                return
            gid, updated = str(v["gap_id"]), int(v.get("updated") or 0)
            v["detected"] = int(v.get("detected") or 0)
        except Exception:  # noqa: BLE001 - not a gap version (the sink rejects it)
            return
        seen = newest.get(gid)
        if seen is None or updated >= int(seen.get("updated") or 0):
            newest[gid] = v

    try:
        _read_range(consumer, GAPS_TOPIC, {p: (low, None) for p, low, _high in parts}, deadline, stop, handle)
    finally:  # a read cut short still retries what it found (a filled gap retried is written once)
        _to_retry(newest, history)
    n = sum(len(g) for g in history.gaps.values())
    log.info("kafka: %d gap(s) left open by an earlier feed (of %d in %s)", n, len(newest), GAPS_TOPIC)


def _to_retry(newest: dict[str, dict], history: BrokerHistory) -> None:
    for v in sorted(newest.values(), key=lambda v: v["detected"]):
        state, detail = v.get("state"), str(v.get("detail") or "")
        if str(v["gap_id"]).startswith("reconcile:"):
            continue
        if state == "open" or (state == "unfillable" and _REST_FAILURE.match(detail)):
            try:
                gap = Gap.from_ledger(v)  # with `since` for a head gap whose first id is not found yet
            except (KeyError, TypeError, ValueError):
                continue
            history.gaps.setdefault(gap.exchange, []).append(gap)
