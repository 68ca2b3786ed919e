-- Gaps of one exchange that a run left to do: still open (REST unreachable, or queued when it
-- stopped), or marked unfillable by an older K2 because REST failed (its detail is the exception:
-- "URLError: ...", "TimeoutError: ...") -- not proven by the venue's retention, so tried again.
-- Holes k2 reconcile found (gap_id 'reconcile:...') are windows, not id ranges or reconnects:
-- `k2 reconcile --repair` fills them, the live feed does not.
SELECT gap_id, exchange, symbol, toString(kind) AS kind,
       if(kind = 'ids', toInt64(assumeNotNull(from_id)), toUnixTimestamp64Micro(assumeNotNull(from_time))) AS start,
       if(kind = 'ids', toInt64(assumeNotNull(to_id)), toUnixTimestamp64Micro(assumeNotNull(to_time))) AS end,
       ifNull(toUnixTimestamp64Micro(since_time), -1) AS since, trades_recovered AS recovered, detail,
       toUnixTimestamp64Micro(detected_at) AS detected, toUnixTimestamp64Micro(updated_at) AS updated
FROM k2.gaps FINAL
WHERE exchange = {exchange:String} AND NOT startsWith(gap_id, 'reconcile:')
  AND (state = 'open' OR (state = 'unfillable' AND match(detail, '^[A-Za-z]*(Error|Exception)\\b')))
ORDER BY detected_at
SETTINGS output_format_json_quote_64bit_integers = 0
