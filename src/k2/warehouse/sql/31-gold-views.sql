-- Readable gold: finished candles, with the seed platform's column names
-- (open_price ... close_price, volume, trade_count) plus quote_volume, vwap, buy/sell volume.
-- vwap = quote_volume / volume, truncated to 18 decimals.
-- ohlcv_<i>       : one row per (exchange, canonical_symbol, window_start)
-- ohlcv_<i>_cross : one row per (canonical_symbol, window_start) over every exchange trading that
--                   exact pair; `exchanges` lists the venues that contributed.
-- Each view is the same query over its interval's table; keep the ten in step when editing.

CREATE OR REPLACE VIEW k2.ohlcv_1m AS
SELECT exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM k2.gold_ohlcv_1m GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_5m AS
SELECT exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM k2.gold_ohlcv_5m GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_15m AS
SELECT exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM k2.gold_ohlcv_15m GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1h AS
SELECT exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM k2.gold_ohlcv_1h GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1d AS
SELECT exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at
FROM k2.gold_ohlcv_1d GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1m_cross AS
SELECT 'all' AS exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, exchange AS venue FROM k2.gold_ohlcv_1m) GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_5m_cross AS
SELECT 'all' AS exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, exchange AS venue FROM k2.gold_ohlcv_5m) GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_15m_cross AS
SELECT 'all' AS exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, exchange AS venue FROM k2.gold_ohlcv_15m) GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1h_cross AS
SELECT 'all' AS exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, exchange AS venue FROM k2.gold_ohlcv_1h) GROUP BY canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.ohlcv_1d_cross AS
SELECT 'all' AS exchange, canonical_symbol, window_start,
       argMinMerge(open_state) AS open_price, max(high_agg) AS high_price, min(low_agg) AS low_price,
       argMaxMerge(close_state) AS close_price, sum(volume_agg) AS volume, sum(quote_volume_agg) AS quote_volume,
       toDecimal128(sum(quote_volume_agg) / sum(volume_agg), 18) AS vwap, sum(buy_volume_agg) AS buy_volume,
       sum(sell_volume_agg) AS sell_volume, sum(trade_count_agg) AS trade_count,
       min(first_trade_agg) AS first_trade_at, max(last_trade_agg) AS last_trade_at,
       arraySort(groupUniqArray(venue)) AS exchanges
FROM (SELECT *, exchange AS venue FROM k2.gold_ohlcv_1d) GROUP BY canonical_symbol, window_start;
