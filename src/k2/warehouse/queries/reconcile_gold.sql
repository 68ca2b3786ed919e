-- k2 reconcile: K2's candles of one exchange and symbol, window by window, as exact decimal text.
-- {view} is ohlcv_1m, ohlcv_1h or ohlcv_1d (chosen from a fixed list).
SELECT toUnixTimestamp(window_start) AS start_s,
       toString(open_price) AS open, toString(high_price) AS high, toString(low_price) AS low,
       toString(close_price) AS close, toString(volume) AS volume, toString(quote_volume) AS quote_volume,
       toString(trade_count) AS trade_count, toString(buy_volume) AS buy_volume
FROM k2.{view:Identifier}
WHERE exchange = {exchange:String} AND canonical_symbol = {symbol:String}
  AND window_start >= toDateTime({since:Int64}, 'UTC') AND window_start < toDateTime({until:Int64}, 'UTC')
ORDER BY window_start
