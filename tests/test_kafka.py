"""The Kafka transport and sink against a real Kafka-protocol broker (tansu, memory storage).

End to end: simulator -> `k2 feed` -> broker -> `k2 sink` -> bronze/silver/gold, compared with
what the simulator recorded as sent. Every warehouse is read through `k2` subprocesses (chDB
allows one data dir per process) or through the running sink's loopback API. Every subprocess
and broker is killed at teardown.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kafka_broker import (
    Broker,
    Procs,
    Reader,
    bronze_keys,
    bronze_sql,
    free_port,
    sent_keys,
    wait_for,
)

pytestmark = pytest.mark.slow

EXCHANGES = ("binance", "kraken")
SILVER = ("SELECT exchange, canonical_symbol, trade_id, toString(price) AS price, toString(quantity) AS quantity, "
          "toString(side) AS side, toString(timestamp) AS ts FROM k2.silver_trades_v2 "
          "ORDER BY exchange, canonical_symbol, trade_id")
GOLD_SUMS = ("SELECT exchange, canonical_symbol, toString(sum(volume)) AS volume, "
             "toString(sum(quote_volume)) AS quote_volume, toString(sum(trade_count)) AS trades "
             "FROM k2.ohlcv_1m GROUP BY exchange, canonical_symbol ORDER BY exchange, canonical_symbol")
CANDLES = ("SELECT exchange, canonical_symbol, toString(window_start) AS w, toString(open_price) AS o, "
           "toString(high_price) AS h, toString(low_price) AS l, toString(close_price) AS c, "
           "toString(volume) AS v, toString(trade_count) AS n FROM k2.ohlcv_1m ORDER BY exchange, canonical_symbol, w")
TOTAL = ("SELECT (SELECT count() FROM k2.bronze_trades_binance) + (SELECT count() FROM k2.bronze_trades_kraken)")


# -- helpers --------------------------------------------------------------------------------------
def start_feed(procs: Procs, bootstrap: str, name: str = "feed") -> object:
    return procs.start(name, "feed", "--kafka", bootstrap, "--data-dir", str(procs.tmp / f"{name}-data"))


def start_sink(procs: Procs, bootstrap: str, data_dir: Path, name: str = "sink", env: dict | None = None):
    return procs.start(name, "sink", "--kafka", bootstrap, "--data-dir", str(data_dir), env=env)


def total(reader: Reader) -> int:
    rows = reader.rows(TOTAL)
    return int(rows[0][0]) if rows else -1


def expected_from(sim, record: Path, timeout: float = 60) -> dict[str, set]:
    assert sim.wait(timeout) == 0, sim.describe()
    keys = sent_keys(record)
    assert set(keys) == set(EXCHANGES) and all(keys.values()), keys
    return keys


def wait_written(reader: Reader, n: int, procs: Procs, timeout: float = 90) -> None:
    try:
        wait_for(lambda: total(reader) >= n, timeout, f"the sink to write {n} trades", 0.5)
    except AssertionError:
        raise AssertionError(f"sink has {total(reader)} of {n} trades\n{procs.describe()}") from None


def stored_keys(procs: Procs, data_dir: Path, extra: str = "") -> dict[str, list[dict]]:
    return {ex: procs.query(data_dir, bronze_sql(ex, extra)) for ex in EXCHANGES}


def assert_exact(procs: Procs, data_dir: Path, expected: dict[str, set]) -> None:
    """Bronze holds every sent trade exactly once, silver too, and `k2 validate` passes (gold
    equals its recomputation from silver)."""
    stored = stored_keys(procs, data_dir)
    for ex in EXCHANGES:
        keys = bronze_keys(stored[ex], ex)
        assert len(keys) == len(set(keys)), f"{ex}: {len(keys) - len(set(keys))} trades stored twice"
        missing, extra = expected[ex] - set(keys), set(keys) - expected[ex]
        assert not missing and not extra, f"{ex}: {len(missing)} missing, {len(extra)} unexpected"
    silver = procs.query(data_dir, "SELECT exchange, count() AS n, uniqExact(trade_id) AS u FROM k2.silver_trades_v2 "
                                   "GROUP BY exchange")
    assert {r["exchange"]: (int(r["n"]), int(r["u"])) for r in silver} == {
        ex: (len(expected[ex]), len(expected[ex])) for ex in EXCHANGES}
    v = procs.run("validate", "--data-dir", str(data_dir))
    assert v.returncode == 0, v.stdout[-3000:]


def stop_all(*ps) -> None:
    for p in ps:
        assert p.stop(signal.SIGTERM, 60) == 0, p.describe()


# -- (a) the happy path ---------------------------------------------------------------------------
def test_feed_broker_sink_matches_what_the_simulator_sent(kafka_broker, procs, tmp_path):
    sim, record = procs.simulator(rate=300, duration=8, extra=["--malformed-ratio", "0.01"])
    feed = start_feed(procs, kafka_broker.bootstrap)
    data = tmp_path / "kafka-wh"
    sink = start_sink(procs, kafka_broker.bootstrap, data)

    wait_for(lambda: "connected to" in feed.stderr(), 30, "the feed to connect")
    maps = Path(f"/proc/{feed.pid}/maps").read_text()
    assert "chdb" not in maps.lower(), "k2 feed loaded chDB"
    assert "libarrow" not in maps and "numpy" not in maps, "k2 feed loaded pyarrow or numpy"

    expected = expected_from(sim, record)
    n = sum(len(v) for v in expected.values())
    wait_written(Reader(data), n, procs)
    time.sleep(0.5)  # nothing more may arrive
    assert total(Reader(data)) == n
    # both processes serve Prometheus metrics
    import re
    import urllib.request

    sink_metrics = urllib.request.urlopen(f"http://{json.loads((data / 'k2.run.json').read_text())['addr']}/metrics",
                                          timeout=10).read().decode()
    assert re.search(r'^k2_trades_written_total\{exchange="binance"\} [1-9]', sink_metrics, re.M), sink_metrics
    assert "k2_up 1" in sink_metrics and "k2_ingest_latency_seconds_bucket" in sink_metrics
    feed_addr = re.search(r"serving status and metrics on http://(\S+)", feed.stderr()).group(1)
    feed_metrics = urllib.request.urlopen(f"http://{feed_addr}/metrics", timeout=10).read().decode()
    assert re.search(r'^k2_trades_published_total\{exchange="kraken"\} [1-9]', feed_metrics, re.M), feed_metrics
    stop_all(feed, sink)
    assert "written" in feed.stdout() and "re-delivered trades skipped" in sink.stdout()

    # the wire format: JSON native record keyed by bronze column, key = native symbol
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": "k2-test-peek"})
    try:
        c.assign([TopicPartition("market.crypto.trades.binance.raw", p, 0) for p in range(3)])
        msg = wait_for(lambda: (lambda m: m if m is not None and m.error() is None else None)(c.poll(0.5)),
                       15, "a message")
        doc = json.loads(msg.value())
        from k2.exchanges import get_adapter

        assert list(doc) == list(get_adapter("binance").columns)
        assert msg.key().decode() == doc["symbol"] and isinstance(doc["price"], str)
    finally:
        c.close()

    assert_exact(procs, data, expected)

    # the same frames loaded straight from the simulator's record give the same silver and gold
    ref = tmp_path / "load-wh"
    for ex in EXCHANGES:
        r = procs.run("load", str(record / f"{ex}.sent.jsonl"), "--exchange", ex, "--data-dir", str(ref))
        assert r.returncode == 0, r.stderr
    for sql in (SILVER, GOLD_SUMS, CANDLES):
        assert procs.query(data, sql) == procs.query(ref, sql)
    # the broken frames the simulator slipped in: rejected by the feed, carried by the rejects
    # topic, stored byte for byte - the same frames `k2 load` rejects
    rejects = "SELECT exchange, hex(raw) AS raw FROM k2.rejects ORDER BY exchange, raw"
    got = procs.query(data, rejects)
    assert got and got == procs.query(ref, rejects)
    sources = procs.query(data, "SELECT DISTINCT source FROM k2.bronze_trades_binance")
    assert sources == [{"source": "kafka"}]


# -- (b) the sink dies between insert and commit ----------------------------------------------------
def test_sink_killed_mid_batch_then_restarted_writes_each_trade_once(kafka_broker, procs, tmp_path):
    sim, record = procs.simulator(rate=400, duration=8)
    feed = start_feed(procs, kafka_broker.bootstrap)
    data = tmp_path / "wh"
    # fault injection: SIGKILL itself after its 3rd insert, before that batch's offsets are committed
    first = start_sink(procs, kafka_broker.bootstrap, data, "sink-1", env={"K2_SINK_CRASH_AFTER_INSERTS": "3"})
    assert first.wait(60) == -signal.SIGKILL, first.describe()
    assert "killing myself between insert and commit" in first.stderr()

    second = start_sink(procs, kafka_broker.bootstrap, data, "sink-2")
    expected = expected_from(sim, record)
    reader = Reader(data)
    wait_written(reader, sum(len(v) for v in expected.values()), procs)

    def skipped() -> int:  # the batch written before the crash comes again and is skipped
        st = reader.status()
        return sum(st["writer"]["duplicates"].values()) if st and "writer" in st else 0

    wait_for(skipped, 90, "the restarted sink to re-read the uncommitted batch")
    stop_all(feed, second)
    assert "re-delivered trades skipped" in second.stdout()
    assert_exact(procs, data, expected)


# -- (c) the broker freezes for 10 s --------------------------------------------------------------
def test_broker_frozen_for_10_s_loses_and_duplicates_nothing(kafka_broker, procs, tmp_path):
    sim, record = procs.simulator(rate=300, duration=16)
    feed = start_feed(procs, kafka_broker.bootstrap)
    data = tmp_path / "wh"
    sink = start_sink(procs, kafka_broker.bootstrap, data)
    reader = Reader(data)
    wait_for(lambda: total(reader) > 0, 30, "the first trades in bronze")
    kafka_broker.freeze()
    try:
        time.sleep(10)
    finally:
        kafka_broker.thaw()
    assert feed.alive() and sink.alive(), procs.describe()
    expected = expected_from(sim, record)
    wait_written(reader, sum(len(v) for v in expected.values()), procs, timeout=90)
    stop_all(feed, sink)
    assert_exact(procs, data, expected)


# -- (d) two sinks in one group, one killed ---------------------------------------------------------
def test_two_sinks_one_killed_rebalance_loses_nothing(kafka_broker, procs, tmp_path):
    """chDB serves one process per data dir, so the two sinks write two warehouses (in production
    they share one ClickHouse server). What must hold:
      * the union of both warehouses is exactly the sent trades (nothing lost in the rebalance);
      * neither warehouse holds a trade twice, and both pass `k2 validate`;
      * a trade is in both only if sink A wrote it but died before committing it: those are the
        tail of A's offsets in a partition (redelivered to B), never an earlier range - which shows
        that the rebalance when B joined handed over partitions exactly at the committed offsets;
      * replaying both warehouses' bronze rows into one shared warehouse through BronzeWriter, as a
        shared ClickHouse would receive them, stores every trade once and validates."""
    sim, record = procs.simulator(rate=300, duration=18)
    feed = start_feed(procs, kafka_broker.bootstrap)
    wa, wb = tmp_path / "wh-a", tmp_path / "wh-b"
    crash = tmp_path / "crash-a-now"
    # A is SIGKILLed at the worst moment: after a bronze insert, before its offset commit
    a = start_sink(procs, kafka_broker.bootstrap, wa, "sink-a", env={"K2_SINK_CRASH_WHEN_FILE": str(crash)})
    wait_for(lambda: total(Reader(wa)) > 0, 40, "sink A to write")
    b = start_sink(procs, kafka_broker.bootstrap, wb, "sink-b")
    # the group rebalanced: A gave up partitions (committing first) and both hold some
    wait_for(lambda: "assigned" in b.stderr() and a.stderr().count("assigned") >= 2, 40, "the rebalance")
    crash.touch()
    try:
        a.wait(20)
    except subprocess.TimeoutExpired:  # A held no partition that carried data: kill it from outside
        a.kill()
    assert not a.alive()
    injected = "killing myself between insert and commit" in a.stderr()
    expected = expected_from(sim, record)
    n = sum(len(v) for v in expected.values())

    extra = ", kafka_partition, kafka_offset"
    got_a = stored_keys(procs, wa, extra)
    done_a = {ex: set(bronze_keys(got_a[ex], ex)) for ex in EXCHANGES}

    def union_complete() -> bool:
        rows_b = Reader(wb).rows(TOTAL)
        if not rows_b:
            return False
        return int(rows_b[0][0]) + sum(len(v) for v in done_a.values()) >= n

    wait_for(union_complete, 90, "sink B to take over A's partitions", 0.5)
    time.sleep(1.0)
    stop_all(feed, b)
    assert "assigned" in b.stderr() and "revoked" in a.stderr(), procs.describe()
    got_b = stored_keys(procs, wb, extra)
    overlap = 0
    for ex in EXCHANGES:
        keys_a, keys_b = bronze_keys(got_a[ex], ex), bronze_keys(got_b[ex], ex)
        assert len(keys_a) == len(set(keys_a)) and len(keys_b) == len(set(keys_b))
        assert set(keys_a) | set(keys_b) == expected[ex], ex
        both = set(keys_a) & set(keys_b)
        overlap += len(both)
        # every overlap is a tail of A's offsets in its partition
        by_part: dict[int, list[tuple[int, bool]]] = {}
        for r, k in zip(got_a[ex], keys_a):
            by_part.setdefault(int(r["kafka_partition"]), []).append((int(r["kafka_offset"]), k in both))
        for part, offs in by_part.items():
            offs.sort()
            flags = [f for _, f in offs]
            first = flags.index(True) if True in flags else len(flags)
            assert all(flags[first:]), f"{ex}[{part}]: A and B overlap outside A's uncommitted tail"
    if injected:  # A's last batch was inserted but not committed, so B received it again
        assert overlap > 0
    for d in (wa, wb):
        v = procs.run("validate", "--data-dir", str(d))
        assert v.returncode == 0, v.stdout[-3000:]

    # the shared-warehouse view: both sinks' bronze rows through one BronzeWriter
    shared = tmp_path / "wh-shared"
    script = tmp_path / "merge.py"
    script.write_text(MERGE_SCRIPT)
    r = subprocess.run([sys.executable, str(script), str(wa), str(wb), str(shared)], capture_output=True,
                       text=True, timeout=120, env=procs.env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert_exact(procs, shared, expected)


MERGE_SCRIPT = r'''
import sys
from k2.exchanges import get_adapter
from k2.warehouse import open_warehouse
from k2.warehouse.bronze import BronzeWriter

a, b, shared = sys.argv[1:4]
batches = []
for d in (a, b):
    wh = open_warehouse(d)
    for ex in ("binance", "kraken"):
        ad = get_adapter(ex)
        cols = ", ".join("toUnixTimestamp64Micro(received_at)" if c == "received_at" else c for c in ad.columns)
        rows = wh.rows(f"SELECT {cols}, kafka_partition, kafka_offset FROM k2.{ad.bronze_table} "
                       "ORDER BY ingested_at, kafka_partition, kafka_offset")
        batches.append((ad, rows))
    wh.close()
wh = open_warehouse(shared)
for ad, rows in batches:
    conv = []
    for t in ad.column_types:
        conv.append(int if "Int" in t else (lambda v: v) )
    typed = [tuple(c(v) if v is not None else None for c, v in zip(conv, r[:len(ad.columns)])) for r in rows]
    parts = [int(r[-2]) for r in rows]
    offs = [int(r[-1]) for r in rows]
    for i in range(0, len(typed), 500):  # the sinks' batch granularity, roughly
        BronzeWriter(wh, ad).write(typed[i:i + 500], source="kafka", kafka_partitions=parts[i:i + 500],
                                   kafka_offsets=offs[i:i + 500])
wh.close()
'''


# -- (e) no broker yet -------------------------------------------------------------------------------
def test_broker_unreachable_at_start_then_comes_up(procs, tmp_path):
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    sim, record = procs.simulator(rate=200, duration=12)
    feed = start_feed(procs, bootstrap)
    data = tmp_path / "wh"
    sink = start_sink(procs, bootstrap, data)
    line = f"kafka: cannot reach {bootstrap} yet, retrying"
    wait_for(lambda: line in feed.stderr() and line in sink.stderr(), 30, "the 'cannot reach' message")
    time.sleep(2)
    assert feed.alive() and sink.alive(), procs.describe()
    for p in (feed, sink):  # one clear line, not librdkafka's stream of connection errors
        assert p.stderr().count("cannot reach") == 1, p.stderr()[-2000:]
        assert "%3|" not in p.stderr() and "Connect to ipv4" not in p.stderr()
    broker = Broker(tmp_path, port).start()
    try:
        expected = expected_from(sim, record)
        wait_written(Reader(data), sum(len(v) for v in expected.values()), procs)
        stop_all(feed, sink)
        assert "reachable again" in feed.stderr() or "kafka: producing" in feed.stderr()
        assert_exact(procs, data, expected)
    finally:
        broker.stop()


# -- rejects, spool, back-pressure, topics -----------------------------------------------------------
def test_malformed_messages_and_feed_rejects_land_in_rejects(kafka_broker, procs, tmp_path):
    from confluent_kafka import Producer

    from k2.exchanges import get_adapter
    from k2.transport.kafka_producer import KafkaTransport
    from k2.rejects import Reject

    adapter = get_adapter("binance")
    t = KafkaTransport(kafka_broker.bootstrap, {}, [adapter], tmp_path / "spool").connect(timeout_s=30)
    t.start()
    row = adapter.parse(b'{"e":"trade","E":1784116800123,"s":"BTCUSDT","t":42,"p":"97512.34000000",'
                        b'"q":"0.00120000","T":1784116800122,"m":true,"M":true}', 1784116800200000).rows[0]
    t.submit(adapter, [row])
    t.submit_reject(Reject("binance", "ws", "malformed frame: test", b"\x00not json\xff", 1784116800300000,
                           "binance-0"))
    t.close()
    p = Producer({"bootstrap.servers": kafka_broker.bootstrap})
    topic = "market.crypto.trades.binance.raw"
    for v in (b"{broken", json.dumps({"event_type": "trade", "trade_id": "x"}).encode()):
        p.produce(topic, v, b"BTCUSDT", partition=0)
    p.produce("market.crypto.trades.nowhere.raw", b"{}", partition=0)
    assert p.flush(10) == 0

    data = tmp_path / "wh"
    sink = start_sink(procs, kafka_broker.bootstrap, data)
    reader = Reader(data)
    wait_for(lambda: reader.count("rejects") >= 4 and reader.count("bronze_trades_binance") >= 1, 40,
             "rejects and the trade to be stored")
    stop_all(sink)
    rej = procs.query(data, "SELECT exchange, source, reason, hex(raw) AS raw, kafka_topic, kafka_partition, "
                            "kafka_offset, origin, toUnixTimestamp64Micro(received_at) AS us FROM k2.rejects "
                            "ORDER BY kafka_topic, kafka_offset")
    assert len(rej) == 4, rej
    feed_rej = [r for r in rej if r["kafka_topic"] == "market.crypto.rejects.raw"][0]
    assert (feed_rej["exchange"], feed_rej["source"], feed_rej["reason"], feed_rej["origin"]) == (
        "binance", "ws", "malformed frame: test", "binance-0")
    assert bytes.fromhex(feed_rej["raw"]) == b"\x00not json\xff" and int(feed_rej["us"]) == 1784116800300000
    bad = [r for r in rej if r["kafka_topic"] == topic]
    assert all(r["source"] == "kafka" and int(r["kafka_offset"]) >= 0 for r in bad) and len(bad) == 2
    assert any("malformed binance record" in r["reason"] for r in bad)
    assert any("no K2 adapter" in r["reason"] for r in rej)
    trade = procs.query(data, "SELECT trade_id, price, source, kafka_partition, kafka_offset, "
                              "toUnixTimestamp64Micro(received_at) AS us FROM k2.bronze_trades_binance")
    assert len(trade) == 1 and trade[0]["price"] == "97512.34000000" and trade[0]["source"] == "kafka"
    assert int(trade[0]["us"]) == 1784116800200000 and int(trade[0]["kafka_offset"]) >= 0


def test_undeliverable_messages_are_spooled_and_resent(tmp_path):
    from k2.exchanges import get_adapter
    from k2.transport.kafka_producer import KafkaTransport

    adapter = get_adapter("binance")
    rows = [("trade", 1784116800123, "BTCUSDT", i, "97512.34000000", "0.00120000", 1784116800122, True, True,
             1784116800200000 + i) for i in range(50)]
    broker = Broker(tmp_path).start()
    try:
        t = KafkaTransport(broker.bootstrap, {"producer.message.timeout.ms": "1500"}, [adapter], tmp_path / "d")
        t.connect(timeout_s=30).start()
        broker.stop()
        t.submit(adapter, rows)
        wait_for(lambda: t.stats.spooled == 50, 20, "the failed messages to be spooled")
        t.close(timeout=1)
        assert t.stats.delivery_failures == 50 and t.stats.written["binance"] == 0
        lines = (tmp_path / "d" / "spool" / "kafka-spool.jsonl").read_text().splitlines()
        assert len(lines) == 50 and json.loads(lines[0])["topic"] == "market.crypto.trades.binance.raw"

        broker = Broker(tmp_path, broker.port).start()  # the same address, empty
        t2 = KafkaTransport(broker.bootstrap, {}, [adapter], tmp_path / "d").connect(timeout_s=30)
        t2.start()
        t2.close()
        assert t2.stats.resent_from_spool == 50 and not list((tmp_path / "d" / "spool").glob("kafka-spool*"))
        ids = sorted(r["trade_id"] for r in consume_all(broker.bootstrap, "market.crypto.trades.binance.raw", 50))
        assert ids == list(range(50))
    finally:
        broker.stop()


def test_full_buffer_pauses_the_feed_until_the_broker_catches_up(kafka_broker, tmp_path):
    from k2.exchanges import get_adapter
    from k2.transport.kafka_producer import KafkaTransport

    class Loop:  # the pause callback is scheduled on the event loop; here: call it at once
        def call_soon_threadsafe(self, fn, *args):
            fn(*args)

    adapter = get_adapter("binance")
    calls: list[bool] = []
    t = KafkaTransport(kafka_broker.bootstrap, {}, [adapter], tmp_path / "d", max_buffered=1000)
    t.connect(timeout_s=30)
    t.set_pause_callback(calls.append)
    t.start(Loop())
    rows = [("trade", 1784116800123, "BTCUSDT", i, "1.0", "2.0", 1784116800122, False, None, 1) for i in range(5000)]
    kafka_broker.freeze()
    try:
        for i in range(0, 5000, 500):
            t.submit(adapter, rows[i:i + 500])
        assert calls == [True] and t.paused and t.buffered == 5000
    finally:
        kafka_broker.thaw()
    wait_for(lambda: calls == [True, False] and t.buffered == 0, 60, "the buffer to drain and the feed to resume")
    t.close()
    assert t.stats.delivery_failures == 0 and t.stats.written["binance"] == 5000
    # every message arrived once, in order (tansu's high watermark is not exact, so read them)
    ids = [r["trade_id"] for r in consume_all(kafka_broker.bootstrap, "market.crypto.trades.binance.raw", 5000)]
    assert ids == list(range(5000))


def consume_all(bootstrap: str, topic: str, expect: int, timeout: float = 20) -> list[dict]:
    """The topic's messages: `expect` of them, then 0.5 s more to catch any extra (tansu's high
    watermarks are not exact, so end-of-partition events cannot tell when everything was read)."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "k2-test-peek"})
    out: list[dict] = []
    try:
        partitions = c.list_topics(topic, timeout=10).topics[topic].partitions
        c.assign([TopicPartition(topic, p, 0) for p in partitions])
        deadline = time.monotonic() + timeout
        while len(out) < expect and time.monotonic() < deadline:
            out += [json.loads(m.value()) for m in c.consume(1000, 0.2) if m.error() is None]
        out += [json.loads(m.value()) for m in c.consume(1000, 0.5) if m.error() is None]
    finally:
        c.close()
    return out


def test_topics_create_and_list(kafka_broker, procs):
    r = procs.run("topics", "create", "--kafka", kafka_broker.bootstrap, "--partitions", "2")
    assert r.returncode == 0, r.stderr
    assert "market.crypto.trades.binance.raw: created, 2 partitions, replication factor 1" in r.stdout
    assert "market.crypto.rejects.raw: created" in r.stdout
    r = procs.run("topics", "create", "--kafka", kafka_broker.bootstrap, "--partitions", "4")
    assert "market.crypto.trades.kraken.raw: exists, 2 partitions" in r.stdout
    r = procs.run("topics", "list", "--kafka", kafka_broker.bootstrap)
    assert r.returncode == 0 and "market.crypto.trades.kraken.raw: 2 partitions, replication factor 1" in r.stdout


def test_credentials_are_never_logged(procs):
    port = free_port()
    feed = procs.start("feed", "feed", "--exchange", "binance", "--kafka", f"127.0.0.1:{port}",
                       env={"K2_KAFKA_SASL_USERNAME": "svc-user-xyz", "K2_KAFKA_SASL_PASSWORD": "hunter2-xyz",
                            "K2_LOG_LEVEL": "DEBUG"})
    wait_for(lambda: "cannot reach" in feed.stderr(), 30, "the feed to try the broker")
    feed.kill()
    err = feed.stderr()
    assert "'sasl.password': '***'" in err and "hunter2-xyz" not in err and "svc-user-xyz" not in err


def test_run_kafka_runs_feed_and_sink_in_one_process(kafka_broker, procs, tmp_path):
    sim, record = procs.simulator(rate=200, duration=5)
    data = tmp_path / "wh"
    run = procs.start("run", "run", "--kafka", kafka_broker.bootstrap, "--duration", "9", "--data-dir", str(data))
    expected = expected_from(sim, record)
    assert run.wait(60) == 0, run.describe()
    out = run.stdout()
    for ex in EXCHANGES:  # everything received was written before exit (the sink drains first)
        n = len(expected[ex])
        assert f"{ex}: {n:,} trades received, {n:,} written" in out, out
    assert "ingest latency" in out
    assert_exact(procs, data, expected)
