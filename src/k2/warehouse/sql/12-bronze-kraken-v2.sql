-- Bronze, Kraken WebSocket v2 (the option K2_KRAKEN_API=v2): the v2 trade object field for field.
--
-- Wire: {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":97512.4,
--        "qty":0.01,"ord_type":"market","trade_id":83412003,"timestamp":"2026-07-15T12:00:00.412398Z"}]}
-- price and qty are JSON numbers on the wire; they are stored as their exact text. `trade_id` is
-- Kraken's per-book sequence number, so (symbol, trade_id) is the key. `is_snapshot` marks trades
-- from the snapshot sent on subscribe (type "snapshot").
CREATE TABLE IF NOT EXISTS k2.bronze_trades_kraken_v2
(
    symbol          LowCardinality(String),        -- "BTC/USD"
    side            Enum8('buy' = 1, 'sell' = 2),  -- taker side
    price           String,                        -- number text as sent
    qty             String,                        -- number text as sent
    ord_type        Enum8('limit' = 1, 'market' = 2),
    trade_id        UInt64,
    timestamp       String,                        -- RFC 3339, "2026-07-15T12:00:00.412398Z"
    is_snapshot     Bool,
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY substring(timestamp, 1, 7)
ORDER BY (symbol, trade_id)
SETTINGS non_replicated_deduplication_window = 100000;
