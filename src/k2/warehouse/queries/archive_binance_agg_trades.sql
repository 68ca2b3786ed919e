-- k2 import, Binance spot `aggTrades` files: one chunk of lines into archive_lines (see
-- archive_binance_trades.sql); `skip` holds aggregate-id runs already stored.
INSERT INTO k2.archive_lines (exchange, kind, symbol, archive_file, line_no, line, fields, time_unit, reason, batch_id)
SELECT 'binance', 'aggTrades', {symbol:String}, {file:String}, n, l, f, {unit:String},
    multiIf(
        length(f) NOT IN (7, 8), concat('expected 8 fields of a Binance aggTrades file, got ', toString(length(f))),
        toUInt64OrNull(f[1]) IS NULL, 'aggregate trade id is not an unsigned integer',
        NOT match(f[2], '^[0-9]+(\\.[0-9]+)?$'), 'price is not a decimal',
        NOT match(f[3], '^[0-9]+(\\.[0-9]+)?$'), 'quantity is not a decimal',
        toUInt64OrNull(f[4]) IS NULL OR toUInt64OrNull(f[5]) IS NULL, 'first/last trade id is not an unsigned integer',
        toUInt64(f[4]) > toUInt64(f[5]), 'first trade id after the last',
        toInt64OrNull(f[6]) IS NULL, 'time is not an integer',
        (toInt64(f[6]) >= 100000000000000) != ({unit:String} = 'us'),
            concat('time ', f[6], ' is not in the file''s unit (', {unit:String}, ')'),
        lower(f[7]) NOT IN ('true', 'false'), 'isBuyerMaker is not True/False',
        length(f) = 8 AND lower(f[8]) NOT IN ('true', 'false', ''), 'isBestMatch is not True/False',
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
       AND toYYYYMM(fromUnixTimestamp64Micro(if({unit:String} = 'us', toInt64OrZero(f[6]), toInt64OrZero(f[6]) * 1000), 'UTC'))
           = {only_month:UInt32}))
