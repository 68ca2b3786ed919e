-- Bitfinex (bronze_trades_bitfinex): checks besides ../checks.sql.

-- check: 1 bronze | bronze.bitfinex.native | fail | Bitfinex trades stay native (tBTCUSD / tDOGE:USD, signed AMOUNT and PRICE as the exchange's number text)
SELECT count(), any(concat(toString(symbol), ' ', toString(id))) FROM k2.bronze_trades_bitfinex
WHERE NOT match(toString(symbol), '^t([A-Z0-9]{6}|[A-Z0-9]+:[A-Z0-9]+)$')
   OR NOT match(amount, '^-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$')
   OR NOT match(price, '^[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?$');

-- check: 2 silver | silver.bitfinex.normalized | fail | Bitfinex: tBTCUSD -> BTC/USD and UST -> USDT (tBTCUST -> BTC/USDT), taker side from the sign of AMOUNT, size |AMOUNT|, time and decimals exact
SELECT count(), any(concat(toString(symbol), ' ', trade_id, ': ', problem)) FROM
(
    SELECT symbol, trade_id, multiIf(
        canonical_symbol != concat(base, '/', quote)
            OR match(canonical_symbol, '(^|/)(UST|UDC|TSD|EUT|DSH|IOT|QTM|ALG|MNA|ATO|DAT|STJ|WBT)(/|$)')
            OR (canonical_symbol != arrayStringConcat(arrayMap(c -> transform(c,
                    ['UST', 'UDC', 'TSD', 'EUT', 'DSH', 'IOT', 'QTM', 'ALG', 'MNA', 'ATO', 'DAT', 'STJ', 'WBT'],
                    ['USDT', 'USDC', 'TUSD', 'EURT', 'DASH', 'IOTA', 'QTUM', 'ALGO', 'MANA', 'ATOM', 'DATA', 'STORJ', 'WBTC'], c),
                    if(position(toString(symbol), ':') > 0, splitByChar(':', substring(toString(symbol), 2)),
                       [substring(toString(symbol), 2, 3), substring(toString(symbol), 5, 3)])), '/')
                AND (toString(symbol), base, quote) NOT IN
                    (SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = 'bitfinex')), 'symbol',
        side != if(startsWith(vendor_data['AMOUNT'], '-'), 'SELL', 'BUY'), 'side',
        NOT hasAll(mapKeys(vendor_data), ['ID', 'MTS', 'AMOUNT', 'PRICE', 'symbol']) OR vendor_data['ID'] != trade_id, 'vendor_data',
        toUnixTimestamp64Milli(timestamp) != toInt64OrZero(vendor_data['MTS'])
            OR toUnixTimestamp64Micro(timestamp) % 1000 != 0, 'timestamp',
        is_valid AND (ifNull(price != toDecimal128OrNull(vendor_data['PRICE'], 18), 1)
                      OR ifNull(quantity != abs(toDecimal128OrNull(vendor_data['AMOUNT'], 18)), 1)), 'decimals',
        '') AS problem
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_bitfinex' AND base != ''
) WHERE problem != '';
