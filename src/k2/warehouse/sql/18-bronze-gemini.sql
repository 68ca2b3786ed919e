-- Bronze, Gemini market data v2 (trades of the `l2` subscription): the trade event field for field.
--
-- Wire: {"type":"trade","symbol":"BTCUSD","event_id":291838476011,"timestamp":1784116800122,
--        "price":"97512.40","quantity":"0.04","side":"buy","tid":2840140800042679}
-- `side` is the TAKER side, `timestamp` ms. The first message after subscribing (l2_updates) carries
-- the last 50 trades: those rows have is_snapshot = true and repeat after every reconnect, so
-- (symbol, tid) is the key. REST rows (/v1/trades) have no event_id: 0.
-- A trade event without tid (some captures; cryptofeed keys Gemini trades on event_id) is named by
-- its event_id: `tid` then holds the event_id and `id_field` says 'event_id' (ADR 0011).
CREATE TABLE IF NOT EXISTS k2.bronze_trades_gemini
(
    symbol          LowCardinality(String),        -- "BTCUSD"
    event_id        UInt64,
    timestamp       Int64,                         -- trade time, ms since epoch
    price           String,                        -- decimal string as sent
    quantity        String,                        -- decimal string as sent
    side            Enum8('buy' = 1, 'sell' = 2),  -- taker side
    tid             UInt64,                        -- trade id (the event_id when id_field = 'event_id')
    is_snapshot     Bool,
    id_field        LowCardinality(String) DEFAULT 'tid', -- which of the venue's ids names the trade
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Milli(timestamp, 'UTC'))
ORDER BY (symbol, tid)
SETTINGS non_replicated_deduplication_window = 100000;

-- data dirs made before id_field existed: every trade they hold was named by its tid
ALTER TABLE k2.bronze_trades_gemini ADD COLUMN IF NOT EXISTS id_field LowCardinality(String) DEFAULT 'tid' AFTER is_snapshot;
