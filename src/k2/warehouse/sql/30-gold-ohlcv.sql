-- Gold: OHLCV candle states per (exchange, canonical_symbol), stored for 1m and 1h.
--
-- Storage is AggregatingMergeTree holding aggregate STATES, never finished numbers: a window that
-- spans several inserts is merged correctly (the SummingMergeTree + plain argMin bug of the seed
-- platform cannot happen). Open and close are argMin/argMax over the key
-- (timestamp, length(trade_id), trade_id): exchange time first, then the trade id compared as a
-- number when it is numeric (Binance "999" < "1000") -- never arrival order.
-- The key is stored as one String that sorts byte by byte exactly as that tuple does: the
-- timestamp's microseconds as 8 big-endian bytes, the id's length as 4, then the id. argMin over a
-- String compares with memcmp; over a Tuple it compared generic values row by row, which cost
-- ~0.26 s of CPU per million trades and per function (ADR 0037). Gold only reads valid rows,
-- whose timestamps are after 2009, so the microseconds are positive.
-- 1m is built from valid silver rows and 1h from 1m by merging states. 5m and 15m are read from
-- the 1m states and 1d from the 1h states (31-gold-views.sql): merging states is exact for any
-- coarser window, and every materialized view adds a fixed cost to every insert.

CREATE TABLE IF NOT EXISTS k2.gold_ohlcv_1m
(
    exchange         LowCardinality(String),
    canonical_symbol LowCardinality(String),
    window_start     DateTime('UTC'),
    open_state       AggregateFunction(argMin, Decimal(38, 18), String),
    close_state      AggregateFunction(argMax, Decimal(38, 18), String),
    high_agg         SimpleAggregateFunction(max, Decimal(38, 18)),
    low_agg          SimpleAggregateFunction(min, Decimal(38, 18)),
    volume_agg       SimpleAggregateFunction(sum, Decimal(38, 18)),
    quote_volume_agg SimpleAggregateFunction(sum, Decimal(76, 36)),
    buy_volume_agg   SimpleAggregateFunction(sum, Decimal(38, 18)),
    sell_volume_agg  SimpleAggregateFunction(sum, Decimal(38, 18)),
    trade_count_agg  SimpleAggregateFunction(sum, UInt64),
    first_trade_agg  SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    last_trade_agg   SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (canonical_symbol, exchange, window_start)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS k2.gold_ohlcv_1h AS k2.gold_ohlcv_1m
ENGINE = AggregatingMergeTree ORDER BY (canonical_symbol, exchange, window_start)
SETTINGS non_replicated_deduplication_window = 100000;

-- silver -> 1m: the only view that reads trades.
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.silver_to_gold_ohlcv_1m_mv TO k2.gold_ohlcv_1m AS
WITH concat(reverse(reinterpretAsFixedString(toUInt64(toUnixTimestamp64Micro(timestamp)))),
            reverse(reinterpretAsFixedString(toUInt32(length(trade_id)))), trade_id) AS trade_order
SELECT
    exchange,
    canonical_symbol,
    toStartOfMinute(timestamp)::DateTime('UTC')                              AS window_start,
    argMinState(price, trade_order)                                          AS open_state,
    argMaxState(price, trade_order)                                          AS close_state,
    max(price)                                                               AS high_agg,
    min(price)                                                               AS low_agg,
    sum(quantity)                                                            AS volume_agg,
    sum(toDecimal256(price, 18) * quantity)                                  AS quote_volume_agg,
    sumIf(quantity, side = 'BUY')                                            AS buy_volume_agg,
    sumIf(quantity, side = 'SELL')                                           AS sell_volume_agg,
    toUInt64(count())                                                        AS trade_count_agg,
    min(timestamp)                                                           AS first_trade_agg,
    max(timestamp)                                                           AS last_trade_agg
FROM k2.silver_trades_v2
WHERE is_valid
GROUP BY exchange, canonical_symbol, window_start;

-- 1m -> 1h: merge the states of the minute windows.
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.gold_ohlcv_1m_to_1h_mv TO k2.gold_ohlcv_1h AS
SELECT exchange, canonical_symbol, toStartOfHour(window_start) AS window_start,
       argMinMergeState(open_state) AS open_state, argMaxMergeState(close_state) AS close_state,
       max(high_agg) AS high_agg, min(low_agg) AS low_agg, sum(volume_agg) AS volume_agg,
       sum(quote_volume_agg) AS quote_volume_agg, sum(buy_volume_agg) AS buy_volume_agg,
       sum(sell_volume_agg) AS sell_volume_agg, sum(trade_count_agg) AS trade_count_agg,
       min(first_trade_agg) AS first_trade_agg, max(last_trade_agg) AS last_trade_agg
FROM k2.gold_ohlcv_1m GROUP BY exchange, canonical_symbol, window_start;

-- Retired: earlier versions also stored 5m, 15m and 1d (now read from 1m/1h states).
DROP VIEW IF EXISTS k2.gold_ohlcv_1m_to_5m_mv;
DROP VIEW IF EXISTS k2.gold_ohlcv_5m_to_15m_mv;
DROP VIEW IF EXISTS k2.gold_ohlcv_15m_to_1h_mv;
DROP VIEW IF EXISTS k2.gold_ohlcv_1h_to_1d_mv;
DROP TABLE IF EXISTS k2.gold_ohlcv_5m;
DROP TABLE IF EXISTS k2.gold_ohlcv_15m;
DROP TABLE IF EXISTS k2.gold_ohlcv_1d;
