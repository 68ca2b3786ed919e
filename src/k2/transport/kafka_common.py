"""What K2's Kafka producer and consumer share: topic names, librdkafka settings (with secrets
kept out of logs), one clear line per broker outage, topic creation, and the spool of messages the
broker finally refused.

Topics: one message per trade on `market.crypto.trades.<exchange>.raw` (key: the native symbol),
frames the feed could not parse on `market.crypto.rejects.raw`, gap-ledger versions from feeds
without a warehouse on `market.crypto.gaps`.

Extra librdkafka settings come from K2_KAFKA_* (K2_KAFKA_SASL_USERNAME -> sasl.username); a
`producer.` / `consumer.` / `admin.` prefix limits one to that client. Values of settings that look
secret are never logged.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterable

from k2.errors import K2Error

try:  # the optional dependency, imported here once for the producer and the consumer too
    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: F401
    from confluent_kafka.admin import AdminClient, NewTopic
except ImportError:  # an optional dependency: say how to get it, in one line
    raise K2Error("the Kafka transport needs confluent-kafka: pip install 'k2[kafka]'") from None

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


def new_client(kind: type, conf: dict[str, Any]) -> Any:
    try:
        return kind(conf)
    except (KafkaException, ValueError, TypeError) as exc:
        # librdkafka names the bad property, never echoes a value
        raise K2Error(f"kafka: invalid client setting: {exc}") from None


# -- broker and topics ----------------------------------------------------------------------------
def admin_client(bootstrap: str, options: dict[str, str], watch: BrokerWatch | None = None):
    return new_client(AdminClient, client_config(bootstrap, options, "admin", watch=watch))


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
            why = f" ({watch.last_reason})" if watch.last_reason else ""
            raise K2Error(f"kafka: cannot reach {bootstrap} after {timeout_s:.0f} s{why}")
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


def topics_command(settings, bootstrap: str, action: str, exchanges: list[str], partitions: int,
                   replication_factor: int | None, timeout_s: float = 60.0) -> str:
    """`k2 topics create|list`."""
    watch = BrokerWatch(bootstrap, "admin")
    admin = admin_client(bootstrap, settings.kafka_options, watch)
    md = wait_for_broker(admin, bootstrap, watch, timeout_s=timeout_s)
    wanted = default_topics(exchanges)
    if action == "create":
        created = ensure_topics(admin, wanted, partitions, replication_factor, md)
        md = admin.list_topics(timeout=10)
        lines = []
        for t in wanted:
            tm = md.topics.get(t)
            n = len(tm.partitions) if tm else 0
            rf = len(next(iter(tm.partitions.values())).replicas) if tm and tm.partitions else 0
            state = "created" if t in created else "exists"
            lines.append(f"{t}: {state}, {n} partitions, replication factor {rf}")
        return "\n".join(lines)
    if action == "list":
        lines = []
        for t in sorted(md.topics):
            if not (t in (REJECTS_TOPIC, GAPS_TOPIC) or exchange_of(t)):
                continue
            tm = md.topics[t]
            rf = len(next(iter(tm.partitions.values())).replicas) if tm.partitions else 0
            lines.append(f"{t}: {len(tm.partitions)} partitions, replication factor {rf}")
        return "\n".join(lines) or "(no K2 topics)"
    raise K2Error(f"unknown topics action {action!r}")
