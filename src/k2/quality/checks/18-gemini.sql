-- Gemini (bronze_trades_gemini): checks besides ../checks.sql.

-- check: 1 bronze | bronze.gemini.native | fail | Gemini trades stay native (BTCUSD, decimal strings)
SELECT count(), any(concat(toString(symbol), ' ', toString(tid))) FROM k2.bronze_trades_gemini
WHERE NOT match(toString(symbol), '^[A-Z0-9]+$')
   OR NOT match(price, '^[0-9]+(\\.[0-9]+)?$') OR NOT match(quantity, '^[0-9]+(\\.[0-9]+)?$');

-- check: 2 silver | silver.gemini.normalized | fail | Gemini: BTCUSD split by the instruments table, side kept as the taker side, time and decimals exact, native fields kept
SELECT count(), any(concat(trade_id, ': ', problem)) FROM
(
    SELECT trade_id, multiIf(
        concat(base, quote) != toString(symbol) OR canonical_symbol != concat(base, '/', quote), 'symbol',
        side != if(vendor_data['side'] = 'sell', 'SELL', 'BUY'), 'side',
        NOT hasAll(mapKeys(vendor_data), ['symbol', 'timestamp', 'price', 'quantity', 'side'])
            OR if(mapContains(vendor_data, 'tid'), vendor_data['tid'], vendor_data['event_id']) != trade_id, 'vendor_data',
        toUnixTimestamp64Milli(timestamp) != toInt64OrZero(vendor_data['timestamp'])
            OR toUnixTimestamp64Micro(timestamp) % 1000 != 0, 'timestamp',
        is_valid AND (ifNull(price != toDecimal128OrNull(vendor_data['price'], 18), 1)
                      OR ifNull(quantity != toDecimal128OrNull(vendor_data['quantity'], 18), 1)), 'decimals',
        '') AS problem
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_gemini' AND base != ''
) WHERE problem != '';
