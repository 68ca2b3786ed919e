-- Parts of K2's tables that ClickHouse detached as broken (lost rows: not `ignored`, an outdated
-- part a newer one covers) and no repair has dealt with (k2.warehouse.repair.BROKEN_REASONS).
SELECT table, name, partition_id, reason
FROM system.detached_parts
WHERE database = 'k2'
  AND reason IN ('broken', 'broken-on-start', 'unexpected', 'covered-by-broken', 'noquorum', 'broken-from-backup')
  AND (table, name) NOT IN (SELECT table_name, part_name FROM k2.repairs)
ORDER BY table, name
