-- OKX (bronze_trades_okx): checks besides ../checks.sql.

-- check: 1 bronze | bronze.okx.native | fail | OKX trades stay native (BTC-USDT, decimal strings, ts as a millisecond string)
SELECT count(), any(concat(toString(inst_id), ' ', trade_id)) FROM k2.bronze_trades_okx
WHERE NOT match(toString(inst_id), '^[A-Z0-9]+-[A-Z0-9]+$') OR NOT match(trade_id, '^[0-9]+$')
   OR NOT match(px, '^[0-9]+(\\.[0-9]+)?$') OR NOT match(sz, '^[0-9]+(\\.[0-9]+)?$') OR NOT match(ts, '^[0-9]+$');

-- check: 2 silver | silver.okx.normalized | fail | OKX: BTC-USDT -> BTC/USDT, side kept as the taker side, time and decimals exact, native fields kept
SELECT count(), any(concat(trade_id, ': ', problem)) FROM
(
    SELECT trade_id, multiIf(
        canonical_symbol != replaceOne(toString(symbol), '-', '/') OR canonical_symbol != concat(base, '/', quote), 'symbol',
        side != if(vendor_data['side'] = 'sell', 'SELL', 'BUY'), 'side',
        NOT hasAll(mapKeys(vendor_data), ['instId', 'tradeId', 'px', 'sz', 'side', 'ts'])
            OR vendor_data['tradeId'] != trade_id, 'vendor_data',
        toUnixTimestamp64Milli(timestamp) != toInt64OrZero(vendor_data['ts'])
            OR toUnixTimestamp64Micro(timestamp) % 1000 != 0, 'timestamp',
        is_valid AND (ifNull(price != toDecimal128OrNull(vendor_data['px'], 18), 1)
                      OR ifNull(quantity != toDecimal128OrNull(vendor_data['sz'], 18), 1)), 'decimals',
        '') AS problem
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_okx'
) WHERE problem != '';
