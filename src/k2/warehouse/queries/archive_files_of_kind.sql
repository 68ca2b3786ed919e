-- k2 repair: every file k2 import started of one kind (the latest version of each), to put a
-- lost part of an archive table that nothing else copies back from the files themselves.
SELECT archive_file, sha256, path, toString(state)
FROM k2.archive_files FINAL
WHERE exchange = {exchange:String} AND kind = {kind:String}
ORDER BY archive_file, sha256
