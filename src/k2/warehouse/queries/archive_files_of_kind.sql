-- k2 repair: every file k2 import started of one kind (the latest version of each), and whether
-- rows of it are still in the given month's partition of its table, to put a lost part of an
-- archive table that nothing else copies back from the files themselves.
SELECT archive_file, sha256, path, toString(state),
       archive_file IN (SELECT DISTINCT archive_file FROM k2.{table:Identifier}
                        WHERE _partition_id = {partition_id:String}) AS has_rows_there
FROM k2.archive_files FINAL
WHERE exchange = {exchange:String} AND kind = {kind:String}
ORDER BY archive_file, sha256
