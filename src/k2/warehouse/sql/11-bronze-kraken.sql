-- Bronze, Kraken (WebSocket v1 trade channel): the seed's native schema.
--
-- Wire: [119930881,[["97512.30000","0.00150000","1784116800.412345","b","m",""]],"trade","XBT/USD"]
--        = [channelID, [[price, volume, time, side, orderType, misc], ...], channelName, pair]
-- `pair` stays "XBT/USD", `timestamp` stays the "seconds.microseconds" string, side b/s (taker),
-- order_type l/m. Kraken v1 sends no trade id, so the natural key is the whole trade; `occurrence`
-- (K2's, not Kraken's) tells apart identical trades inside one frame: 0 for the first, 1 for its
-- first exact repeat, and so on.
CREATE TABLE IF NOT EXISTS k2.bronze_trades_kraken
(
    channel_id      UInt64,                        -- channelID (deprecated by Kraken; 0 from REST)
    pair            LowCardinality(String),        -- "XBT/USD"
    price           String,                        -- decimal string as sent
    volume          String,                        -- decimal string as sent
    timestamp       String,                        -- "1784116800.412345" (seconds.microseconds)
    side            Enum8('b' = 1, 's' = 2),       -- taker side
    order_type      Enum8('l' = 1, 'm' = 2),       -- taker order type
    misc            String,
    occurrence      UInt16 DEFAULT 0,
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(toUInt32OrZero(splitByChar('.', timestamp)[1]), 'UTC'))
ORDER BY (pair, timestamp, price, volume, side, order_type, misc, occurrence)
SETTINGS non_replicated_deduplication_window = 100000;
