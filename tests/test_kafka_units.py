"""Kafka transport pieces that need no broker: the record format (feed encoder -> sink decoder),
type checks, topic names, client settings and the redaction of secrets."""

from __future__ import annotations

import json

import pytest

from k2.exchanges import ALL_ADAPTERS, get_adapter
from k2.exchanges.base import FrameKind
from k2.transport.kafka_common import REJECTS_TOPIC, TRADES_PATTERN, client_config, exchange_of, redact, trades_topic
from k2.transport.kafka_consumer import RecordDecoder
from k2.transport.kafka_producer import KafkaTransport


def _rows(fixtures_dir, exchange: str) -> list[tuple]:
    adapter = get_adapter(exchange)
    rows = []
    for line in (fixtures_dir / f"{exchange}_session.jsonl").read_bytes().splitlines():
        try:
            parsed = adapter.parse(line, 1784116800999999)
        except Exception:  # noqa: BLE001 - the session files hold a few broken frames on purpose
            continue
        if parsed.kind is FrameKind.TRADES:
            rows.extend(parsed.rows)
    assert rows
    return rows


def _encoder(adapter):
    t = KafkaTransport("127.0.0.1:1", {}, [adapter], spool_dir=".")
    return t._encoders[adapter.name]


@pytest.mark.parametrize("exchange", ["binance", "kraken"])
def test_native_record_round_trips_exactly(fixtures_dir, exchange):
    adapter = get_adapter(exchange)
    rows = _rows(fixtures_dir, exchange)
    encode = _encoder(adapter)
    values = [encode(r) for r in rows]
    doc = json.loads(values[0])
    assert list(doc) == list(adapter.columns)  # keyed by the bronze column names, in order
    for col in ("price", "quantity", "volume"):
        if col in doc:
            assert isinstance(doc[col], str)  # decimal strings stay strings
    got, idx, bad = RecordDecoder(adapter).decode(values)
    assert bad == [] and idx == list(range(len(rows)))
    assert got == rows  # same values, same types, same order


def test_every_adapter_has_a_decoder():
    for a in ALL_ADAPTERS:
        RecordDecoder(a)


def test_decoder_rejects_wrong_types_and_keeps_the_good(fixtures_dir):
    adapter = get_adapter("binance")
    encode = _encoder(adapter)
    good = encode(_rows(fixtures_dir, "binance")[0])
    doc = json.loads(good)
    bad_id = json.dumps({**doc, "trade_id": "abc"}).encode()
    negative_id = json.dumps({**doc, "trade_id": -1}).encode()
    float_price = json.dumps({**doc, "price": 97512.34}).encode()
    exp_price = json.dumps({**doc, "price": "1e5"}).encode()
    missing = json.dumps({k: v for k, v in doc.items() if k != "symbol"}).encode()
    values = [good, b"{not json", bad_id, None, negative_id, float_price, exp_price, missing, good]
    rows, idx, bad = RecordDecoder(adapter).decode(values)
    assert idx == [0, 8] and len(rows) == 2
    assert [i for i, _ in bad] == [1, 2, 3, 4, 5, 6, 7]
    reasons = dict(bad)
    assert "malformed binance record" in reasons[1]
    assert "trade_id" in reasons[2]
    assert "no value" in reasons[3]
    assert "price is not a decimal string" in reasons[6]
    assert "symbol" in reasons[7]


def test_topic_names():
    import re

    assert trades_topic("binance") == "market.crypto.trades.binance.raw"
    assert exchange_of("market.crypto.trades.kraken.raw") == "kraken"
    assert exchange_of(REJECTS_TOPIC) is None
    assert re.match(TRADES_PATTERN, "market.crypto.trades.coinbase.raw")
    assert not re.match(TRADES_PATTERN, REJECTS_TOPIC)


def test_client_config_roles_and_redaction():
    options = {"security.protocol": "SASL_SSL", "sasl.username": "svc", "sasl.password": "hunter2",
               "producer.linger.ms": "20", "consumer.fetch.min.bytes": "1000", "ssl.key.password": "k"}
    p = client_config("b:9092", options, "producer", {"linger.ms": 5})
    c = client_config("b:9092", options, "consumer")
    assert p["linger.ms"] == "20" and "fetch.min.bytes" not in p
    assert c["fetch.min.bytes"] == "1000" and "linger.ms" not in c
    assert p["security.protocol"] == c["security.protocol"] == "SASL_SSL"
    shown = json.dumps(redact(p))
    assert "hunter2" not in shown and "svc" not in shown and '"k"' not in shown
    assert redact(p)["sasl.password"] == "***" and redact(p)["linger.ms"] == "20"

