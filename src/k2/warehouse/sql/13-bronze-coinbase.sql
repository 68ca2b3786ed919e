-- Bronze, Coinbase Exchange (the public ws-feed `matches` channel): the match message field for field.
--
-- Wire: {"type":"match","trade_id":871234568,"maker_order_id":"3d2c...","taker_order_id":"7a6b...",
--        "side":"sell","size":"0.2","price":"97512.38","product_id":"BTC-USD","sequence":112233445622,
--        "time":"2026-07-15T12:00:01.101871Z"}
-- `side` is Coinbase's: the MAKER order's side (silver inverts it into the taker side). `type` is
-- "match", or "last_match" for the most recent trade sent right after subscribing. size and price stay
-- the decimal strings as sent, `time` the RFC 3339 string. trade_id counts up by one per product, so
-- (product_id, trade_id) is the key. Rows from the REST trades endpoint (source 'rest') have no type,
-- order ids or sequence: '' and 0.
CREATE TABLE IF NOT EXISTS k2.bronze_trades_coinbase
(
    type            LowCardinality(String),        -- "match" | "last_match" ('' from REST)
    trade_id        UInt64,                        -- per-product sequential trade id
    maker_order_id  String,
    taker_order_id  String,
    side            Enum8('buy' = 1, 'sell' = 2),  -- the MAKER's side: sell = the taker bought
    size            String,                        -- decimal string as sent
    price           String,                        -- decimal string as sent
    product_id      LowCardinality(String),        -- "BTC-USD"
    sequence        UInt64,                        -- per-product feed sequence (0 from REST)
    time            String,                        -- RFC 3339, "2026-07-15T12:00:01.101871Z"
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY substring(time, 1, 7)
ORDER BY (product_id, trade_id)
SETTINGS non_replicated_deduplication_window = 100000;
