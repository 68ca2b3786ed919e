-- Silver: one normalized table for every exchange, filled only by the per-exchange
-- materialized views in 2x-silver-<exchange>.sql.
--
-- Names are the seed platform's, so its queries keep working: `symbol` is the native symbol,
-- `canonical_symbol` is BASE/QUOTE with the true quote asset (BTCUSDT -> BTC/USDT, never USD),
-- `currency` is the quote asset, `side` is the TAKER side, `timestamp` is the exchange's trade
-- time to the microsecond, price/quantity are exact decimals (no Float64 anywhere), and
-- `vendor_data` keeps the original native fields exactly as received.
-- Rows that fail a check are kept with is_valid = 0 and the reasons; gold reads valid rows only.
-- One rule bounds a trade's notional (price x quantity) below 1e14, far above any real trade, so
-- that gold's exact Decimal sums and VWAP can never overflow.
-- Granules of at most 1 MiB (ClickHouse's default is 10 MiB, i.e. all 8,192 rows of a silver row
-- of ~250 bytes, most of it `vendor_data`): a merge reads a granule of every part it merges at
-- once, so the granule bounds a merge's memory. A merge of eight 50,000-row parts took +46 MB
-- with 10 MiB granules and +28 MB with 1 MiB; a 10M-trade `k2 load` peaked at 381-389 MB instead
-- of 412-426 (ADR 0029, fifth round). Fixed when the table is created: an older data dir keeps
-- its granules.
CREATE TABLE IF NOT EXISTS k2.silver_trades_v2
(
    exchange            LowCardinality(String),
    symbol              LowCardinality(String),
    canonical_symbol    LowCardinality(String),
    base                LowCardinality(String),
    quote               LowCardinality(String),
    currency            LowCardinality(String),
    trade_id            String,
    price               Decimal(38, 18),
    quantity            Decimal(38, 18),
    side                Enum8('BUY' = 1, 'SELL' = 2),
    timestamp           DateTime64(6, 'UTC'),
    received_at         DateTime64(6, 'UTC'),
    ingestion_timestamp DateTime64(6, 'UTC'),
    ingested_at         DateTime64(6, 'UTC') ALIAS ingestion_timestamp,
    source              LowCardinality(String),        -- 'ws' | 'file' | 'kafka' | 'rest'
    bronze_table        LowCardinality(String),        -- lineage: the bronze table the row came from
    vendor_data         Map(String, String),
    is_valid            Bool,
    validation_errors   Array(LowCardinality(String))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (canonical_symbol, timestamp, exchange, trade_id)
SETTINGS non_replicated_deduplication_window = 100000, index_granularity_bytes = 1048576;
