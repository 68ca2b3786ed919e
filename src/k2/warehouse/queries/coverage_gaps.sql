-- k2 coverage: the gaps ledger's id gaps (latest version each), to link holes to.
SELECT exchange, symbol, gap_id, toString(state) AS state, from_id, to_id
FROM k2.gaps FINAL
WHERE kind = 'ids' AND exchange IN {exchanges:Array(String)}
