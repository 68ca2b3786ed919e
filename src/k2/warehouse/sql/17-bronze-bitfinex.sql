-- Bronze, Bitfinex v2 (`trades` channel of trading pairs): one row per [ID, MTS, AMOUNT, PRICE].
--
-- Wire: snapshot [17470,[[1773456791,1784116799512,0.0021,97512],...]]   then
--       [17470,"te",[1773456795,1784116800122,-0.0012,97508]]  (and "tu" repeating it, which K2 skips)
-- A trade frame names only its channel; `symbol` ("tBTCUSD") is the one the connection's `subscribed`
-- event gave that chanId. AMOUNT is signed: > 0 the taker bought, < 0 the taker sold, |AMOUNT| the
-- size. AMOUNT and PRICE are JSON numbers on the wire and stored as their exact text (exponents such
-- as 1e-8 included). msg_type says how the row arrived: 'te', 'snapshot' (sent on subscribe) or
-- 'hist' (REST). ID is unique per pair, so (symbol, id) is the key; chan_id is 0 for REST rows.
CREATE TABLE IF NOT EXISTS k2.bronze_trades_bitfinex
(
    chan_id         UInt64,                        -- chanId of the connection's subscription
    symbol          LowCardinality(String),        -- "tBTCUSD", "tDOGE:USD"
    msg_type        LowCardinality(String),        -- 'te' | 'snapshot' | 'hist'
    id              UInt64,                        -- ID
    mts             Int64,                         -- MTS: trade time, ms since epoch
    amount          String,                        -- AMOUNT: signed number text as sent
    price           String,                        -- PRICE: number text as sent
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Milli(mts, 'UTC'))
ORDER BY (symbol, id)
SETTINGS non_replicated_deduplication_window = 100000;
