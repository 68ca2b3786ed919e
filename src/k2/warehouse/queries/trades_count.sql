-- How many trades trades.sql would return without a limit: the CLI says when an answer is cut
-- short, and the newest N start at offset count - N.
SELECT count()
FROM k2.silver_trades_v2
WHERE canonical_symbol = {symbol:String}
  AND ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND timestamp >= {since:DateTime64(6, 'UTC')}
  AND timestamp < {until:DateTime64(6, 'UTC')}
