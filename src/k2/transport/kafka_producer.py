"""The Kafka transport: feed handlers -> `market.crypto.trades.<exchange>.raw` (Kafka or Redpanda).

One message per trade. The value is the trade's native record as JSON, an object keyed by the
bronze column names of the exchange with the values exactly as parsed (decimal strings stay
strings, `received_at` is the feed's receive time in µs); the key is the native symbol, so each
symbol's trades stay in order on one partition. Frames the feed could not parse go to
`market.crypto.rejects.raw` with their raw bytes and the reason in headers, so the sink keeps them.

The producer is confluent-kafka (librdkafka): idempotent, acks=all, lz4, linger a few ms. Its
local queue is the bounded buffer: when it is full, `produce()` raises BufferError, the feed stops
reading its sockets (TCP back-pressure, as with the direct transport) and the rows wait in a small
overflow list until a poll thread has made room. librdkafka retries failed sends until
`message.timeout.ms`; a message that still fails is counted, logged and appended to a spool file
in the data dir (`spool/kafka-spool.jsonl`), which the next start of the feed sends again. Nothing is
dropped silently.

Settings, topics and the spool are shared with the consumer (kafka_common.py). This module and
what it imports stay clear of chDB, pyarrow and numpy: `k2 feed` runs on machines without a
warehouse (tests/test_layout.py checks it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgspec

from k2.exchanges import ADAPTERS
from k2.exchanges.base import ExchangeAdapter
from k2.rejects import Reject
from k2.transport import spool
from k2.transport.kafka_common import (
    DEFAULT_PARTITIONS,
    GAPS_TOPIC,
    REJECTS_TOPIC,
    TABLE_HEADER,
    BrokerWatch,
    KafkaException,
    Producer,
    Spool,
    admin_client,
    client_config,
    ensure_topics,
    new_client,
    redact,
    trades_topic,
    wait_for_broker,
)

log = logging.getLogger("k2.kafka")


# -- the producer transport ----------------------------------------------------------------------
@dataclass
class KafkaStats:
    written: dict[str, int] = field(default_factory=dict)  # produced to Kafka (at close: acknowledged)
    duplicates: dict[str, int] = field(default_factory=dict)  # always 0 here; the feed drops repeats
    rejects_written: int = 0
    delivery_failures: int = 0
    spooled: int = 0
    resent_from_spool: int = 0
    buffer_full: int = 0
    last_error: str = ""


def _record_types(adapter: ExchangeAdapter) -> type:
    """A msgspec Struct whose JSON is the native record: {column: value, ...} in bronze order."""
    return msgspec.defstruct(f"{adapter.name.capitalize()}Record", [(c, Any) for c in adapter.columns])


class KafkaTransport:
    """Same interface as DirectTransport; see the module docstring."""

    name = "kafka"

    def __init__(self, bootstrap: str, options: dict[str, str], adapters: list[ExchangeAdapter],
                 spool_dir: Path, max_buffered: int = 200_000, linger_ms: int = 5,
                 partitions: int = DEFAULT_PARTITIONS, replication_factor: int | None = None,
                 flush_timeout_s: float = 30.0):
        self.bootstrap = bootstrap
        self.options = options
        self.adapters = {a.name: a for a in adapters}
        self.partitions, self.replication_factor = partitions, replication_factor
        self.max_buffered = max(1000, int(max_buffered))
        self.flush_timeout_s = flush_timeout_s
        self.watch = BrokerWatch(bootstrap, "producer")
        self.spool = Spool(spool_dir)
        self.stats = KafkaStats(written={a.name: 0 for a in adapters}, duplicates={a.name: 0 for a in adapters})
        self._topics = {a.name: trades_topic(a.name) for a in adapters}
        self._exchange_by_topic = {t: n for n, t in self._topics.items()}
        # an exchange's other wire API (Kraken v2) has other columns: say which bronze table
        # the record belongs to; the default API's records carry no header
        self._headers = {a.name: None if ADAPTERS.get(a.name) is a else [(TABLE_HEADER, a.bronze_table.encode())]
                         for a in adapters}
        enc = msgspec.json.Encoder().encode
        self._encoders: dict[str, Callable[[tuple], bytes]] = {}
        for a in adapters:
            rec = _record_types(a)
            self._encoders[a.name] = (lambda rec, enc: lambda row: enc(rec(*row)))(rec, enc)
        self._conf = client_config(bootstrap, options, "producer", {
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": self.max_buffered,
            "queue.buffering.max.kbytes": 1024 * 1024,
            "message.timeout.ms": 300_000,
            "delivery.report.only.error": True,
        }, self.watch)
        self._conf["on_delivery"] = self._on_delivery
        self.producer = None
        self._overflow: deque = deque()
        self._lock = threading.Lock()
        self._on_pause: Callable[[bool], None] | None = None
        self._loop = None
        self.paused = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="k2-kafka-poll", daemon=True)
        self._failed: dict[str, int] = {}  # per exchange; delivery reports run on the poll thread

    # -- setup ----------------------------------------------------------------------------------
    def connect(self, stop: threading.Event | None = None, timeout_s: float | None = None) -> "KafkaTransport":
        """Wait for the broker, create missing topics, open the producer and re-send the spool."""
        log.info("kafka: producing to %s %s", self.bootstrap,
                 {k: v for k, v in redact(self._conf).items() if k != "bootstrap.servers"})
        admin = admin_client(self.bootstrap, self.options, self.watch)
        md = wait_for_broker(admin, self.bootstrap, self.watch, stop, timeout_s)
        ensure_topics(admin, [*self._topics.values(), REJECTS_TOPIC, GAPS_TOPIC], self.partitions, self.replication_factor, md)
        self.producer = new_client(Producer, self._conf)
        self._resend_spool()
        self._resend_unwritten()
        return self

    def _resend_unwritten(self) -> None:
        """Rows an earlier `k2 run` in this data dir could not write before it stopped
        (k2.transport.spool): published like live ones, so the sink writes them (once: its key
        check skips what bronze already holds), then the file is deleted."""
        enc = msgspec.json.Encoder().encode
        for path in spool.pending_files(self.spool.dir.parent):
            path = spool.claim(path)
            content = spool.read_spool(path)
            for (adapter, source), rows in content.rows.items():
                rec, topic = _record_types(adapter), trades_topic(adapter.name)
                headers = [("source", source.encode())]
                if ADAPTERS.get(adapter.name) is not adapter:  # an API variant: name its bronze table
                    headers.append((TABLE_HEADER, adapter.bronze_table.encode()))
                for row in rows:
                    self._produce_blocking(topic, enc(rec(*row)), row[adapter.symbol_index], headers)
            for reject in content.rejects:
                self.submit_reject(reject)
            for version in sorted(content.gaps, key=lambda g: int(g.get("updated") or 0)):
                self._produce_or_keep((GAPS_TOPIC, msgspec.json.encode(version), str(version["gap_id"]).encode(), None))
            left = self.producer.flush(self.flush_timeout_s)
            if left:
                self._purge_to_spool()  # the broker's spool keeps them for the next start
            log.warning("kafka: published %d rows an earlier run had spooled (%s)", content.count, path.name)
            if content.damaged_lines:
                spool.keep_damaged(path)
            else:
                path.unlink()

    def _resend_spool(self) -> None:
        pending = self.spool.take_pending()
        for path in pending:
            n = 0
            for topic, key, value, headers in Spool.read(path):
                self._produce_blocking(topic, value, key, headers)
                n += 1
            left = self.producer.flush(self.flush_timeout_s)
            if left:
                self._purge_to_spool()
            path.unlink()
            self.stats.resent_from_spool += n
            log.info("kafka: re-sent %d messages from the spool %s", n, path.name)

    def _produce_blocking(self, topic, value, key, headers=None) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers)
                return
            except BufferError:
                self.producer.poll(0.1)

    # -- feed side (event loop thread) -----------------------------------------------------------
    def set_pause_callback(self, callback: Callable[[bool], None]) -> None:
        self._on_pause = callback

    def submit(self, adapter: ExchangeAdapter, rows: list[tuple], source: str = "ws") -> None:
        """Publish rows; `source` other than "ws" (backfill: "rest") rides along as a header."""
        name = adapter.name
        topic, encode, si = self._topics[name], self._encoders[name], adapter.symbol_index
        self.stats.written[name] += len(rows)
        headers = self._headers[name]
        if source != "ws":
            headers = [*(headers or []), ("source", source.encode())]
        if self._overflow:
            with self._lock:
                self._overflow.extend((topic, encode(r), r[si], headers) for r in rows)
            return
        produce = self.producer.produce
        i = 0
        try:
            if headers is None:
                for i, row in enumerate(rows):
                    produce(topic, encode(row), row[si])
            else:
                for i, row in enumerate(rows):
                    produce(topic, encode(row), row[si], headers=headers)
        except (BufferError, KafkaException) as exc:  # keep the rows; the poll thread sends them
            with self._lock:
                self._overflow.extend((topic, encode(r), r[si], headers) for r in rows[i:])
            self._buffer_full(exc)
            return

    def submit_reject(self, reject: Reject) -> None:
        headers = [("exchange", reject.exchange.encode()), ("reason", reject.reason.encode("utf-8", "replace")),
                   ("received_us", str(reject.received_us).encode()), ("source", reject.source.encode()),
                   ("origin", reject.origin.encode("utf-8", "replace"))]
        self.stats.rejects_written += 1
        self._produce_or_keep((REJECTS_TOPIC, bytes(reject.raw), reject.exchange.encode(), headers))

    def submit_gap(self, gap) -> None:
        """A gap ledger version (found, filled, unfillable) for the sink to write: `k2 feed` has no
        warehouse of its own. A gap at a symbol's first trade after a reconnect whose first id is
        not found yet carries `since` (µs: from when K2 covered the symbol; -1 for the others), so
        that the next `k2 feed` (k2.transport.kafka_history) and the ledger retry it as the same gap."""
        version = gap.ledger_params()
        self._produce_or_keep((GAPS_TOPIC, msgspec.json.encode(version), gap.gap_id.encode(), None))

    def _produce_or_keep(self, item: tuple) -> None:
        """Produce one (topic, value, key, headers) message, or keep it in the overflow list (in
        order, behind anything already waiting there) when the producer cannot take it now."""
        if not self._overflow:
            try:
                self.producer.produce(item[0], item[1], item[2], headers=item[3])
                return
            except (BufferError, KafkaException) as exc:
                self._buffer_full(exc)
        with self._lock:
            self._overflow.append(item)

    def _buffer_full(self, exc: BaseException) -> None:
        self.stats.buffer_full += 1
        if not self.paused:
            self.paused = True
            if isinstance(exc, BufferError):
                log.warning("kafka: producer buffer full (%d messages); pausing the feed until the broker catches up",
                            len(self.producer))
            else:
                self.stats.last_error = str(exc)[:300]
                log.error("kafka: produce failed (%s); pausing the feed and retrying", self.stats.last_error)
            if self._on_pause:
                self._on_pause(True)

    @property
    def buffered(self) -> int:
        return (len(self.producer) if self.producer is not None else 0) + len(self._overflow)

    # -- delivery reports (poll thread) -----------------------------------------------------------
    def _on_delivery(self, err, msg) -> None:
        if err is None:
            return
        topic = msg.topic()
        self.stats.delivery_failures += 1
        exchange = self._exchange_by_topic.get(topic)
        if exchange is not None:
            self._failed[exchange] = self._failed.get(exchange, 0) + 1
        self.stats.last_error = f"{err.name()}: {err.str()}"
        try:
            self.spool.append(topic, msg.key(), msg.value(), msg.headers(), self.stats.last_error)
            self.stats.spooled += 1
        except OSError as exc:  # the only place a message could be lost: say it loudly
            log.critical("kafka: delivery to %s failed (%s) and the spool %s cannot be written: %s; "
                         "message value: %r", topic, self.stats.last_error, self.spool.path, exc, msg.value())
            return
        if self.stats.delivery_failures == 1 or self.stats.delivery_failures % 1000 == 0:
            log.error("kafka: %d message(s) could not be delivered (%s); kept in %s and re-sent at the next start",
                      self.stats.delivery_failures, self.stats.last_error, self.spool.path)

    def _purge_to_spool(self) -> None:
        """Hand every message still queued back through the delivery callback (-> spool)."""
        try:
            self.producer.purge(in_queue=True, in_flight=True, blocking=True)
        except Exception as exc:  # noqa: BLE001 - purge is best effort at shutdown
            log.error("kafka: purge failed: %s", exc)
        self.producer.poll(0)
        self.producer.flush(1)

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self, loop=None) -> "KafkaTransport":
        if self.producer is None:
            self.connect()
        self._loop = loop
        self._thread.start()
        return self

    def _poll_loop(self) -> None:
        last_check = time.monotonic()
        while not self._stopping.is_set():
            self.producer.poll(0.05)
            if self.watch.fatal:
                self._replace_producer()
            if self._overflow:
                self._drain_overflow()
            if self.paused and not self._overflow and len(self.producer) < self.max_buffered // 2:
                self.paused = False
                log.info("kafka: producer buffer has room again; resuming the feed")
                if self._on_pause and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._on_pause, False)
            now = time.monotonic()
            if self.watch.down_since is not None and now - last_check > 2.0:
                last_check = now
                try:
                    self.producer.list_topics(timeout=1.0)
                    self.watch.mark_up()
                except Exception:  # noqa: BLE001 - still down; error_cb says so
                    pass

    def _drain_overflow(self) -> None:
        produce = self.producer.produce
        with self._lock:
            ov = self._overflow
            while ov:
                topic, value, key, headers = ov[0]
                try:
                    produce(topic, value, key, headers=headers)
                except (BufferError, KafkaException):
                    return
                ov.popleft()

    def _replace_producer(self) -> None:
        """After a fatal error (e.g. the idempotent producer's sequence state broke) librdkafka
        refuses every message: open a new producer; whatever the old one still held goes through
        the spool and is re-sent at once."""
        log.critical("kafka: the producer hit a fatal error (%s); replacing it", self.watch.fatal)
        old = self.producer
        with self._lock:
            self.producer = new_client(Producer, self._conf)
            self.watch.fatal = ""
        try:
            old.purge(in_queue=True, in_flight=True, blocking=False)
        except Exception as exc:  # noqa: BLE001
            log.error("kafka: purge of the failed producer: %s", exc)
        old.poll(0)  # delivery reports of the purged messages -> spool
        old.flush(0)
        self._resend_spool()

    def close(self, timeout: float | None = None) -> None:
        """Send everything buffered; what the broker still has not acknowledged after the flush
        timeout goes to the spool."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        if self.producer is None:
            return
        timeout = timeout if timeout is not None else self.flush_timeout_s
        deadline = time.monotonic() + timeout
        while self._overflow and time.monotonic() < deadline:
            self._drain_overflow()
            self.producer.poll(0.05)
        left = self.producer.flush(max(0.0, deadline - time.monotonic()))
        for topic, value, key, headers in list(self._overflow):
            self.spool.append(topic, key if isinstance(key, bytes) else str(key).encode(), value, headers,
                              "not sent before shutdown")
            self.stats.spooled += 1
            exchange = self._exchange_by_topic.get(topic)
            if exchange is not None:
                self._failed[exchange] = self._failed.get(exchange, 0) + 1
        self._overflow.clear()
        if left:
            log.error("kafka: %d messages not acknowledged after %.0f s; moving them to %s",
                      left, timeout, self.spool.path)
            self._purge_to_spool()
        for exchange, n in self._failed.items():  # `written` = acknowledged by the broker
            self.stats.written[exchange] -= n
        self._failed.clear()
        self.producer = None  # let librdkafka shut the client down (it keeps reconnecting otherwise)
        if self.stats.spooled:
            log.warning("kafka: %d messages are in %s; the next `k2 feed` re-sends them",
                        self.stats.spooled, self.spool.path)
