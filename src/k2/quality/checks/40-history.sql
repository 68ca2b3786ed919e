-- History (k2 import, k2 backfill): checks `k2 validate` runs besides the shared ones in
-- ../checks.sql. Same header format; the report groups checks by section.

-- check: 2 silver | history.silver_once | fail | each trade id is in silver once, whichever way it came (live, REST, archive)
SELECT count(), any(concat(exchange, ' ', toString(symbol), ' ', trade_id, ' x', toString(n))) FROM
(
    SELECT exchange, symbol, trade_id, count() AS n FROM k2.silver_trades_v2
    WHERE exchange IN ('binance', 'coinbase') GROUP BY exchange, symbol, trade_id HAVING n > 1
);

-- check: 2 silver | history.archive_complete | fail | every Binance archive trade in bronze is in silver once
SELECT b != s, concat('bronze ', toString(b), ', silver ', toString(s))
FROM (SELECT (SELECT count() FROM k2.bronze_archive_binance_trades) AS b,
             (SELECT count() FROM k2.silver_trades_v2
              WHERE exchange = 'binance' AND bronze_table = 'bronze_archive_binance_trades') AS s);

-- check: 6 history | history.proven_days | info | UTC days proven complete (consecutive ids joining the days either side)
SELECT 0, concat(toString(countIf(proven)), ' of ', toString(count()), ' day(s) of Binance/Coinbase proven complete')
FROM
(
    SELECT n = hi - lo + 1 AND prev_hi != 0 AND prev_hi + 1 = lo AND next_lo != 0 AND next_lo = hi + 1 AS proven
    FROM
    (
        SELECT lo, hi, n, lagInFrame(hi, 1, toUInt64(0)) OVER w AS prev_hi, leadInFrame(lo, 1, toUInt64(0)) OVER w AS next_lo
        FROM
        (
            SELECT exchange, symbol, toDate(timestamp) AS d, min(toUInt64OrZero(trade_id)) AS lo,
                   max(toUInt64OrZero(trade_id)) AS hi, uniqExact(trade_id) AS n
            FROM k2.silver_trades_v2 WHERE exchange IN ('binance', 'coinbase') GROUP BY exchange, symbol, d
        )
        WINDOW w AS (PARTITION BY exchange, symbol ORDER BY d ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)
    )
);

-- check: 6 history | history.open_holes | warn | no hole in the trade ids of Binance/Coinbase (k2 coverage lists them, k2 backfill --holes fills them)
SELECT count(), any(concat(exchange, ' ', toString(symbol), ' ids ', toString(prev_id + 1), '..', toString(id - 1)))
FROM
(
    SELECT exchange, symbol, toUInt64(trade_id) AS id,
           lagInFrame(toUInt64(trade_id), 1, toUInt64(0)) OVER (PARTITION BY exchange, symbol ORDER BY toUInt64(trade_id)
                                                               ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS prev_id
    FROM k2.silver_trades_v2
    WHERE exchange IN ('binance', 'coinbase') AND toUInt64OrNull(trade_id) IS NOT NULL
)
WHERE prev_id != 0 AND id > prev_id + 1;

-- check: 2 silver | history.archive_normalized | fail | Binance archive trades: side from isBuyerMaker, time in the file's unit to the µs, decimals exact, archive columns kept
SELECT count(), any(concat(trade_id, ': ', problem)) FROM
(
    SELECT trade_id, multiIf(
        side != if(vendor_data['isBuyerMaker'] = 'True', 'SELL', 'BUY'), 'side',
        toUnixTimestamp64Micro(timestamp) != toInt64OrZero(vendor_data['time']) * if(vendor_data['time_unit'] = 'us', 1, 1000), 'timestamp',
        is_valid AND (price != toDecimal128OrZero(vendor_data['price'], 18) OR quantity != toDecimal128OrZero(vendor_data['qty'], 18)), 'decimals',
        NOT hasAll(mapKeys(vendor_data), ['id', 'price', 'qty', 'quoteQty', 'time', 'isBuyerMaker', 'file', 'line']), 'vendor_data',
        '') AS problem
    FROM k2.silver_trades_v2 WHERE exchange = 'binance' AND bronze_table = 'bronze_archive_binance_trades'
)
WHERE problem != '';
