-- Coinbase Advanced Trade (bronze_trades_coinbase_advanced): checks besides ../checks.sql.

-- check: 1 bronze | bronze.coinbase_advanced.native | fail | Coinbase Advanced trades stay native (BTC-USD, numeric-string ids, decimal strings, RFC 3339 time)
SELECT count(), any(concat(toString(product_id), ' ', trade_id)) FROM k2.bronze_trades_coinbase_advanced
WHERE NOT match(toString(product_id), '^[A-Z0-9]+-[A-Z0-9]+$') OR NOT match(trade_id, '^[0-9]+$')
   OR NOT match(price, '^[0-9]+(\\.[0-9]+)?$') OR NOT match(size, '^[0-9]+(\\.[0-9]+)?$')
   OR NOT match(time, '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$');

-- check: 2 silver | silver.coinbase_advanced.normalized | fail | Coinbase Advanced: BTC-USD -> BTC/USD, BUY/SELL kept as the taker side, time and decimals exact, native fields kept
SELECT count(), any(concat(trade_id, ': ', problem)) FROM
(
    SELECT trade_id, multiIf(
        canonical_symbol != replaceOne(toString(symbol), '-', '/') OR canonical_symbol != concat(base, '/', quote), 'symbol',
        side != if(vendor_data['side'] = 'SELL', 'SELL', 'BUY'), 'side',
        NOT hasAll(mapKeys(vendor_data), ['trade_id', 'product_id', 'price', 'size', 'side', 'time'])
            OR vendor_data['trade_id'] != trade_id, 'vendor_data',
        ifNull(timestamp != parseDateTime64BestEffortOrNull(vendor_data['time'], 6, 'UTC'), 1), 'timestamp',
        is_valid AND (ifNull(price != toDecimal128OrNull(vendor_data['price'], 18), 1)
                      OR ifNull(quantity != toDecimal128OrNull(vendor_data['size'], 18), 1)), 'decimals',
        '') AS problem
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_coinbase_advanced'
) WHERE problem != '';
