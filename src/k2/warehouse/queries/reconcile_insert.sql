-- k2 reconcile: store the verdicts of one batch of windows ({rows} is a JSON array of objects).
INSERT INTO k2.reconciliation (exchange, symbol, canonical_symbol, interval, window_start, verdict, cause, fields,
                               k2, venue, checked_at)
SELECT JSONExtractString(r, 'exchange'), JSONExtractString(r, 'symbol'), JSONExtractString(r, 'canonical_symbol'),
       JSONExtractString(r, 'interval'), toDateTime(JSONExtractInt(r, 'start_s'), 'UTC'),
       JSONExtractString(r, 'verdict'), JSONExtractString(r, 'cause'), JSONExtract(r, 'fields', 'Array(String)'),
       JSONExtractRaw(r, 'k2'), JSONExtractRaw(r, 'venue'),
       fromUnixTimestamp64Micro(JSONExtractInt(r, 'checked_us'), 'UTC')
FROM (SELECT arrayJoin(JSONExtractArrayRaw({rows:String})) AS r)
