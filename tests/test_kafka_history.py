"""What `k2 feed` reads from the broker before it subscribes (k2.transport.kafka_history), against
a real Kafka-protocol broker (tansu): the last trade per symbol from tails read back in steps, the
newest version of each gap, and a broker that does not answer (named, bounded, never a crash).

The records are published by K2's own producer (k2.transport.kafka_producer), so the wire format
is the one `k2 feed` writes.
"""

from __future__ import annotations

import time

import pytest

from k2.exchanges import get_adapter
from k2.feed.gaps import Gap
from k2.transport.kafka_common import TABLE_HEADER
from k2.transport.kafka_history import FIRST_STEP, read_broker_history
from k2.config import Settings
from k2.services.pipeline import Pipeline
from k2.transport.kafka_producer import KafkaTransport

pytestmark = pytest.mark.slow

BINANCE, KRAKEN = get_adapter("binance"), get_adapter("kraken")
T0 = 1_784_116_800_000_000  # µs


def _binance(symbol: str, trade_id: int) -> tuple:
    ms = T0 // 1000 + trade_id
    return ("trade", ms, symbol, trade_id, "100.5", "0.01", ms, False, True, T0)


def _kraken(pair: str, us: int) -> tuple:
    return (0, pair, "97000.1", "0.1", f"{us // 1_000_000}.{us % 1_000_000:06d}", "b", "l", "", 0, T0)


def _publish(bootstrap: str, tmp_path, adapters: list, partitions: int, send) -> None:
    transport = KafkaTransport(bootstrap, {}, adapters, tmp_path / f"spool-{adapters[0].name}", partitions=partitions)
    transport.connect(timeout_s=30)
    send(transport)
    left = transport.producer.flush(30)
    assert left == 0
    transport.producer = None


def _gap(exchange: str, symbol: str, start: int, state: str, updated: int, detail: str = "", **kw) -> Gap:
    kind = "time" if exchange == "kraken" else "ids"
    return Gap(exchange, symbol, kind, start, start + 10, state=state, detail=detail, updated_us=updated,
               detected_us=T0 + start, **kw)


def test_the_last_trade_per_symbol_and_the_open_gaps_are_read_back(kafka_broker, tmp_path):
    bootstrap = kafka_broker.bootstrap

    def binance(t: KafkaTransport) -> None:
        t.submit(BINANCE, [_binance("ETHBTC", i) for i in range(100, 105)])
        # one partition: ETHBTC's last trade lies behind more than a first step of BTCUSDT's
        for start in range(1, 3 * FIRST_STEP, 1000):
            t.submit(BINANCE, [_binance("BTCUSDT", i) for i in range(start, start + 1000)])
        t.submit(BINANCE, [_binance("BTCUSDT", 50)], source="rest")  # a backfilled old trade comes last
        t.producer.produce("market.crypto.trades.binance.raw", b"{not json", b"BTCUSDT")  # the sink rejects it
        # gap versions: A's newest (by its own time) is filled although an older one came last
        t.submit_gap(_gap("binance", "BTCUSDT", 10, "open", T0 + 1))
        t.submit_gap(_gap("binance", "BTCUSDT", 10, "filled", T0 + 3))
        t.submit_gap(_gap("binance", "BTCUSDT", 10, "open", T0 + 2))
        t.submit_gap(_gap("binance", "ETHBTC", 20, "open", T0 + 1, since_us=T0 - 5))  # a head gap
        t.submit_gap(_gap("binance", "ETHBTC", 30, "unfillable", T0 + 1, "URLError: refused"))  # REST failed
        t.submit_gap(_gap("binance", "ETHBTC", 40, "unfillable", T0 + 1, "recovered 3 of 11 trades "
                          "(the exchange no longer serves the rest: its REST retention)"))  # proven: done
        t.submit_gap(_gap("coinbase", "BTC-USD", 50, "open", T0 + 1))  # not this feed's exchange
        t.producer.produce("market.crypto.gaps", b"[1,2", b"x")
        t.producer.produce("market.crypto.gaps", b'{"gap_id":"binance:y","exchange":"binance","detected":"x"}', b"y")

    def kraken(t: KafkaTransport) -> None:
        t.submit(KRAKEN, [_kraken("XBT/USD", T0 + i * 1000) for i in range(300)])
        t.submit(KRAKEN, [_kraken("ETH/USD", T0 + 7)])
        # a record of another Kraken API (its own bronze table, other columns): not v1's history
        t.producer.produce("market.crypto.trades.kraken.raw", b'{"symbol":"XBT/USD","timestamp":"1999999999.0"}',
                           b"XBT/USD", headers=[(TABLE_HEADER, b"bronze_trades_kraken_v2")])
        t.submit_gap(_gap("kraken", "XBT/USD", T0, "open", T0 + 1))

    _publish(bootstrap, tmp_path, [BINANCE], 1, binance)
    _publish(bootstrap, tmp_path, [KRAKEN], 3, kraken)

    h = read_broker_history(bootstrap, {}, {BINANCE: ["BTCUSDT", "ETHBTC", "SOLUSDT"],
                                            KRAKEN: ["XBT/USD", "ETH/USD"]}, timeout_s=60)
    assert h.incomplete == []
    assert _history_health(h) == (True, "")
    assert h.stored_history(BINANCE) == ({"BTCUSDT": 3 * FIRST_STEP, "ETHBTC": 104}, {})  # SOLUSDT: none
    assert h.stored_history(KRAKEN) == ({}, {"XBT/USD": T0 + 299_000, "ETH/USD": T0 + 7})
    retry = h.gaps_to_retry(BINANCE)
    assert sorted((g.symbol, g.start, g.state) for g in retry) == [("ETHBTC", 20, "open"), ("ETHBTC", 30, "open")]
    assert {g.start: g.since_us for g in retry} == {20: T0 - 5, 30: None}
    assert [(g.symbol, g.kind, g.start) for g in h.gaps_to_retry(KRAKEN)] == [("XBT/USD", "time", T0)]


def test_a_broker_that_does_not_answer_is_named_and_the_read_is_bounded(kafka_broker, tmp_path):
    _publish(kafka_broker.bootstrap, tmp_path, [BINANCE], 1,
             lambda t: t.submit(BINANCE, [_binance("BTCUSDT", i) for i in range(1, 100)]))
    kafka_broker.freeze()
    try:
        started = time.monotonic()
        h = read_broker_history(kafka_broker.bootstrap, {}, {BINANCE: ["BTCUSDT"]}, timeout_s=3)
        took = time.monotonic() - started
    finally:
        kafka_broker.thaw()
    assert took < 30, took
    assert len(h.incomplete) == 2, h.incomplete
    assert h.incomplete[0].startswith("market.crypto.trades.binance.raw: ") and "BTCUSDT" in h.incomplete[0]
    assert h.incomplete[1].startswith("market.crypto.gaps: ")
    assert h.stored_history(BINANCE) == ({}, {}) and h.gaps_to_retry(BINANCE) == []
    # a read cut short is a health condition of the feed, not only a log line
    ok, reason = _history_health(h)
    assert not ok and reason.startswith("could not read what the broker holds at start: market.crypto.trades"), reason


def _history_health(history) -> tuple[bool, str]:
    """The `history` condition of a feed pipeline (k2 feed: no store) started with `history`."""
    class Transport:  # what health asks of the feed's transport
        buffered = 0
    pipeline = Pipeline(Settings(), ["binance"], Transport(), None, False, history=history)
    [cond] = [c for c in pipeline.health().conditions if c.name == "history"]
    return cond.ok, cond.reason
