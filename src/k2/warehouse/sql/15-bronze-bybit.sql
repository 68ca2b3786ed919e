-- Bronze, Bybit v5 spot (`publicTrade.<symbol>`): one row per element of `data`, with the message's
-- topic, type and ts.
--
-- Wire: {"topic":"publicTrade.BTCUSDT","ts":1784116800389,"type":"snapshot","data":[{"i":"2290000000861234568",
--        "T":1784116800387,"p":"97512.4","v":"0.04","S":"Buy","s":"BTCUSDT","BT":false,"RPI":false,"seq":79432105533}]}
-- Bybit's one-letter keys are spelled out here (the comment names each); silver's vendor_data keeps
-- them as sent. `S` is the TAKER side. `i` is unique per symbol but not sequential, so
-- (symbol, exec_id) is the key. RPI and seq are newer fields: NULL / -1 when absent. REST rows
-- (recent-trade) have no topic or type ('') and carry the response's time as message_ts_ms.
CREATE TABLE IF NOT EXISTS k2.bronze_trades_bybit
(
    topic           LowCardinality(String),        -- "publicTrade.BTCUSDT"
    message_type    LowCardinality(String),        -- type: always "snapshot" on this topic
    message_ts_ms   Int64,                         -- ts: when Bybit generated the message, ms
    exec_id         String,                        -- i: execution (trade) id
    trade_time_ms   Int64,                         -- T: fill time, ms
    price           String,                        -- p: decimal string as sent
    size            String,                        -- v: decimal string as sent
    side            Enum8('Buy' = 1, 'Sell' = 2),  -- S: taker side
    symbol          LowCardinality(String),        -- s: "BTCUSDT"
    is_block_trade  Bool,                          -- BT
    is_rpi          Nullable(Bool),                -- RPI: retail-price-improvement trade (NULL if absent)
    seq             Int64,                         -- seq: cross sequence (-1 if absent)
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Milli(trade_time_ms, 'UTC'))
ORDER BY (symbol, exec_id)
SETTINGS non_replicated_deduplication_window = 100000;
