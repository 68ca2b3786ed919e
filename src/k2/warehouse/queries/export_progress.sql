-- k2 export: rows the engine has handed to the Parquet writer so far in the export statement tagged
-- {tag} (its log_comment); no row while it has not started or is done.
SELECT written_rows
FROM system.processes
WHERE Settings['log_comment'] = {tag:String}
