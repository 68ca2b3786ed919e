-- k2 ohlcv: finished candles of one canonical symbol from the gold views.
-- {view} is ohlcv_<interval> (per exchange) or ohlcv_<interval>_cross (exchange = 'all'),
-- chosen from a fixed list; every user value is a bound parameter. {offset} skips the oldest
-- candles when the newest {limit} are asked for (ohlcv_count.sql counts them first).
SELECT
    formatDateTime(window_start, '%Y-%m-%dT%H:%i:%SZ') AS bucket,
    exchange,
    canonical_symbol AS symbol,
    open_price AS open,
    high_price AS high,
    low_price AS low,
    close_price AS close,
    volume,
    quote_volume,
    trade_count,
    vwap,
    buy_volume,
    sell_volume
FROM k2.{view:Identifier}
WHERE canonical_symbol = {symbol:String}
  AND ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND window_start >= {since:DateTime64(6, 'UTC')}
  AND window_start < {until:DateTime64(6, 'UTC')}
ORDER BY window_start, exchange
LIMIT {limit:UInt64} OFFSET {offset:UInt64}
