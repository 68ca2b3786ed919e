-- k2 gaps: the ledger, newest first.
SELECT formatDateTime(detected_at, '%Y-%m-%dT%H:%i:%S.%fZ') AS detected, exchange, symbol, kind,
       if(kind = 'ids', concat(toString(from_id), '..', toString(to_id)),
          concat(formatDateTime(assumeNotNull(from_time), '%Y-%m-%dT%H:%i:%S.%fZ'), '..',
                 formatDateTime(assumeNotNull(to_time), '%Y-%m-%dT%H:%i:%S.%fZ'))) AS missing,
       state, trades_recovered, detail
FROM k2.gaps FINAL
WHERE ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND ({state:String} = 'all' OR toString(state) = {state:String})
ORDER BY detected_at DESC
LIMIT {limit:UInt64}
