-- k2 import: what the file ledger knows of one file (latest version).
SELECT state, lines_done, rows_loaded, rejected, time_unit
FROM k2.archive_files FINAL
WHERE exchange = {exchange:String} AND archive_file = {file:String} AND sha256 = {sha256:String}
