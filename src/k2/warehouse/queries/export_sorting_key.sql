-- k2 export: the sorting key of a MergeTree table ('' for a view), the order a bronze file keeps.
SELECT sorting_key
FROM system.tables
WHERE database = 'k2' AND name = {table:String}
