-- k2.connect().gaps(): the gaps ledger with its exact types, newest first.
SELECT detected_at, toString(exchange) AS exchange, toString(symbol) AS symbol, toString(kind) AS kind,
       from_id, to_id, from_time, to_time, toString(state) AS state, trades_recovered, detail
FROM k2.gaps FINAL
WHERE ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND ({state:String} = 'all' OR toString(state) = {state:String})
ORDER BY detected_at DESC
LIMIT {limit:UInt64}
