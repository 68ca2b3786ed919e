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

Extra librdkafka settings come from K2_KAFKA_* (K2_KAFKA_SASL_USERNAME -> sasl.username); a
`producer.` / `consumer.` / `admin.` prefix limits one to that client. Values of settings that look
secret are never logged.

This module must not import chDB: `k2 feed` runs on machines without a warehouse.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import msgspec

from k2.errors import K2Error

try:
    from confluent_kafka import KafkaException
except ImportError:  # an optional dependency: say how to get it, in one line
    raise K2Error("the Kafka transport needs confluent-kafka: pip install 'k2[kafka]'") from None
from k2.exchanges import ADAPTERS
from k2.exchanges.base import ExchangeAdapter
from k2.rejects import Reject

log = logging.getLogger("k2.kafka")

TRADES_TOPIC = "market.crypto.trades.{exchange}.raw"
REJECTS_TOPIC = "market.crypto.rejects.raw"
GAPS_TOPIC = "market.crypto.gaps"  # gap ledger versions from feeds without a warehouse (JSON, key gap_id)
#: what the sink subscribes to (librdkafka treats a leading ^ as a regex)
TRADES_PATTERN = r"^market\.crypto\.trades\.[A-Za-z0-9_-]+\.raw$"
_TRADES_RE = re.compile(r"market\.crypto\.trades\.([A-Za-z0-9_-]+)\.raw")
SINK_GROUP = "k2-bronze-sink"
DEFAULT_PARTITIONS = 3
SPOOL_FILE = "kafka-spool.jsonl"
#: header naming the bronze table of a record that is not the exchange's default API
TABLE_HEADER = "k2-table"

#: parts of setting names whose values must never reach a log
_SECRET_WORDS = ("password", "secret", "key", "token", "jaas", "credential", "username", "sasl.oauthbearer.config")


def trades_topic(exchange: str) -> str:
    return TRADES_TOPIC.format(exchange=exchange)


def exchange_of(topic: str) -> str | None:
    m = _TRADES_RE.fullmatch(topic)
    return m.group(1) if m else None


def redact(conf: dict[str, Any]) -> dict[str, Any]:
    """The settings with secret-looking values replaced, for logs and error messages."""
    out = {}
    for k, v in conf.items():
        if callable(v) or not isinstance(v, (str, int, float, bool)):
            continue
        out[k] = "***" if any(w in k.lower() for w in _SECRET_WORDS) else v
    return out


# -- librdkafka plumbing --------------------------------------------------------------------------
class _RdkafkaLog:
    """librdkafka's log lines into Python logging. Connection failures are demoted to DEBUG: while
    a broker is down librdkafka reports every reconnect attempt, and K2 prints one clear line of
    its own instead (see BrokerWatch)."""

    _noisy = ("Connect to ", "Disconnected", "brokers are down", "Connection refused", "timed out")

    def __init__(self) -> None:
        self.logger = logging.getLogger("k2.kafka.librdkafka")

    def log(self, level: int, fmt: str, *args: Any) -> None:
        try:
            text = fmt % args
        except TypeError:
            text = f"{fmt} {args}"
        if level >= logging.INFO and any(s in text for s in self._noisy):
            level = logging.DEBUG
        self.logger.log(level, "%s", text)


class BrokerWatch:
    """Turns librdkafka's error callbacks into one clear, rate-limited line per outage:
    `kafka: cannot reach 127.0.0.1:9092 yet, retrying` ... `kafka: reachable again`."""

    _down_codes = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_RESOLVE", "_TIMED_OUT", "_AUTHENTICATION",
                   "_SSL", "_MSG_TIMED_OUT")

    def __init__(self, bootstrap: str, role: str, repeat_s: float = 30.0):
        self.bootstrap, self.role, self.repeat_s = bootstrap, role, repeat_s
        self.down_since: float | None = None
        self.last_reason = ""
        self._last_said = 0.0
        self.fatal: str = ""

    def error_cb(self, err: Any) -> None:
        name = err.name() if hasattr(err, "name") else str(err)
        text = err.str() if hasattr(err, "str") else str(err)
        if getattr(err, "fatal", lambda: False)():
            self.fatal = f"{name}: {text}"
            log.critical("kafka %s: fatal error: %s", self.role, self.fatal)
            return
        if name in self._down_codes:
            self.last_reason = _short_reason(text)
            self.mark_down()
        else:
            log.warning("kafka %s: %s: %s", self.role, name, text)

    def mark_down(self, reason: str = "") -> None:
        now = time.monotonic()
        if reason:
            self.last_reason = reason
        if self.down_since is None:
            self.down_since = now
        if now - self._last_said >= self.repeat_s:
            self._last_said = now
            why = f" ({self.last_reason})" if self.last_reason else ""
            if now - self.down_since < 1.0:
                log.warning("kafka: cannot reach %s yet, retrying%s", self.bootstrap, why)
            else:
                log.warning("kafka: still cannot reach %s after %.0f s, retrying%s", self.bootstrap,
                            now - self.down_since, why)

    def mark_up(self) -> None:
        if self.down_since is not None:
            log.info("kafka: %s reachable again after %.1f s", self.bootstrap, time.monotonic() - self.down_since)
        self.down_since = None
        self._last_said = 0.0


def _short_reason(text: str) -> str:
    text = text.strip()
    if ": " in text and text.count("/") >= 1:  # "127.0.0.1:9/bootstrap: Connect to ... failed: X"
        text = text.rsplit(": ", 1)[-1]
    text = re.sub(r"\s*\(after \d+ms in state \w+\)", "", text)  # librdkafka's timing detail
    return text[:160]


def client_config(bootstrap: str, options: dict[str, str], role: str, defaults: dict[str, Any] | None = None,
                  watch: BrokerWatch | None = None) -> dict[str, Any]:
    """librdkafka settings for one client: K2's defaults, then the user's K2_KAFKA_* options
    (`producer.`/`consumer.`/`admin.` prefixed ones only for that role)."""
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "client.id": f"k2-{role}"}
    conf.update(defaults or {})
    roles = ("producer", "consumer", "admin")
    for key, value in options.items():
        if isinstance(value, str) and value.lower() in ("true", "false"):  # some settings must be bools
            value = value.lower() == "true"
        head, _, rest = key.partition(".")
        if head in roles:
            if head == role and rest:
                conf[rest] = value
        else:
            conf[key] = value
    conf["logger"] = _RdkafkaLog()
    if watch is not None:
        conf["error_cb"] = watch.error_cb
    return conf


def _new_client(kind: type, conf: dict[str, Any]) -> Any:
    try:
        return kind(conf)
    except (KafkaException, ValueError, TypeError) as exc:
        # librdkafka names the bad property, never echoes a value
        raise K2Error(f"kafka: invalid client setting: {exc}") from None


def resolve_bootstrap(flag: str | None, settings) -> str:
    bootstrap = flag or settings.kafka_bootstrap
    if not bootstrap:
        raise K2Error("no Kafka bootstrap servers: pass --kafka HOST:PORT or set K2_KAFKA_BOOTSTRAP_SERVERS")
    return bootstrap


# -- broker and topics ----------------------------------------------------------------------------
def admin_client(bootstrap: str, options: dict[str, str], watch: BrokerWatch | None = None):
    from confluent_kafka.admin import AdminClient

    return _new_client(AdminClient, client_config(bootstrap, options, "admin", watch=watch))


def wait_for_broker(admin, bootstrap: str, watch: BrokerWatch, stop: threading.Event | None = None,
                    timeout_s: float | None = None):
    """Block until the cluster answers a metadata request; say so once (and every 30 s) while it
    does not. Returns the cluster metadata; raises K2Error on `timeout_s` or when `stop` is set."""
    started = time.monotonic()
    delay = 0.25
    while True:
        try:
            md = admin.list_topics(timeout=3.0)
            watch.mark_up()
            return md
        except KafkaException as exc:
            admin.poll(0.2)  # serve error_cb: it knows why (connection refused, DNS, TLS, auth...)
            err = exc.args[0] if exc.args else None
            reason = watch.last_reason or (err.str() if hasattr(err, "str") else str(exc))
            watch.mark_down(_short_reason(reason))
        if stop is not None and stop.is_set():
            raise K2Error(f"kafka: stopped while waiting for {bootstrap}")
        if timeout_s is not None and time.monotonic() - started > timeout_s:
            raise K2Error(f"kafka: cannot reach {bootstrap} after {timeout_s:.0f} s")
        if stop is not None:
            if stop.wait(delay):
                raise K2Error(f"kafka: stopped while waiting for {bootstrap}")
        else:
            time.sleep(delay)
        delay = min(delay * 2, 2.0)


def ensure_topics(admin, topics: Iterable[str], partitions: int = DEFAULT_PARTITIONS,
                  replication_factor: int | None = None, metadata=None) -> list[str]:
    """Create the topics that do not exist yet. Returns the names created. The replication factor
    defaults to min(3, number of brokers)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    if partitions < 1:
        raise K2Error("--partitions must be at least 1")
    md = metadata or admin.list_topics(timeout=10)
    missing = [t for t in dict.fromkeys(topics) if t not in md.topics]
    if not missing:
        return []
    rf = replication_factor if replication_factor else min(3, max(1, len(md.brokers)))
    futures = admin.create_topics([NewTopic(t, partitions, rf) for t in missing], request_timeout=15)
    created = []
    for topic, fut in futures.items():
        try:
            fut.result()
            created.append(topic)
            log.info("kafka: created topic %s (%d partitions, replication factor %d)", topic, partitions, rf)
        except KafkaException as exc:
            err = exc.args[0]
            if err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise K2Error(f"kafka: cannot create topic {topic}: {err.str()}") from None
    return created


def default_topics(exchanges: Iterable[str]) -> list[str]:
    return [trades_topic(e) for e in exchanges] + [REJECTS_TOPIC, GAPS_TOPIC]


# -- spool: messages Kafka finally refused ------------------------------------------------------
class Spool:
    """Append-only JSON lines of messages whose delivery finally failed. Thread-safe."""

    def __init__(self, directory: Path):
        self.dir = Path(directory) / "spool"  # beside the direct transport's unwritten-*.jsonl
        self.path = self.dir / SPOOL_FILE
        self._lock = threading.Lock()
        self.count = 0

    def append(self, topic: str, key: bytes | None, value: bytes | None, headers: list | None,
               error: str) -> None:
        rec: dict[str, Any] = {"topic": topic, "error": error, "failed_at_us": time.time_ns() // 1000}
        if key is not None:
            rec["key"] = key.decode("utf-8", "surrogateescape")
        if value is not None:
            try:
                rec["value"] = value.decode("utf-8")
            except UnicodeDecodeError:
                rec["value_b64"] = base64.b64encode(value).decode()
        if headers:
            rec["headers"] = [[k, base64.b64encode(v or b"").decode()] for k, v in headers]
        line = json.dumps(rec, ensure_ascii=False) + "\n"
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8", errors="surrogateescape") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self.count += 1

    def take_pending(self) -> list[Path]:
        """Move the current spool aside for re-sending; returns every file waiting to be re-sent
        (including ones a previous run did not finish)."""
        with self._lock:
            if self.path.exists() and self.path.stat().st_size:
                self.path.rename(self.dir / f"kafka-spool.{time.time_ns()}.resend")
        return sorted(self.dir.glob("kafka-spool.*.resend")) if self.dir.is_dir() else []

    @staticmethod
    def read(path: Path) -> Iterable[tuple[str, bytes | None, bytes | None, list | None]]:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    log.error("kafka: %s: skipping a damaged spool line (kept in the file)", path)
                    continue
                key = rec["key"].encode("utf-8", "surrogateescape") if "key" in rec else None
                if "value" in rec:
                    value = rec["value"].encode()
                elif "value_b64" in rec:
                    value = base64.b64decode(rec["value_b64"])
                else:
                    value = None
                headers = [(k, base64.b64decode(v)) for k, v in rec.get("headers", [])] or None
                yield rec["topic"], key, value, headers


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
        from confluent_kafka import Producer

        log.info("kafka: producing to %s %s", self.bootstrap,
                 {k: v for k, v in redact(self._conf).items() if k != "bootstrap.servers"})
        admin = admin_client(self.bootstrap, self.options, self.watch)
        md = wait_for_broker(admin, self.bootstrap, self.watch, stop, timeout_s)
        ensure_topics(admin, [*self._topics.values(), REJECTS_TOPIC, GAPS_TOPIC], self.partitions, self.replication_factor, md)
        self.producer = _new_client(Producer, self._conf)
        self._resend_spool()
        return self

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
        warehouse of its own."""
        self._produce_or_keep((GAPS_TOPIC, msgspec.json.encode(gap.ledger_params()), gap.gap_id.encode(), None))

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
        from confluent_kafka import Producer

        log.critical("kafka: the producer hit a fatal error (%s); replacing it", self.watch.fatal)
        old = self.producer
        with self._lock:
            self.producer = _new_client(Producer, self._conf)
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


def run_feed(settings, exchanges: list[str], bootstrap: str, duration: float | None = None,
             partitions: int = DEFAULT_PARTITIONS, replication_factor: int | None = None,
             progress: bool | None = None):
    """`k2 feed --kafka`: the feed runtime publishing to Kafka; no warehouse in this process."""
    import asyncio

    from k2.pipeline import Pipeline, adapters_for, tune_gc_for_streaming

    transport = KafkaTransport(bootstrap, settings.kafka_options, adapters_for(settings, exchanges),
                               Path(settings.data_dir),
                               max_buffered=settings.queue_max_rows, partitions=partitions,
                               replication_factor=replication_factor)
    stop = threading.Event()
    with stop_on_signals(stop):
        transport.connect(stop)
    pipeline = Pipeline(settings, exchanges, None, transport, progress)
    tune_gc_for_streaming()
    return asyncio.run(pipeline.run(duration))


class stop_on_signals:
    """Context manager: SIGINT/SIGTERM set `stop` (used while waiting for the broker)."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self._old: dict = {}

    def __enter__(self):
        import signal

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


__all__ = ["KafkaTransport", "GAPS_TOPIC", "REJECTS_TOPIC", "SINK_GROUP", "TRADES_PATTERN", "trades_topic", "exchange_of",
           "ensure_topics", "wait_for_broker", "admin_client", "client_config", "run_feed"]
