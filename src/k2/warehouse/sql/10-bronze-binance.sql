-- Bronze, Binance: the spot `trade` event field for field, as Binance names and means it.
--
-- Wire: {"e":"trade","E":1784116800123,"s":"BTCUSDT","t":5123456789,"p":"97512.34000000",
--        "q":"0.00120000","T":1784116800122,"m":true,"M":true}
-- Prices and quantities stay the exchange's decimal strings (trailing zeros included); silver
-- parses them into exact decimals. One row per trade; (symbol, trade_id) is Binance's own key.
-- The ingestion metadata says when and how the row arrived; `batch_id` is the deduplication
-- token of the insert that wrote it.
CREATE TABLE IF NOT EXISTS k2.bronze_trades_binance
(
    event_type      LowCardinality(String),        -- e: "trade"
    event_time_ms   Int64,                         -- E: event time, ms since epoch
    symbol          LowCardinality(String),        -- s: "BTCUSDT"
    trade_id        UInt64,                        -- t: per-symbol sequential trade id
    price           String,                        -- p: decimal string as sent
    quantity        String,                        -- q: decimal string as sent
    trade_time_ms   Int64,                         -- T: trade time, ms since epoch
    is_buyer_maker  Bool,                          -- m: true = the buyer was the maker (taker sold)
    is_best_match   Nullable(Bool),                -- M: "ignore" per Binance docs, kept as sent (NULL if absent)
    received_at     DateTime64(6, 'UTC'),          -- when K2 received the frame
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),        -- 'ws' | 'file' | 'kafka' | 'rest'
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Milli(trade_time_ms, 'UTC'))
ORDER BY (symbol, trade_id)
SETTINGS non_replicated_deduplication_window = 100000;
