-- k2 import: a new version of one file's ledger row.
INSERT INTO k2.archive_files (exchange, archive_file, sha256, kind, symbol, time_unit, path, lines_done,
                              rows_loaded, rejected, state)
VALUES ({exchange:String}, {file:String}, {sha256:String}, {kind:String}, {symbol:String}, {unit:String},
        {path:String}, {lines_done:UInt64}, {rows_loaded:UInt64}, {rejected:UInt64}, {state:String})
