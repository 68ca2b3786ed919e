-- Bybit spot (bronze_trades_bybit): checks besides ../checks.sql.

-- check: 1 bronze | bronze.bybit.native | fail | Bybit trades stay native (BTCUSDT, decimal strings)
SELECT count(), any(concat(toString(symbol), ' ', exec_id)) FROM k2.bronze_trades_bybit
WHERE NOT match(toString(symbol), '^[A-Z0-9]+$')
   OR NOT match(price, '^[0-9]+(\\.[0-9]+)?$') OR NOT match(size, '^[0-9]+(\\.[0-9]+)?$');

-- check: 2 silver | silver.bybit.normalized | fail | Bybit: BTCUSDT split by the instruments table, S kept as the taker side, time and decimals exact, native fields kept
SELECT count(), any(concat(trade_id, ': ', problem)) FROM
(
    SELECT trade_id, multiIf(
        concat(base, quote) != toString(symbol) OR canonical_symbol != concat(base, '/', quote), 'symbol',
        side != if(vendor_data['S'] = 'Sell', 'SELL', 'BUY'), 'side',
        NOT hasAll(mapKeys(vendor_data), ['i', 'T', 'p', 'v', 'S', 's']) OR vendor_data['i'] != trade_id, 'vendor_data',
        toUnixTimestamp64Milli(timestamp) != toInt64OrZero(vendor_data['T'])
            OR toUnixTimestamp64Micro(timestamp) % 1000 != 0, 'timestamp',
        is_valid AND (ifNull(price != toDecimal128OrNull(vendor_data['p'], 18), 1)
                      OR ifNull(quantity != toDecimal128OrNull(vendor_data['v'], 18), 1)), 'decimals',
        '') AS problem
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_bybit' AND base != ''
) WHERE problem != '';
