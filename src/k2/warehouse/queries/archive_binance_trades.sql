-- k2 import, Binance spot `trades` files: one chunk of a file's lines (LineAsString, streamed by
-- k2.history.archives) into archive_lines, each line split and checked here; the views in
-- 40-archive.sql route it to bronze or to rejects. Lines whose trade id lies in `skip` (id runs
-- bronze already holds) are left out: a re-import or an overlap with live/REST writes nothing.
INSERT INTO k2.archive_lines (exchange, kind, symbol, archive_file, line_no, line, fields, time_unit, reason, batch_id)
SELECT 'binance', 'trades', {symbol:String}, {file:String}, n, l, f, {unit:String},
    multiIf(
        length(f) NOT IN (6, 7), concat('expected 7 fields of a Binance trades file, got ', toString(length(f))),
        toUInt64OrNull(f[1]) IS NULL, 'trade id is not an unsigned integer',
        NOT match(f[2], '^[0-9]+(\\.[0-9]+)?$'), 'price is not a decimal',
        NOT match(f[3], '^[0-9]+(\\.[0-9]+)?$'), 'qty is not a decimal',
        NOT match(f[4], '^[0-9]+(\\.[0-9]+)?$'), 'quoteQty is not a decimal',
        toInt64OrNull(f[5]) IS NULL, 'time is not an integer',
        (toInt64(f[5]) >= 100000000000000) != ({unit:String} = 'us'),
            concat('time ', f[5], ' is not in the file''s unit (', {unit:String}, ')'),
        lower(f[6]) NOT IN ('true', 'false'), 'isBuyerMaker is not True/False',
        length(f) = 7 AND lower(f[7]) NOT IN ('true', 'false', ''), 'isBestMatch is not True/False',
        '') AS reason,
    {batch:String}
FROM (
    SELECT {first_line:UInt64} + rowNumberInAllBlocks() AS n,
           if(endsWith(line, '\r'), substring(line, 1, length(line) - 1), line) AS l,
           splitByChar(',', l) AS f
    FROM file({path:String}, LineAsString)
)
WHERE (empty({skip:Array(Tuple(UInt64, UInt64))})
   OR NOT arrayExists(r -> toUInt64OrZero(f[1]) BETWEEN r.1 AND r.2, {skip:Array(Tuple(UInt64, UInt64))}))
  -- k2 repair rebuilding one month's partition from the file: its good lines of that month only
  AND ({only_month:UInt32} = 0 OR (reason = ''
       AND toYYYYMM(fromUnixTimestamp64Micro(if({unit:String} = 'us', toInt64OrZero(f[5]), toInt64OrZero(f[5]) * 1000), 'UTC'))
           = {only_month:UInt32}))
