-- Is this canonical symbol known? (instruments, or any silver row: silver is ordered by
-- canonical_symbol first, so this reads one granule)
SELECT (SELECT count() FROM (SELECT 1 FROM k2.instruments FINAL WHERE concat(base, '/', quote) = {s:String} LIMIT 1))
     + (SELECT count() FROM (SELECT 1 FROM k2.silver_trades_v2 WHERE canonical_symbol = {s:String} LIMIT 1))
