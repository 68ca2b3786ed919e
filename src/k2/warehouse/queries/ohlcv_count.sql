-- How many candles ohlcv.sql would return without a limit: the CLI says when an answer is cut
-- short, and the newest N start at offset count - N.
SELECT count()
FROM k2.{view:Identifier}
WHERE canonical_symbol = {symbol:String}
  AND ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND window_start >= {since:DateTime64(6, 'UTC')}
  AND window_start < {until:DateTime64(6, 'UTC')}
