-- Bronze, Coinbase Advanced Trade (the option K2_COINBASE_API=advanced): the `market_trades` trade
-- object field for field, plus the envelope fields it arrived in.
--
-- Wire: {"channel":"market_trades","client_id":"","timestamp":"2026-07-15T12:00:01.250912003Z","sequence_num":4,
--        "events":[{"type":"update","trades":[{"trade_id":"871234568","product_id":"BTC-USD","price":"97512.38",
--        "size":"0.2","side":"BUY","time":"2026-07-15T12:00:01.101871Z"}]}]}
-- `trade_id` is a numeric string and stays one; `side` BUY/SELL is taken as the taker's (UNCONFIRMED by
-- Coinbase's docs). event_type is events[].type ("snapshot" for the trades sent on subscribe, "update"),
-- sequence_num and envelope_timestamp are the message's `sequence_num` and `timestamp`. REST rows have
-- no envelope: '' and 0.
CREATE TABLE IF NOT EXISTS k2.bronze_trades_coinbase_advanced
(
    product_id         LowCardinality(String),     -- "BTC-USD"
    trade_id           String,                     -- numeric string as sent
    price              String,                     -- decimal string as sent
    size               String,                     -- decimal string as sent
    side               Enum8('BUY' = 1, 'SELL' = 2),
    time               String,                     -- RFC 3339 trade time
    event_type         LowCardinality(String),     -- "snapshot" | "update" ('' from REST)
    sequence_num       UInt64,                     -- the message's per-connection counter
    envelope_timestamp String,                     -- the message's `timestamp` (ns precision)
    received_at        DateTime64(6, 'UTC'),
    ingested_at        DateTime64(6, 'UTC') DEFAULT now64(6),
    source             LowCardinality(String),
    batch_id           String,
    kafka_partition    Int32 DEFAULT -1,
    kafka_offset       Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY substring(time, 1, 7)
ORDER BY (product_id, trade_id)
SETTINGS non_replicated_deduplication_window = 100000;
