-- Storage: the tables themselves, beside the trades they hold.

-- check: 5 data quality | storage.damaged_parts | fail | no part of K2's tables was found damaged and left unrepaired (k2 repair)
SELECT count(), arrayStringConcat(groupArray(3)(concat(table, ' ', name, ' (', reason, ')')), '; ')
FROM system.detached_parts
WHERE database = 'k2'
  AND reason IN ('broken', 'broken-on-start', 'unexpected', 'covered-by-broken', 'noquorum', 'broken-from-backup')
  AND (table, name) NOT IN (SELECT table_name, part_name FROM k2.repairs);
