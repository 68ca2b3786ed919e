-- How many rejects rejects.sql would return without a limit (the CLI says when it cut the list).
SELECT count()
FROM k2.rejects
WHERE ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND received_at >= {since:DateTime64(6, 'UTC')}
