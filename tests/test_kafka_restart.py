"""`k2 feed` across a restart (issue 16, Kafka mode): before it subscribes it reads what the broker
already holds (k2.transport.kafka_history), so the trades the venue sent while it was down are
backfilled and the gaps an earlier feed left open are retried.

Real parts: a Kafka-protocol broker (tansu), the exchange simulator (WebSocket and REST on
127.0.0.1), `k2 feed` and `k2 sink` as child processes; the ground truth is every trade the
simulator generated (`<exchange>.generated.jsonl`), sent or not. Every wait is bounded.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path

import pytest

from kafka_broker import (
    Procs,
    Reader,
    bronze_keys,
    bronze_sql,
    sent_keys,
    wait_for,
)

pytestmark = pytest.mark.slow


def _feed(runner: Procs, bootstrap: str, name: str, exchanges: str, data: Path):
    return runner.start(name, "feed", "--kafka", bootstrap, "--exchange", exchanges, "--data-dir", str(data))


def _stored(runner: Procs, data: Path, exchanges: tuple[str, ...]) -> dict[str, list[tuple]]:
    return {ex: bronze_keys(runner.query(data, bronze_sql(ex)), ex) for ex in exchanges}


def _count(reader: Reader, exchanges: tuple[str, ...]) -> int:
    total = 0
    for ex in exchanges:
        n = reader.count(f"bronze_trades_{ex}")
        if n < 0:
            return -1
        total += n
    return total


def _assert_every_generated_trade_once(runner: Procs, record: Path, sink_data: Path, sink,
                                       exchanges: tuple[str, ...]) -> None:
    expected = sent_keys(record, "generated")
    assert set(expected) == set(exchanges) and all(expected.values()), {k: len(v) for k, v in expected.items()}
    n = sum(len(v) for v in expected.values())
    reader = Reader(sink_data)
    try:
        wait_for(lambda: _count(reader, exchanges) >= n, 90, f"the sink to write {n} trades", 0.5)
    except AssertionError:
        pass  # the comparison below says what is missing
    time.sleep(1.0)  # nothing more may arrive
    assert sink.stop(signal.SIGTERM, 60) == 0, sink.describe()
    stored = _stored(runner, sink_data, exchanges)
    for ex in exchanges:
        keys = stored[ex]
        assert len(keys) == len(set(keys)), f"{ex}: {len(keys) - len(set(keys))} trades stored twice"
        missing, extra = expected[ex] - set(keys), set(keys) - expected[ex]
        assert not missing and not extra, (f"{ex}: {len(missing)} of {len(expected[ex])} generated trades missing, "
                                           f"{len(extra)} unexpected\n{runner.describe()}")
    silver = runner.query(sink_data, "SELECT exchange, count() AS n, uniqExact(trade_id) AS u "
                                    "FROM k2.silver_trades_v2 GROUP BY exchange")
    assert {r["exchange"]: (int(r["n"]), int(r["u"])) for r in silver} == {
        ex: (len(expected[ex]), len(expected[ex])) for ex in exchanges}


def test_a_restarted_feed_backfills_the_trades_of_its_own_downtime(kafka_broker, procs, tmp_path):  # noqa: F811
    exchanges = ("binance", "kraken")
    sim, record = procs.simulator(rate=100, duration=20, exchanges=",".join(exchanges))
    feed_data, sink_data = tmp_path / "feed-data", tmp_path / "sink-data"
    sink = procs.start("sink", "sink", "--kafka", kafka_broker.bootstrap, "--data-dir", str(sink_data))
    feed = _feed(procs, kafka_broker.bootstrap, "feed1", "binance,kraken", feed_data)
    wait_for(lambda: feed.stderr().count("connected to") >= 2, 30, "the first feed to connect")
    time.sleep(4)
    assert feed.stop(signal.SIGTERM, 60) == 0, feed.describe()

    time.sleep(4)  # the simulator keeps trading: none of these trades reaches a feed over WebSocket
    feed = _feed(procs, kafka_broker.bootstrap, "feed2", "binance,kraken", feed_data)
    try:
        assert sim.wait(60) == 0, sim.describe()
        time.sleep(1.0)
    finally:
        assert feed.stop(signal.SIGTERM, 60) == 0, feed.describe()
    _assert_every_generated_trade_once(procs, record, sink_data, sink, exchanges)
    # how: the restarted feed found each symbol's last trade on the broker, and each venue's
    # downtime as a gap (by id on Binance, by time on Kraken)
    err = feed.stderr()
    assert "could not read what the broker holds" not in err, err[-3000:]
    for ex, kind in (("binance", "ids"), ("kraken", "time")):
        assert re.search(rf"{ex}: the last trade of (\d+) of \1 symbols found", err), err[-3000:]
        assert re.search(rf"{ex} \S+: gap detected \({kind} ", err), err[-3000:]


def test_gaps_a_feed_left_open_are_retried_by_its_next_start(kafka_broker, procs, tmp_path):  # noqa: F811
    # REST is down for the first 12 s; connections are cut every 1.5 s for 7 s (gaps by id)
    sim, record = procs.simulator(rate=120, duration=24, exchanges="binance",
                                  extra=["--rest-down", "0-12", "--drop-every", "1.5", "--faults-for", "7"])
    started = time.monotonic()
    feed_data, sink_data = tmp_path / "feed-data", tmp_path / "sink-data"
    sink = procs.start("sink", "sink", "--kafka", kafka_broker.bootstrap, "--data-dir", str(sink_data))
    feed = _feed(procs, kafka_broker.bootstrap, "feed1", "binance", feed_data)
    time.sleep(8)
    assert feed.stop(signal.SIGTERM, 60) == 0, feed.describe()
    assert "gap detected" in feed.stderr(), feed.describe()
    reader = Reader(sink_data)

    def open_gaps() -> int:
        rows = reader.rows("SELECT count() FROM k2.gaps FINAL WHERE state = 'open'")
        return int(rows[0][0]) if rows else 0

    assert wait_for(open_gaps, 30, "the sink to record the open gaps") > 0  # REST down proves nothing

    time.sleep(max(0.0, started + 13 - time.monotonic()))  # REST is back 12 s after the simulator started
    feed = _feed(procs, kafka_broker.bootstrap, "feed2", "binance", feed_data)
    try:
        assert sim.wait(60) == 0, sim.describe()
        wait_for(lambda: open_gaps() == 0, 20, "every gap to be filled")
    finally:
        assert feed.stop(signal.SIGTERM, 60) == 0, feed.describe()
    states = {r[0]: int(r[1]) for r in reader.rows(
        "SELECT toString(state), count() FROM k2.gaps FINAL GROUP BY state") or []}
    assert set(states) == {"filled"}, states
    _assert_every_generated_trade_once(procs, record, sink_data, sink, ("binance",))
    assert "left open by an earlier run" in feed.stderr(), feed.describe()
