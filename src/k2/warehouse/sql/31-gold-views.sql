-- Readable gold: finished candles, with the seed platform's column names
-- (open_price ... close_price, volume, trade_count) plus quote_volume, vwap, buy/sell volume.
-- vwap = quote_volume / volume, truncated to 18 decimals.
-- ohlcv_<i>       : one row per (exchange, canonical_symbol, window_start)
-- ohlcv_<i>_cross : one row per (canonical_symbol, window_start) over every exchange trading that
--                   exact pair; `exchanges` lists the venues that contributed.
-- 1m, 5m, 15m merge the 1m states; 1h and 1d merge the 1h states. The inner SELECT renames the
-- stored window so the outer one can name its own `window_start`. Each view is the same query
-- over its source and bucket; keep the ten in step when editing.

CREATE OR REPLACE VIEW k2.ohlcv_1m AS
SELECT exchange, canonical_symbol, toStartOfMinute(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM (SELECT *, window_start AS stored_window FROM k2.gold_ohlcv_1m)
GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_5m AS
SELECT exchange, canonical_symbol, toStartOfFiveMinutes(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM (SELECT *, window_start AS stored_window FROM k2.gold_ohlcv_1m)
GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_15m AS
SELECT exchange, canonical_symbol, toStartOfFifteenMinutes(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM (SELECT *, window_start AS stored_window FROM k2.gold_ohlcv_1m)
GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1h AS
SELECT exchange, canonical_symbol, toStartOfHour(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM (SELECT *, window_start AS stored_window FROM k2.gold_ohlcv_1h)
GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1d AS
SELECT exchange, canonical_symbol, toStartOfDay(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM (SELECT *, window_start AS stored_window FROM k2.gold_ohlcv_1h)
GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1m_cross AS
SELECT 'all' AS exchange, canonical_symbol, toStartOfMinute(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, window_start AS stored_window, exchange AS venue FROM k2.gold_ohlcv_1m)
GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_5m_cross AS
SELECT 'all' AS exchange, canonical_symbol, toStartOfFiveMinutes(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, window_start AS stored_window, exchange AS venue FROM k2.gold_ohlcv_1m)
GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_15m_cross AS
SELECT 'all' AS exchange, canonical_symbol, toStartOfFifteenMinutes(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, window_start AS stored_window, exchange AS venue FROM k2.gold_ohlcv_1m)
GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1h_cross AS
SELECT 'all' AS exchange, canonical_symbol, toStartOfHour(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, window_start AS stored_window, exchange AS venue FROM k2.gold_ohlcv_1h)
GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1d_cross AS
SELECT 'all' AS exchange, canonical_symbol, toStartOfDay(stored_window) AS window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, window_start AS stored_window, exchange AS venue FROM k2.gold_ohlcv_1h)
GROUP BY canonical_symbol, window_start;
