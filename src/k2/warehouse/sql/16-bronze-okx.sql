-- Bronze, OKX v5 (`trades` channel): one row per element of `data`, with the channel it came on.
--
-- Wire: {"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"1051102135",
--        "px":"97512.4","sz":"0.3","side":"buy","ts":"1784116800387","count":"3","source":"0","seqId":80559459961}]}
-- Every value is a string on the wire except seqId, and stays so: ts is the ms time AS A STRING.
-- OKX's `source` is stored as trade_source (`source` is K2's ingestion-path column in every bronze table).
-- `side` is the TAKER side; on `trades` one taker order's fills at one price come aggregated (`count`)
-- under one tradeId, so (inst_id, trade_id) is the key and id jumps are normal. count/trade_source are ''
-- and seq_id -1 when absent (trades-all, REST); channel is '' for REST rows.
CREATE TABLE IF NOT EXISTS k2.bronze_trades_okx
(
    channel         LowCardinality(String),        -- arg.channel: "trades" | "trades-all"
    inst_id         LowCardinality(String),        -- instId: "BTC-USDT"
    trade_id        String,                        -- tradeId: numeric string as sent
    px              String,                        -- price, decimal string as sent
    sz              String,                        -- size, decimal string as sent
    side            Enum8('buy' = 1, 'sell' = 2),  -- taker side
    ts              String,                        -- trade time, ms since epoch, as a string
    count           String,                        -- fills aggregated into this trade ('' if absent)
    trade_source    LowCardinality(String),        -- source: OKX's ('0' = normal order; other values UNCONFIRMED)
    seq_id          Int64,                         -- seqId (-1 if absent)
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    source          LowCardinality(String),        -- K2's: 'ws' | 'file' | 'kafka' | 'rest'
    batch_id        String,
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Milli(toInt64OrZero(ts), 'UTC'))
ORDER BY (inst_id, trade_id)
SETTINGS non_replicated_deduplication_window = 100000;
