-- k2 import, Kraken Time & Sales CSVs (unix seconds, price, volume): one chunk of lines into
-- archive_lines. These rows have no id, so a re-import is stopped by the file ledger
-- (archive_files) and a retried chunk by its deduplication token; `skip` is unused.
INSERT INTO k2.archive_lines (exchange, kind, symbol, archive_file, line_no, line, fields, time_unit, reason, batch_id)
SELECT 'kraken', 'timesales', {symbol:String}, {file:String}, n, l, f, {unit:String},
    multiIf(
        length(f) != 3, concat('expected 3 fields of a Kraken time-and-sales file, got ', toString(length(f))),
        toInt64OrNull(f[1]) IS NULL, 'time is not integer seconds',
        NOT match(f[2], '^[0-9]+(\\.[0-9]+)?$'), 'price is not a decimal',
        NOT match(f[3], '^[0-9]+(\\.[0-9]+)?$'), 'volume is not a decimal',
        '') AS reason,
    {batch:String}
FROM (
    SELECT {first_line:UInt64} + rowNumberInAllBlocks() AS n,
           if(endsWith(line, '\r'), substring(line, 1, length(line) - 1), line) AS l,
           splitByChar(',', l) AS f
    FROM file({path:String}, LineAsString)
)
WHERE (empty({skip:Array(Tuple(UInt64, UInt64))}) OR 1)
  -- k2 repair rebuilding one month's partition from the file: its good lines of that month only
  AND ({only_month:UInt32} = 0 OR (reason = ''
       AND toYYYYMM(toDateTime(toInt64OrZero(f[1]), 'UTC'))
           = {only_month:UInt32}))
