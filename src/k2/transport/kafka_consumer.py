"""The Kafka sink: consumer group `k2-bronze-sink` -> bronze tables, with exactly-once effect.

It subscribes to every `market.crypto.trades.<exchange>.raw` topic (a regex, so a new exchange's
topic is picked up) and to `market.crypto.rejects.raw`, and batches messages per (topic,
partition) by size and time. A batch is decoded back into bronze rows with type checks (a message
that does not decode goes to the rejects table with its topic, partition, offset and raw bytes),
written with BronzeWriter (one insert per topic and flush, covering each of its partitions'
offset range: an insert into bronze and its materialized views costs about the same for 100 rows
as for 10,000), and only then are the offsets committed, synchronously.

Why nothing is counted twice:
  * a redelivered message (crash between insert and commit, rebalance, producer retry, a spool
    re-send) holds a trade whose key bronze already has; BronzeWriter skips it whatever the batch
    boundaries are, so silver and gold never see it twice;
  * an exact retry of a batch carries the same insert_deduplication_token
    (`<topic>:<partition>:<first>-<last>[,<partition>:<first>-<last>...]:<digest>`; the digest of
    the first and last messages guards against a topic that was deleted and recreated, whose
    offsets start again at 0);
  * on partition revocation the sink finishes the batches of the revoked partitions and commits
    them before giving the partitions up (or abandons them uncommitted if the insert fails), so the
    next owner starts exactly after what was written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import msgspec

from k2.exchanges import ADAPTERS, ALL_ADAPTERS
from k2.exchanges.base import ExchangeAdapter, is_decimal_string
from k2.monitoring.latency import observe_ingest
from k2.monitoring.health import Condition, Health, broker_condition, disk_condition, write_conditions
from k2.monitoring.metrics import Exposition, health_families, process_families, sink_lag_family, writer_families
from k2.rejects import Reject, now_us
from k2.transport.kafka_common import (
    DEFAULT_PARTITIONS,
    GAPS_TOPIC,
    REJECTS_TOPIC,
    SINK_GROUP,
    TABLE_HEADER,
    TRADES_PATTERN,
    BrokerWatch,
    Consumer,
    KafkaException,
    TopicPartition,
    admin_client,
    client_config,
    default_topics,
    ensure_topics,
    exchange_of,
    new_client,
    redact,
    wait_for_broker,
)
from k2.warehouse import stored_query
from k2.warehouse.bronze import BronzeWriter, PartsMayBeBroken, write_rejects
from k2.warehouse.memory import FreedMemoryRelease

log = logging.getLogger("k2.sink")

def _py_type(ch_type: str) -> Any:
    """The JSON type a bronze column's values must have (ClickHouse type -> msgspec type)."""
    if ch_type.startswith("Nullable(") and ch_type.endswith(")"):
        return _py_type(ch_type[9:-1]) | None
    if ch_type.startswith("LowCardinality(") and ch_type.endswith(")"):
        return _py_type(ch_type[15:-1])
    if ch_type in ("Bool", "Boolean"):
        return bool
    if ch_type.startswith(("Int", "UInt")) and ch_type.lstrip("UInt").isdigit():
        bits = int(ch_type.lstrip("UInt"))
        if ch_type.startswith("U"):  # msgspec decodes at most 2**64-1 and takes no bound above int64
            return Annotated[int, msgspec.Meta(ge=0, le=2**bits - 1) if bits < 64 else msgspec.Meta(ge=0)]
        return Annotated[int, msgspec.Meta(ge=-(2 ** (bits - 1)), le=2 ** (bits - 1) - 1)]
    if ch_type.startswith("Float"):
        return float
    return str


#: columns holding the exchange's decimal strings (silver parses them; reject garbage here)
_DECIMAL_COLUMNS = frozenset(("price", "quantity", "volume"))


class RecordDecoder:
    """JSON native record -> bronze row tuple, checking every value's type."""

    def __init__(self, adapter: ExchangeAdapter):
        self.adapter = adapter
        defaults = adapter.column_defaults  # columns added since older records were written
        fields = [(c, _py_type(t), defaults[c]) if c in defaults else (c, _py_type(t))
                  for c, t in zip(adapter.columns, adapter.column_types)]
        self.struct = msgspec.defstruct(f"{adapter.name.capitalize()}KafkaRecord", fields, kw_only=True)
        self._one = msgspec.json.Decoder(self.struct).decode
        self._many = msgspec.json.Decoder(list[self.struct]).decode
        self._decimal_idx = [i for i, c in enumerate(adapter.columns) if c in _DECIMAL_COLUMNS]
        self._astuple = msgspec.structs.astuple

    def _check(self, row: tuple) -> str:
        for i in self._decimal_idx:
            v = row[i]
            if not v or not is_decimal_string(v):
                return f"{self.adapter.columns[i]} is not a decimal string: {v!r:.60}"
        return ""

    def decode(self, values: list[bytes | None]) -> tuple[list[tuple], list[int], list[tuple[int, str]]]:
        """(rows, index of each row's message, [(message index, reason)] for the bad ones)."""
        astuple = self._astuple
        if all(values):
            try:
                recs = self._many(b"[" + b",".join(values) + b"]")  # one C call for the whole batch
            except (msgspec.DecodeError, msgspec.ValidationError):
                recs = None
            if recs is not None and len(recs) == len(values):
                rows = [astuple(r) for r in recs]
                if not self._decimal_idx or all(
                        all(is_decimal_string(r[i]) if r[i] else False for i in self._decimal_idx) for r in rows):
                    return rows, list(range(len(rows))), []
        rows, idx, bad = [], [], []
        for n, v in enumerate(values):
            if v is None:
                bad.append((n, "empty message (no value)"))
                continue
            try:
                row = astuple(self._one(v))
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                bad.append((n, f"malformed {self.adapter.name} record: {text}"[:300]))
                continue
            reason = self._check(row)
            if reason:
                bad.append((n, reason))
                continue
            rows.append(row)
            idx.append(n)
        return rows, idx, bad


_GAP_KEYS = ("gap_id", "exchange", "symbol", "kind", "start", "end", "state", "recovered", "detail", "detected")


def _header_map(msg) -> dict[str, str]:
    out = {}
    for k, v in msg.headers() or ():
        out[k] = (v or b"").decode("utf-8", "replace")
    return out


def reject_from_message(msg) -> Reject:
    """A frame the feed could not parse, forwarded on the rejects topic."""
    h = _header_map(msg)
    try:
        received = int(h.get("received_us", ""))
    except ValueError:
        received = now_us()
    return Reject(h.get("exchange", ""), h.get("source", "kafka") or "kafka", h.get("reason", "rejected by the feed"),
                  msg.value() or b"", received, h.get("origin", ""), msg.topic(), msg.partition(), msg.offset())


@dataclass
class SinkStats:
    written: dict[str, int] = field(default_factory=dict)  # new rows in bronze
    duplicates: dict[str, int] = field(default_factory=dict)  # redelivered rows bronze already held
    consumed: int = 0
    rejects_written: int = 0
    malformed: int = 0
    batches: int = 0
    commits: int = 0
    commit_failures: int = 0
    insert_errors: int = 0
    abandoned_batches: int = 0
    rebalances: int = 0
    assigned: int = 0
    last_insert_s: float = 0.0
    last_error: str = ""
    lag: dict[str, int] = field(default_factory=dict)  # "topic[partition]" -> messages behind
    #: the health facts (k2.monitoring.health.write_conditions): wall-clock times
    last_write_at: float | None = None
    failing_since: float | None = None
    failures_in_a_row: int = 0


class _Part:
    __slots__ = ("msgs", "since")

    def __init__(self) -> None:
        self.msgs: list = []
        self.since = time.monotonic()


class KafkaSink:
    def __init__(self, wh, bootstrap: str, options: dict[str, str], group: str = SINK_GROUP,
                 max_rows: int = 50_000, max_delay_s: float = 0.05, partitions: int = DEFAULT_PARTITIONS,
                 replication_factor: int | None = None):
        self.wh = wh
        self._memory = FreedMemoryRelease(wh)
        self.bootstrap, self.options, self.group = bootstrap, options, group
        self.max_rows, self.max_delay_s = max(1, max_rows), max(0.0, max_delay_s)
        self.partitions, self.replication_factor = partitions, replication_factor
        # keyed by bronze table: an exchange may have several wire APIs (Kraken v1 and v2)
        self.writers = {a.bronze_table: BronzeWriter(wh, a) for a in ALL_ADAPTERS}
        self.decoders = {a.bronze_table: RecordDecoder(a) for a in ALL_ADAPTERS}
        self._default_table = {name: a.bronze_table for name, a in ADAPTERS.items()}
        self.stats = SinkStats(written={n: 0 for n in ADAPTERS}, duplicates={n: 0 for n in ADAPTERS})
        self.watch = BrokerWatch(bootstrap, "consumer")
        self.consumer = None
        self._parts: dict[tuple[str, int], _Part] = {}
        self._buffered = 0
        self._retry_at: float | None = None
        self._retry_delay = 0.2
        self._paused: list = []
        self.started_at = time.time()
        self._last_msg_at: float | None = None
        # fault injection for the tests: SIGKILL this process between a bronze insert and its
        # offset commit, after N inserts or once a file exists
        self._crash_after = int(os.environ.get("K2_SINK_CRASH_AFTER_INSERTS", "0") or 0)
        self._crash_file = os.environ.get("K2_SINK_CRASH_WHEN_FILE", "")
        self._inserts = 0

    # -- setup ------------------------------------------------------------------------------------
    def connect(self, stop: threading.Event | None = None, timeout_s: float | None = None) -> "KafkaSink":
        conf = client_config(self.bootstrap, self.options, "consumer", {
            "group.id": self.group,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            "max.poll.interval.ms": 300_000,
            "statistics.interval.ms": 5000,
            "fetch.wait.max.ms": 100,
        }, self.watch)
        if str(conf.get("enable.auto.commit", "false")).lower() not in ("false", "0"):
            log.warning("kafka: ignoring enable.auto.commit=%s: the sink commits only after bronze has the rows",
                        conf["enable.auto.commit"])
        conf["enable.auto.commit"] = False
        conf["enable.auto.offset.store"] = False
        conf["stats_cb"] = self._on_stats
        log.info("kafka: consuming from %s as group %s %s", self.bootstrap, self.group,
                 {k: v for k, v in redact(conf).items() if k not in ("bootstrap.servers", "group.id")})
        admin = admin_client(self.bootstrap, self.options, self.watch)
        md = wait_for_broker(admin, self.bootstrap, self.watch, stop, timeout_s)
        ensure_topics(admin, default_topics(ADAPTERS), self.partitions, self.replication_factor, md)
        self.consumer = new_client(Consumer, conf)
        self.consumer.subscribe([TRADES_PATTERN, REJECTS_TOPIC, GAPS_TOPIC], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_lost)
        return self

    # -- rebalance callbacks (run inside consume(), on the sink thread) ----------------------------
    def _on_assign(self, consumer, partitions) -> None:
        self.stats.rebalances += 1
        self.stats.assigned = len(consumer.assignment()) + len(partitions)
        log.info("kafka: assigned %d partitions: %s", len(partitions), _tp_text(partitions))

    def _on_revoke(self, consumer, partitions) -> None:
        """Finish the revoked partitions' batches and commit them before they move to another
        sink; if the insert fails, abandon them uncommitted (the next owner re-reads them and the
        bronze key check keeps the result exact)."""
        self.stats.rebalances += 1
        keys = [(p.topic, p.partition) for p in partitions]
        due = [k for k in keys if k in self._parts]
        if due:
            ok = self._flush(due, during_revoke=True)
            if not ok:
                for k in due:
                    if k in self._parts:
                        self._drop(k)
                        self.stats.abandoned_batches += 1
        self.stats.assigned = max(0, len(consumer.assignment()) - len(partitions))
        log.info("kafka: revoked %d partitions: %s", len(partitions), _tp_text(partitions))

    def _on_lost(self, consumer, partitions) -> None:
        for p in partitions:
            if (p.topic, p.partition) in self._parts:
                self._drop((p.topic, p.partition))
                self.stats.abandoned_batches += 1
        log.warning("kafka: lost %d partitions (session expired); their unwritten batches are left to the next owner",
                    len(partitions))

    def _on_stats(self, text: str) -> None:
        try:
            doc = json.loads(text)
        except ValueError:
            return
        lag = {}
        for topic, t in (doc.get("topics") or {}).items():
            for pid, p in (t.get("partitions") or {}).items():
                if pid == "-1" or p.get("consumer_lag", -1) < 0:
                    continue
                lag[f"{topic}[{pid}]"] = int(p["consumer_lag"])
        self.stats.lag = lag

    # -- main loop ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event, duration: float | None = None) -> None:
        deadline = time.monotonic() + duration if duration else None
        while not stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            self.step()

    def step(self, max_wait: float | None = None) -> None:
        """One round: take what has arrived, write the batches that are due."""
        now = time.monotonic()
        # consume() waits its whole timeout unless 10,000 messages come: keep it short
        wait = max_wait if max_wait is not None else min(0.1, max(0.01, self.max_delay_s))
        if self._retry_at is not None:
            wait = min(wait, max(0.0, self._retry_at - now))
        elif self._parts:
            oldest = min(p.since for p in self._parts.values())
            wait = min(wait, max(0.0, oldest + self.max_delay_s - now))
        msgs = self.consumer.consume(num_messages=10_000, timeout=wait)
        if msgs:
            self._add(msgs)
        now = time.monotonic()
        if self._retry_at is not None:
            if now < self._retry_at:
                return
            due = list(self._parts)
        else:
            full = self._buffered >= 4 * self.max_rows
            due = [k for k, p in self._parts.items()
                   if full or len(p.msgs) >= self.max_rows or now - p.since >= self.max_delay_s]
        if due:
            self._flush(due)
            self._memory.after_write()

    def _add(self, msgs: list) -> None:
        parts = self._parts
        n = 0
        for m in msgs:
            if m.error() is not None:
                err = m.error()
                if err.code() != -191:  # _PARTITION_EOF
                    log.warning("kafka: consumer error: %s", err.str())
                continue
            key = (m.topic(), m.partition())
            p = parts.get(key)
            if p is None:
                p = parts[key] = _Part()
            p.msgs.append(m)
            n += 1
        self._buffered += n
        self.stats.consumed += n
        if n:
            self._last_msg_at = time.time()

    def _drop(self, key: tuple[str, int]) -> None:
        p = self._parts.pop(key, None)
        if p is not None:
            self._buffered -= len(p.msgs)

    # -- writing --------------------------------------------------------------------------------------
    def _flush(self, keys: list[tuple[str, int]], during_revoke: bool = False) -> bool:
        """Write the due partitions' batches - one insert per topic, holding every buffered
        partition of that topic (an insert costs the same for 100 rows or 10,000, so fewer and
        bigger is better) - then commit the written offsets in one synchronous call. A failed
        insert keeps its batch (retried with backoff; the consumer is paused meanwhile)."""
        topics = list(dict.fromkeys(t for t, _ in keys))
        done: list = []
        failed = False
        for topic in topics:
            parts = sorted((k, p.msgs) for k, p in self._parts.items() if k[0] == topic and p.msgs)
            if not parts:
                continue
            try:
                self._write(topic, [(k[1], msgs) for k, msgs in parts])
            except PartsMayBeBroken as exc:  # nothing committed: stop; the next start repairs and re-reads
                self.stats.insert_errors += 1
                self.stats.failing_since = self.stats.failing_since or time.time()
                self.stats.last_error = str(exc)
                log.critical("sink: %s", exc)
                raise
            except Exception as exc:  # warehouse down or refusing: keep the batch, retry
                failed = True
                self.stats.insert_errors += 1
                self.stats.failures_in_a_row += 1
                if self.stats.failing_since is None:
                    self.stats.failing_since = time.time()
                self.stats.last_error = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
                log.error("sink: insert into bronze failed (%s, %d messages), retrying in %.1f s: %s",
                          topic, sum(len(m) for _, m in parts), self._retry_delay, self.stats.last_error)
                log.debug("insert failure", exc_info=True)
                break
            self.stats.last_write_at = time.time()
            self.stats.failing_since, self.stats.failures_in_a_row = None, 0
            for k, msgs in parts:
                done.append(TopicPartition(k[0], k[1], msgs[-1].offset() + 1))
                self._drop(k)
        if done:
            self._inserts += 1
            if (self._crash_after and self._inserts >= self._crash_after) or (
                    self._crash_file and os.path.exists(self._crash_file)):
                log.warning("sink: fault injection: killing myself between insert and commit")
                os.kill(os.getpid(), signal.SIGKILL)
            try:
                self.consumer.commit(offsets=done, asynchronous=False)
                self.stats.commits += 1
            except KafkaException as exc:
                # e.g. a rebalance took the partitions: bronze has the rows; whoever re-reads
                # them finds them already stored
                self.stats.commit_failures += 1
                self.stats.last_error = f"commit failed: {exc.args[0].str() if exc.args else exc}"
                log.warning("sink: %s (rows are in bronze; a re-delivery will be skipped)", self.stats.last_error)
        if failed and not during_revoke:
            self._start_retry()
        elif not failed and self._retry_at is not None:
            self._end_retry()
        return not failed

    @staticmethod
    def _token(topic: str, parts: list[tuple[int, list]]) -> str:
        """Deterministic: the topic, each partition's offset range, and a digest of the first and
        last message (a recreated topic starts its offsets at 0 again with other data)."""
        h = hashlib.blake2b(digest_size=6)
        ranges = []
        for partition, msgs in parts:
            ranges.append(f"{partition}:{msgs[0].offset()}-{msgs[-1].offset()}")
            h.update(msgs[0].value() or b"")
            h.update(msgs[-1].value() or b"")
        return f"{topic}:{','.join(ranges)}:{h.hexdigest()}"

    def _write_gaps(self, msgs: list) -> None:
        """Gap ledger versions from the feeds, in order (a gap's versions share a partition). A
        re-delivered version is written again: harmless, the latest version still wins."""
        bad = []
        for m in msgs:
            try:
                params = json.loads(m.value())
                version = {k: params[k] for k in _GAP_KEYS}
                # a feed older than the version stamp: the message's own time orders its versions
                version["updated"] = int(params.get("updated") or m.timestamp()[1] * 1000)
                version["since"] = int(params.get("since", -1))  # absent from an older feed's versions
                self.wh.execute(stored_query("gap_upsert"), version)
            except (ValueError, TypeError, KeyError) as exc:
                bad.append(Reject("", "kafka", f"not a gap event: {exc!r:.200}", m.value() or b"", now_us(), "",
                                  GAPS_TOPIC, m.partition(), m.offset()))
        if bad:
            write_rejects(self.wh, bad)
            self.stats.malformed += len(bad)
            self.stats.rejects_written += len(bad)

    def _write(self, topic: str, parts: list[tuple[int, list]]) -> None:
        token = self._token(topic, parts)
        msgs = [m for _, ms in parts for m in ms]
        started = time.perf_counter()
        if topic == REJECTS_TOPIC:
            rejects = [reject_from_message(m) for m in msgs]
            write_rejects(self.wh, rejects, token="rej:" + token)
            self.stats.rejects_written += len(rejects)
        elif topic == GAPS_TOPIC:
            self._write_gaps(msgs)
        else:
            exchange = exchange_of(topic)
            default = self._default_table.get(exchange)
            # by bronze table (an API variant's header) and by origin (backfill: source "rest")
            groups: dict[tuple[str | None, str], list[int]] = {}
            for i, m in enumerate(msgs):
                table, origin = default, "kafka"
                if m.headers():
                    h = _header_map(m)
                    table, origin = h.get(TABLE_HEADER, default), h.get("source", "kafka")
                groups.setdefault((table, origin), []).append(i)
            values = [m.value() for m in msgs]
            bad: list[tuple[int, str]] = []
            for (table, origin), members in groups.items():
                if table not in self.decoders:
                    what = f"bronze table {table!r}" if table else f"exchange {exchange!r}"
                    bad += [(i, f"no K2 adapter for {what} (topic {topic})") for i in members]
                    continue
                sub = (f":{table}" + ("" if origin == "kafka" else f":{origin}")) if len(groups) > 1 else ""
                rows, idx, sub_bad = self.decoders[table].decode([values[i] for i in members])
                bad += [(members[i], reason) for i, reason in sub_bad]
                if rows:
                    chosen = [msgs[members[i]] for i in idx]
                    writer = self.writers[table]
                    batch = writer.prepare(rows, token + sub, [m.partition() for m in chosen],
                                           [m.offset() for m in chosen])
                    n = writer.commit(batch, source=origin)
                    self.stats.written[exchange] = self.stats.written.get(exchange, 0) + n
                    self.stats.duplicates[exchange] = self.stats.duplicates.get(exchange, 0) + len(rows) - n
                    if len(rows) - n:
                        log.info("sink: %s: %d of %d trades were already in bronze (re-delivery), skipped",
                                 token, len(rows) - n, len(rows))
                    else:  # k2_ingest_latency_seconds (re-deliveries would only blur it)
                        self._observe(writer.adapter.name, batch.times_us)
            if bad:
                bad.sort()
                rejects = [Reject(exchange or "", "kafka", reason, values[i] or b"", now_us(), "",
                                  topic, msgs[i].partition(), msgs[i].offset()) for i, reason in bad]
                write_rejects(self.wh, rejects, token="rej:" + token)
                self.stats.malformed += len(bad)
                self.stats.rejects_written += len(bad)
                log.warning("sink: %d malformed messages in %s kept in the rejects table (first: %s)",
                            len(bad), topic, bad[0][1])
        self.stats.batches += 1
        self.stats.last_insert_s = time.perf_counter() - started
        if log.isEnabledFor(logging.DEBUG):
            oldest = min(m.timestamp()[1] for _, ms in parts for m in ms[:1])
            log.debug("sink: %s: %d messages in %.0f ms; oldest produced %.0f ms ago", topic, len(msgs),
                      self.stats.last_insert_s * 1000, time.time() * 1000 - oldest)

    @staticmethod
    def _observe(exchange: str, times_us) -> None:
        try:
            observe_ingest(exchange, times_us)
        except Exception:  # noqa: BLE001 - a metric must never fail an insert
            log.debug("latency observation failed", exc_info=True)

    def _start_retry(self) -> None:
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, 10.0)
        if not self._paused:
            self._paused = list(self.consumer.assignment())
            if self._paused:
                self.consumer.pause(self._paused)

    def _end_retry(self) -> None:
        self._retry_at = None
        self._retry_delay = 0.2
        if self._paused:
            try:
                self.consumer.resume(self._paused)
            except Exception:  # noqa: BLE001 - partitions may have moved meanwhile
                pass
            self._paused = []
            log.info("sink: bronze inserts work again; resumed consuming")

    # -- shutdown ---------------------------------------------------------------------------------------
    def lag(self) -> int | None:
        """Messages between this sink's position and the end of its assigned partitions."""
        try:
            assignment = self.consumer.assignment()
            if not assignment:
                return None
            total = 0
            for tp in self.consumer.position(assignment):
                _, high = self.consumer.get_watermark_offsets(tp, timeout=2, cached=False)
                pos = tp.offset
                if pos < 0:
                    committed = self.consumer.committed([tp], timeout=2)[0].offset
                    pos = committed if committed >= 0 else 0
                total += max(0, high - pos)
            return total
        except KafkaException:
            return None

    def drain(self, timeout_s: float = 30.0) -> bool:
        """Consume and write until this sink has caught up with everything in its partitions
        (used by `k2 run --kafka` at shutdown so that everything received is written)."""
        deadline = time.monotonic() + timeout_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            before = self.stats.consumed
            self.step(0.05)
            now = time.monotonic()
            if self.stats.consumed != before:
                quiet_since = now
            # caught up: nothing buffered, the broker says no lag, and nothing came for a while
            # (some brokers' high watermarks lag behind, so the quiet period is also required)
            if not self._parts and self._retry_at is None and now - quiet_since >= 1.0 and self.lag() == 0:
                return True
        log.warning("sink: still behind after %.0f s at shutdown; the rest is written on the next start", timeout_s)
        return False

    def close(self) -> None:
        """Write and commit what is buffered (one attempt), then leave the group."""
        if self.consumer is None:
            return
        if self._parts and self._retry_at is None:
            self._flush(list(self._parts), during_revoke=True)
        if self._parts:
            log.warning("sink: %d buffered messages not written at shutdown; they stay uncommitted in Kafka",
                        self._buffered)
            self._parts.clear()
            self._buffered = 0
        try:
            self.consumer.close()
        except Exception as exc:  # noqa: BLE001
            log.warning("kafka: consumer close: %s", exc)
        self.consumer = None

    # -- status ------------------------------------------------------------------------------------------
    @property
    def buffered(self) -> int:
        return self._buffered

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {"pid": os.getpid(), "role": "kafka-sink", "transport": "kafka-sink", "group": self.group,
                "started_at": self.started_at,
                "now": now, "connections": [], "buffered": self._buffered,
                "last_message_age_s": None if self._last_msg_at is None else round(now - self._last_msg_at, 3),
                "broker_down_for_s": None if self.watch.down_since is None
                else round(time.monotonic() - self.watch.down_since, 1),
                "writer": {k: v for k, v in vars(self.stats).items()},
                "health": self.health().as_dict()}

    def health(self) -> Health:
        """broker:consumer, writes, buffer (and disk, embedded): k2.monitoring.health."""
        conditions = [broker_condition(self.watch),
                      *write_conditions(self.stats, self._buffered, self.started_at)]
        if self.consumer is None:
            conditions.append(Condition("consumer", False, "not connected to the broker"))
        if getattr(self.wh, "backend", "") == "embedded":
            conditions.append(disk_condition(self.wh.data_dir))
        return Health(conditions)

    def healthy(self) -> bool:
        return self.health().ok

    def metrics(self) -> bytes:
        """The same families as `k2 run` for the writer side (docs/operations/monitoring.md), plus
        the sink's own: consumer lag, messages consumed, commit failures, rebalances."""
        s = self.stats
        e = Exposition()
        writer_families(e, s)  # k2_trades_written_total, duplicates skipped, insert errors, latency
        sink_lag_family(e, s)  # k2_sink_lag_messages{topic,partition}
        e.family("k2_sink_messages_consumed_total", "counter", "Kafka messages consumed.", [({}, s.consumed)])
        e.family("k2_sink_malformed_total", "counter", "Messages that did not decode (kept in the rejects table).",
                 [({}, s.malformed)])
        e.family("k2_sink_commit_failures_total", "counter", "Offset commits that failed (the rows were in bronze).",
                 [({}, s.commit_failures)])
        e.family("k2_sink_rebalances_total", "counter", "Partition assignments and revocations.",
                 [({}, s.rebalances)])
        e.family("k2_transport_buffered", "gauge", "Messages consumed, not yet written.", [({}, self._buffered)])
        health_families(e, self.health())  # k2_health{condition}, k2_up
        process_families(e)
        return e.render()


def _tp_text(partitions) -> str:
    by_topic: dict[str, list[int]] = {}
    for p in partitions:
        by_topic.setdefault(p.topic, []).append(p.partition)
    return ", ".join(f"{t}{sorted(ps)}" for t, ps in sorted(by_topic.items())) or "none"


class KafkaRunTransport:
    """`k2 run --kafka`: the feed publishes through Kafka and a sink thread in the same process
    writes what comes back into the warehouse. Same interface as DirectTransport."""

    name = "kafka"

    def __init__(self, producer, sink: KafkaSink, drain_timeout_s: float = 60.0):
        self.producer = producer
        self.sink = sink
        self.drain_timeout_s = drain_timeout_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run_sink, name="k2-kafka-sink", daemon=True)
        self.error: BaseException | None = None

    def connect(self, stop: threading.Event | None = None) -> "KafkaRunTransport":
        self.producer.connect(stop)
        self.sink.connect(stop)
        return self

    def set_pause_callback(self, callback) -> None:
        self.producer.set_pause_callback(callback)

    def submit(self, adapter, rows, source: str = "ws") -> None:
        self.producer.submit(adapter, rows, source)

    def submit_reject(self, reject) -> None:
        self.producer.submit_reject(reject)

    @property
    def buffered(self) -> int:
        return self.producer.buffered + self.sink.buffered

    @property
    def stats(self) -> SinkStats:
        return self.sink.stats

    def start(self, loop=None) -> "KafkaRunTransport":
        self.producer.start(loop)
        self._thread.start()
        return self

    def _run_sink(self) -> None:
        try:
            self.sink.run(self._stop)
        except BaseException as exc:  # surfaced at close
            self.error = exc
            log.exception("sink thread failed")

    def close(self, timeout: float | None = None) -> None:
        self.producer.close()
        self._stop.set()
        self._thread.join()
        if self.error is None:
            self.sink.drain(self.drain_timeout_s)
        self.sink.close()
