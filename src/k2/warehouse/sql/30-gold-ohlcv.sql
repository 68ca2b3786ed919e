-- Gold: OHLCV candles for 1m, 5m, 15m, 1h and 1d per (exchange, canonical_symbol).
--
-- Storage is AggregatingMergeTree holding aggregate STATES, never finished numbers: a window that
-- spans several inserts is merged correctly (the SummingMergeTree + plain argMin bug of the seed
-- platform cannot happen). Open and close are argMin/argMax over the key
-- (timestamp, length(trade_id), trade_id): exchange time first, then the trade id compared as a
-- number when it is numeric (Binance "999" < "1000") -- never arrival order.
-- 1m is built from valid silver rows; each longer interval is built from the one below it by
-- merging states, so every interval is consistent with 1m by construction.
-- Readable views: ohlcv_<i> (per exchange) and ohlcv_<i>_cross (all exchanges that trade the exact
-- same canonical pair, e.g. BTC/USD; BTC/USDT is a different pair).

CREATE TABLE IF NOT EXISTS k2.gold_ohlcv_1m
(
    exchange         LowCardinality(String),
    canonical_symbol LowCardinality(String),
    window_start     DateTime('UTC'),
    open_state       AggregateFunction(argMin, Decimal(38, 18), Tuple(DateTime64(6, 'UTC'), UInt64, String)),
    close_state      AggregateFunction(argMax, Decimal(38, 18), Tuple(DateTime64(6, 'UTC'), UInt64, String)),
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

CREATE TABLE IF NOT EXISTS k2.gold_ohlcv_5m AS k2.gold_ohlcv_1m
ENGINE = AggregatingMergeTree ORDER BY (canonical_symbol, exchange, window_start)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS k2.gold_ohlcv_15m AS k2.gold_ohlcv_1m
ENGINE = AggregatingMergeTree ORDER BY (canonical_symbol, exchange, window_start)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS k2.gold_ohlcv_1h AS k2.gold_ohlcv_1m
ENGINE = AggregatingMergeTree ORDER BY (canonical_symbol, exchange, window_start)
SETTINGS non_replicated_deduplication_window = 100000;

CREATE TABLE IF NOT EXISTS k2.gold_ohlcv_1d AS k2.gold_ohlcv_1m
ENGINE = AggregatingMergeTree ORDER BY (canonical_symbol, exchange, window_start)
SETTINGS non_replicated_deduplication_window = 100000;

-- silver -> 1m: the only view that reads trades.
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.silver_to_gold_ohlcv_1m_mv TO k2.gold_ohlcv_1m AS
SELECT
    exchange,
    canonical_symbol,
    toStartOfMinute(timestamp)::DateTime('UTC')                              AS window_start,
    argMinState(price, (timestamp, toUInt64(length(trade_id)), trade_id))   AS open_state,
    argMaxState(price, (timestamp, toUInt64(length(trade_id)), trade_id))   AS close_state,
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

-- Each longer interval merges the states of the interval below it.
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.gold_ohlcv_1m_to_5m_mv TO k2.gold_ohlcv_5m AS
SELECT exchange, canonical_symbol, toStartOfFiveMinutes(window_start) AS window_start,
       argMinMergeState(open_state) AS open_state, argMaxMergeState(close_state) AS close_state,
       max(high_agg) AS high_agg, min(low_agg) AS low_agg, sum(volume_agg) AS volume_agg,
       sum(quote_volume_agg) AS quote_volume_agg, sum(buy_volume_agg) AS buy_volume_agg,
       sum(sell_volume_agg) AS sell_volume_agg, sum(trade_count_agg) AS trade_count_agg,
       min(first_trade_agg) AS first_trade_agg, max(last_trade_agg) AS last_trade_agg
FROM k2.gold_ohlcv_1m GROUP BY exchange, canonical_symbol, window_start;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.gold_ohlcv_5m_to_15m_mv TO k2.gold_ohlcv_15m AS
SELECT exchange, canonical_symbol, toStartOfFifteenMinutes(window_start) AS window_start,
       argMinMergeState(open_state) AS open_state, argMaxMergeState(close_state) AS close_state,
       max(high_agg) AS high_agg, min(low_agg) AS low_agg, sum(volume_agg) AS volume_agg,
       sum(quote_volume_agg) AS quote_volume_agg, sum(buy_volume_agg) AS buy_volume_agg,
       sum(sell_volume_agg) AS sell_volume_agg, sum(trade_count_agg) AS trade_count_agg,
       min(first_trade_agg) AS first_trade_agg, max(last_trade_agg) AS last_trade_agg
FROM k2.gold_ohlcv_5m GROUP BY exchange, canonical_symbol, window_start;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.gold_ohlcv_15m_to_1h_mv TO k2.gold_ohlcv_1h AS
SELECT exchange, canonical_symbol, toStartOfHour(window_start) AS window_start,
       argMinMergeState(open_state) AS open_state, argMaxMergeState(close_state) AS close_state,
       max(high_agg) AS high_agg, min(low_agg) AS low_agg, sum(volume_agg) AS volume_agg,
       sum(quote_volume_agg) AS quote_volume_agg, sum(buy_volume_agg) AS buy_volume_agg,
       sum(sell_volume_agg) AS sell_volume_agg, sum(trade_count_agg) AS trade_count_agg,
       min(first_trade_agg) AS first_trade_agg, max(last_trade_agg) AS last_trade_agg
FROM k2.gold_ohlcv_15m GROUP BY exchange, canonical_symbol, window_start;

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.gold_ohlcv_1h_to_1d_mv TO k2.gold_ohlcv_1d AS
SELECT exchange, canonical_symbol, toStartOfDay(window_start) AS window_start,
       argMinMergeState(open_state) AS open_state, argMaxMergeState(close_state) AS close_state,
       max(high_agg) AS high_agg, min(low_agg) AS low_agg, sum(volume_agg) AS volume_agg,
       sum(quote_volume_agg) AS quote_volume_agg, sum(buy_volume_agg) AS buy_volume_agg,
       sum(sell_volume_agg) AS sell_volume_agg, sum(trade_count_agg) AS trade_count_agg,
       min(first_trade_agg) AS first_trade_agg, max(last_trade_agg) AS last_trade_agg
FROM k2.gold_ohlcv_1h GROUP BY exchange, canonical_symbol, window_start;
