-- Coinbase Exchange (bronze_trades_coinbase): checks `k2 validate` runs besides the shared ones in
-- ../checks.sql. Same header format; the report groups checks by section.

-- check: 1 bronze | bronze.coinbase.native | fail | Coinbase matches stay native (BTC-USD, decimal strings, RFC 3339 time)
SELECT count(), any(concat(toString(product_id), ' ', toString(trade_id))) FROM k2.bronze_trades_coinbase
WHERE NOT match(toString(product_id), '^[A-Z0-9]+-[A-Z0-9]+$')
   OR NOT match(price, '^[0-9]+(\\.[0-9]+)?$') OR NOT match(size, '^[0-9]+(\\.[0-9]+)?$')
   OR NOT match(time, '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?Z$');

-- check: 2 silver | silver.coinbase.normalized | fail | Coinbase: BTC-USD -> BTC/USD, taker side = opposite of the maker side, time and decimals exact, native fields kept
SELECT count(), any(concat(trade_id, ': ', problem)) FROM
(
    SELECT trade_id, multiIf(
        canonical_symbol != replaceOne(toString(symbol), '-', '/') OR canonical_symbol != concat(base, '/', quote), 'symbol',
        side != if(vendor_data['side'] = 'sell', 'BUY', 'SELL'), 'side',
        NOT hasAll(mapKeys(vendor_data), ['trade_id', 'side', 'size', 'price', 'product_id', 'time'])
            OR vendor_data['trade_id'] != trade_id, 'vendor_data',
        ifNull(timestamp != parseDateTime64BestEffortOrNull(vendor_data['time'], 6, 'UTC'), 1), 'timestamp',
        is_valid AND (ifNull(price != toDecimal128OrNull(vendor_data['price'], 18), 1)
                      OR ifNull(quantity != toDecimal128OrNull(vendor_data['size'], 18), 1)), 'decimals',
        '') AS problem
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_coinbase'
) WHERE problem != '';

-- check: 5 data quality | quality.coinbase.sequential_ids | fail | no missing Coinbase trade ids between the first and last stored, except gaps the ledger records as unfillable
SELECT sum(greatest(0, missing - unfillable)), arrayStringConcat(groupArray(concat(symbol, ' ', toString(missing))), '; ') FROM
(
    SELECT toString(b.product_id) AS symbol,
           toInt64(max(b.trade_id) - min(b.trade_id) + 1) - toInt64(uniqExact(b.trade_id)) AS missing,
           any(g.unfillable) AS unfillable
    FROM k2.bronze_trades_coinbase AS b
    LEFT JOIN
    (
        SELECT symbol, toInt64(sum(assumeNotNull(to_id) - assumeNotNull(from_id) + 1 - trades_recovered)) AS unfillable
        FROM k2.gaps FINAL WHERE exchange = 'coinbase' AND kind = 'ids' AND state = 'unfillable' GROUP BY symbol
    ) AS g ON g.symbol = toString(b.product_id)
    GROUP BY b.product_id
    HAVING missing > 0
);
