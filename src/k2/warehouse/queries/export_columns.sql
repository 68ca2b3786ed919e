-- k2 export: the columns of a table or view, in order, as SELECT * would give them.
SELECT name, type
FROM system.columns
WHERE database = 'k2' AND table = {table:String} AND default_kind NOT IN ('ALIAS', 'MATERIALIZED', 'EPHEMERAL')
ORDER BY position
