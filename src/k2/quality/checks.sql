-- The checks behind `k2 validate`, in the seed's five sections.
-- Each check is one query returning one row: (problems, detail). problems = 0 passes.
-- Header: `-- check: <section> | <id> | <fail|warn|info> | <title>`; a check whose header ends in
-- `| per-interval` runs once per interval with {view}, {cross_view} and {seconds} bound, one
-- ending in `| per-exchange` once per bronze table with {exchange} and {bronze} bound.
-- An exchange's own checks can also live in checks/NN-<exchange>.sql, read after this file.

-- check: 1 bronze | bronze.any_trades | fail | the warehouse holds trades (an empty or mistyped data dir is no proof of anything)
SELECT b + s = 0, if(b + s = 0, 'no trades in bronze or silver: a new, empty or mistyped data dir?',
                     concat(toString(b), ' bronze rows, ', toString(s), ' silver rows'))
FROM (SELECT (SELECT count() FROM k2.silver_trades_v2) AS s,
             (SELECT sum(total_rows) FROM system.tables WHERE database = currentDatabase() AND name LIKE 'bronze_trades_%') AS b);

-- check: 1 bronze | bronze.rows | info | trades stored in bronze | per-exchange
SELECT 0, concat(toString(count()), ' trades in ', {bronze:String}) FROM k2.{bronze:Identifier};

-- check: 1 bronze | bronze.binance.native_symbols | fail | Binance symbols stay native (BTCUSDT, no separator)
SELECT count(), any(symbol) FROM k2.bronze_trades_binance
WHERE NOT match(symbol, '^[A-Z0-9]+$');

-- check: 1 bronze | bronze.binance.decimal_strings | fail | Binance prices and quantities stay the exchange's decimal strings
SELECT count(), any(concat(price, ' / ', quantity)) FROM k2.bronze_trades_binance
WHERE NOT match(price, '^[0-9]+(\\.[0-9]+)?$') OR NOT match(quantity, '^[0-9]+(\\.[0-9]+)?$');

-- check: 1 bronze | bronze.kraken.native_pairs | fail | Kraken pairs stay native (XBT/USD, not BTC/USD)
SELECT count(), any(pair) FROM k2.bronze_trades_kraken
WHERE NOT match(pair, '^[A-Z0-9.]+/[A-Z0-9.]+$') OR match(pair, '(^|/)(BTC|DOGE)(/|$)');

-- check: 1 bronze | bronze.kraken.timestamp_strings | fail | Kraken timestamps stay "seconds.microseconds" strings
SELECT count(), any(timestamp) FROM k2.bronze_trades_kraken
WHERE NOT match(timestamp, '^[0-9]+\\.[0-9]+$');

-- check: 2 silver | silver.complete | fail | every bronze trade is in silver exactly once | per-exchange
SELECT b != s, concat('bronze ', toString(b), ', silver ', toString(s))
FROM (SELECT (SELECT count() FROM k2.{bronze:Identifier}) AS b,
             (SELECT count() FROM k2.silver_trades_v2
              WHERE exchange = {exchange:String} AND bronze_table = {bronze:String}) AS s);

-- check: 2 silver | silver.no_legacy_codes | fail | canonical symbols use BTC and DOGE, never XBT or XDG
SELECT count(), any(canonical_symbol) FROM k2.silver_trades_v2
WHERE match(canonical_symbol, '(^|/)(XBT|XDG)(/|$)');

-- check: 2 silver | silver.binance.symbol_split | fail | Binance symbols split into base/quote from the instruments table
SELECT count(), any(concat(symbol, ' -> ', canonical_symbol)) FROM k2.silver_trades_v2
WHERE exchange = 'binance' AND (concat(base, quote) != symbol OR canonical_symbol != concat(base, '/', quote));

-- check: 2 silver | silver.kraken.symbol_map | fail | Kraken pairs map XBT->BTC, XDG->DOGE on both sides
SELECT count(), any(concat(symbol, ' -> ', canonical_symbol)) FROM k2.silver_trades_v2
WHERE bronze_table = 'bronze_trades_kraken'
  AND canonical_symbol != arrayStringConcat(arrayMap(a -> transform(a, ['XBT', 'XDG'], ['BTC', 'DOGE'], a),
                                                    splitByChar('/', toString(symbol))), '/');

-- check: 2 silver | silver.taker_side | fail | side is the taker side (Binance m=true -> SELL, Kraken s/sell -> SELL)
SELECT count(), any(concat(exchange, ' ', trade_id)) FROM k2.silver_trades_v2
WHERE (exchange = 'binance' AND bronze_table = 'bronze_trades_binance' AND side != if(vendor_data['m'] = 'true', 'SELL', 'BUY'))
   OR (bronze_table = 'bronze_trades_kraken' AND side != if(vendor_data['side'] = 's', 'SELL', 'BUY'))
   OR (bronze_table = 'bronze_trades_kraken_v2' AND side != if(vendor_data['side'] = 'sell', 'SELL', 'BUY'));

-- check: 2 silver | silver.timestamps | fail | timestamps equal the exchange's, to the microsecond
SELECT count(), any(concat(exchange, ' ', trade_id)) FROM k2.silver_trades_v2
WHERE (exchange = 'binance' AND bronze_table = 'bronze_trades_binance' AND toUnixTimestamp64Milli(timestamp) != toInt64OrZero(vendor_data['T']))
   OR (bronze_table = 'bronze_trades_kraken' AND toUnixTimestamp64Micro(timestamp) !=
        toInt64OrZero(splitByChar('.', vendor_data['raw_timestamp'])[1]) * 1000000
        + toInt64OrZero(substring(rightPad(splitByChar('.', vendor_data['raw_timestamp'])[2], 6, '0'), 1, 6)))
   OR (bronze_table = 'bronze_trades_kraken_v2' AND timestamp != parseDateTime64BestEffort(vendor_data['timestamp'], 6, 'UTC'));

-- check: 2 silver | silver.exact_decimals | fail | price and quantity equal the raw decimal strings exactly
SELECT count(), any(concat(exchange, ' ', trade_id)) FROM k2.silver_trades_v2
WHERE is_valid AND (
      (exchange = 'binance' AND bronze_table = 'bronze_trades_binance' AND (price != toDecimal128(vendor_data['p'], 18) OR quantity != toDecimal128(vendor_data['q'], 18)))
   OR (bronze_table = 'bronze_trades_kraken' AND (price != toDecimal128(vendor_data['price'], 18) OR quantity != toDecimal128(vendor_data['volume'], 18)))
   OR (bronze_table = 'bronze_trades_kraken_v2' AND (price != toDecimal128(vendor_data['price'], 18) OR quantity != toDecimal128(vendor_data['qty'], 18))));

-- check: 2 silver | silver.kraken.trade_ids | fail | Kraken trade ids are KRAKEN-<µs>-<hash8> of the native fields
SELECT count(), any(trade_id) FROM k2.silver_trades_v2
WHERE bronze_table = 'bronze_trades_kraken'
  AND trade_id != concat('KRAKEN-', toString(toUnixTimestamp64Micro(timestamp)), '-',
        lower(hex(substring(MD5(concat(vendor_data['pair'], '|', vendor_data['raw_timestamp'], '|',
            vendor_data['price'], '|', vendor_data['volume'], '|', vendor_data['side'], '|',
            vendor_data['order_type'], '|', vendor_data['misc'],
            if(vendor_data['occurrence'] NOT IN ('', '0'), concat('|', vendor_data['occurrence']), ''))), 1, 4))));

-- check: 2 silver | silver.vendor_data | fail | vendor_data keeps the original native fields
SELECT count(), any(concat(exchange, ' ', trade_id)) FROM k2.silver_trades_v2
WHERE (exchange = 'binance' AND bronze_table = 'bronze_trades_binance' AND NOT hasAll(mapKeys(vendor_data), ['e', 'E', 's', 't', 'p', 'q', 'T', 'm']))
   OR (bronze_table = 'bronze_trades_kraken' AND NOT hasAll(mapKeys(vendor_data), ['pair', 'raw_timestamp', 'price', 'volume', 'side', 'order_type', 'misc', 'channel_id']))
   OR (bronze_table = 'bronze_trades_kraken_v2' AND (NOT hasAll(mapKeys(vendor_data), ['symbol', 'side', 'price', 'qty', 'ord_type', 'trade_id', 'timestamp'])
                                                     OR vendor_data['trade_id'] != trade_id));

-- check: 2 silver | silver.invalid_rows | fail | no silver row failed a validation rule
SELECT count(), arrayStringConcat(groupUniqArray(3)(arrayStringConcat(validation_errors, ',')), '; ')
FROM k2.silver_trades_v2 WHERE NOT is_valid;

-- check: 3 cross-exchange | cross.venues | info | exchanges contributing to each canonical symbol
SELECT 0, arrayStringConcat(groupArray(concat(s, ' [', arrayStringConcat(v, ','), ']')), '; ')
FROM (SELECT toString(canonical_symbol) AS s, arraySort(groupUniqArray(toString(exchange))) AS v
      FROM k2.gold_ohlcv_1h GROUP BY canonical_symbol ORDER BY canonical_symbol);

-- check: 3 cross-exchange | cross.totals | fail | hourly cross-exchange candles add up the per-exchange minute candles (gold's 1h and 1m states agree)
-- The two sides come from different state tables (gold_ohlcv_1h, gold_ohlcv_1m), each fed from
-- silver on its own: summing one table against itself could never differ.
SELECT count(), any(concat(toString(c.canonical_symbol), ' ', toString(c.window_start))) FROM
(SELECT canonical_symbol, window_start, volume, trade_count FROM k2.ohlcv_1h_cross) AS c
FULL OUTER JOIN
(SELECT canonical_symbol, toStartOfHour(window_start) AS window_start, sum(volume) AS volume,
        sum(trade_count) AS trade_count
 FROM k2.ohlcv_1m GROUP BY canonical_symbol, window_start) AS p
USING (canonical_symbol, window_start)
WHERE c.volume != p.volume OR c.trade_count != p.trade_count;

-- check: 3 cross-exchange | cross.price_agreement | warn | venues trading the same pair agree within 5 % (hourly VWAP)
-- The ratio is taken in Float64: Decimal(38, 18) / Decimal(38, 18) overflows above ~170.
SELECT count(), any(concat(toString(canonical_symbol), ' ', toString(window_start), ' ',
                           toString(round((spread - 1) * 100, 1)), ' %')) FROM
(SELECT canonical_symbol, window_start, toFloat64(max(vwap)) / toFloat64(min(vwap)) AS spread
 FROM k2.ohlcv_1h WHERE vwap > 0 GROUP BY canonical_symbol, window_start HAVING count() > 1)
WHERE spread > 1.05;

-- check: 3 cross-exchange | cross.spreads | fail | every 1m cross-venue spread (k2 spreads, spreads_1m) equals a recomputation from silver
-- The view reads the candle states; this side reads silver's trades. Spreads are divided in
-- Decimal256 on both sides (32-gold-spreads.sql), so they must be equal to the last digit.
SELECT count(), any(concat(toString(canonical_symbol), ' ', toString(window_start), ' ', venue_a, '/', venue_b)) FROM
(SELECT canonical_symbol, window_start, venue_a, venue_b, last_a, last_b, vwap_a, vwap_b, trades_a, trades_b,
        last_spread_bps, vwap_spread_bps FROM k2.spreads_1m) AS v
FULL OUTER JOIN
(SELECT a.canonical_symbol AS canonical_symbol, a.window_start AS window_start, a.exchange AS venue_a,
        b.exchange AS venue_b, a.last AS last_a, b.last AS last_b, a.vwap AS vwap_a, b.vwap AS vwap_b,
        a.n AS trades_a, b.n AS trades_b,
        toDecimal128((toDecimal256(b.last, 18) - toDecimal256(a.last, 18)) * 10000 / toDecimal256(a.last, 18), 8)
            AS last_spread_bps,
        toDecimal128((toDecimal256(b.vwap, 18) - toDecimal256(a.vwap, 18)) * 10000 / toDecimal256(a.vwap, 18), 8)
            AS vwap_spread_bps
 FROM (SELECT exchange, canonical_symbol, toStartOfMinute(timestamp)::DateTime('UTC') AS window_start,
              argMax(price, (timestamp, toUInt64(length(trade_id)), trade_id)) AS last,
              toDecimal128(sum(toDecimal256(price, 18) * quantity) / sum(quantity), 18) AS vwap, count() AS n
       FROM k2.silver_trades_v2 WHERE is_valid GROUP BY exchange, canonical_symbol, window_start) AS a
 INNER JOIN
      (SELECT exchange, canonical_symbol, toStartOfMinute(timestamp)::DateTime('UTC') AS window_start,
              argMax(price, (timestamp, toUInt64(length(trade_id)), trade_id)) AS last,
              toDecimal128(sum(toDecimal256(price, 18) * quantity) / sum(quantity), 18) AS vwap, count() AS n
       FROM k2.silver_trades_v2 WHERE is_valid GROUP BY exchange, canonical_symbol, window_start) AS b
 ON a.canonical_symbol = b.canonical_symbol AND a.window_start = b.window_start
 WHERE a.exchange < b.exchange) AS r
USING (canonical_symbol, window_start, venue_a, venue_b)
WHERE v.last_a != r.last_a OR v.last_b != r.last_b OR v.vwap_a != r.vwap_a OR v.vwap_b != r.vwap_b
   OR v.trades_a != r.trades_a OR v.trades_b != r.trades_b OR v.last_spread_bps != r.last_spread_bps
   OR v.vwap_spread_bps != r.vwap_spread_bps;

-- check: 4 gold | gold.per_exchange | fail | every per-exchange candle equals a recomputation from silver | per-interval
SELECT count(), any(concat(toString(exchange), ' ', toString(canonical_symbol), ' ', toString(window_start)))
FROM
(
    SELECT exchange, canonical_symbol, window_start, open_price, high_price, low_price, close_price,
           volume, quote_volume, buy_volume, sell_volume, trade_count, vwap
    FROM k2.{view:Identifier}
) AS g
FULL OUTER JOIN
(
    SELECT exchange, canonical_symbol, window_start,
           argMin(price, (timestamp, toUInt64(length(trade_id)), trade_id)) AS open_price,
           max(price) AS high_price, min(price) AS low_price,
           argMax(price, (timestamp, toUInt64(length(trade_id)), trade_id)) AS close_price,
           sum(quantity) AS volume, sum(toDecimal256(price, 18) * quantity) AS quote_volume,
           sumIf(quantity, side = 'BUY') AS buy_volume, sumIf(quantity, side = 'SELL') AS sell_volume,
           count() AS trade_count, toDecimal128(quote_volume / volume, 18) AS vwap
    FROM (SELECT exchange, canonical_symbol, toStartOfInterval(timestamp, INTERVAL {seconds:UInt32} SECOND)::DateTime('UTC') AS window_start,
                 price, quantity, side, timestamp, trade_id
          FROM k2.silver_trades_v2 WHERE is_valid)
    GROUP BY exchange, canonical_symbol, window_start
) AS r
USING (exchange, canonical_symbol, window_start)
WHERE g.open_price != r.open_price OR g.high_price != r.high_price OR g.low_price != r.low_price
   OR g.close_price != r.close_price OR g.volume != r.volume OR g.quote_volume != r.quote_volume
   OR g.buy_volume != r.buy_volume OR g.sell_volume != r.sell_volume OR g.trade_count != r.trade_count
   OR g.vwap != r.vwap;

-- check: 4 gold | gold.cross_exchange | fail | every cross-exchange candle equals a recomputation from silver | per-interval
SELECT count(), any(concat(toString(canonical_symbol), ' ', toString(window_start)))
FROM
(
    SELECT canonical_symbol, window_start, open_price, high_price, low_price, close_price,
           volume, quote_volume, trade_count
    FROM k2.{cross_view:Identifier}
) AS g
FULL OUTER JOIN
(
    SELECT canonical_symbol, window_start,
           argMin(price, (timestamp, toUInt64(length(trade_id)), trade_id)) AS open_price,
           max(price) AS high_price, min(price) AS low_price,
           argMax(price, (timestamp, toUInt64(length(trade_id)), trade_id)) AS close_price,
           sum(quantity) AS volume, sum(toDecimal256(price, 18) * quantity) AS quote_volume,
           count() AS trade_count
    FROM (SELECT canonical_symbol, toStartOfInterval(timestamp, INTERVAL {seconds:UInt32} SECOND)::DateTime('UTC') AS window_start,
                 price, quantity, timestamp, trade_id
          FROM k2.silver_trades_v2 WHERE is_valid)
    GROUP BY canonical_symbol, window_start
) AS r
USING (canonical_symbol, window_start)
WHERE g.open_price != r.open_price OR g.high_price != r.high_price OR g.low_price != r.low_price
   OR g.close_price != r.close_price OR g.volume != r.volume OR g.quote_volume != r.quote_volume
   OR g.trade_count != r.trade_count;

-- check: 5 data quality | quality.positive | fail | no zero, negative or missing price or quantity
SELECT count(), any(concat(exchange, ' ', trade_id)) FROM k2.silver_trades_v2
WHERE price <= 0 OR quantity <= 0;

-- check: 5 data quality | quality.no_future | fail | no trade time later than its ingestion (1 minute of clock skew allowed)
SELECT count(), any(concat(exchange, ' ', trade_id)) FROM k2.silver_trades_v2
WHERE timestamp > ingestion_timestamp + INTERVAL 1 MINUTE;

-- check: 5 data quality | quality.unique_trade_ids | fail | no trade id appears twice for one exchange and symbol
SELECT sum(n - u), any(concat(e, ' ', s)) FROM
(SELECT toString(exchange) AS e, toString(symbol) AS s, count() AS n, uniqExact(trade_id) AS u
 FROM k2.silver_trades_v2 GROUP BY exchange, symbol HAVING n != u);

-- check: 5 data quality | quality.sequential_ids | fail | no missing Binance trade ids between the first and last stored, except gaps the ledger records as unfillable
SELECT sum(greatest(0, missing - unfillable)), arrayStringConcat(groupArray(concat(symbol, ' ', toString(missing))), '; ') FROM
(
    SELECT toString(b.symbol) AS symbol,
           toInt64(max(b.trade_id) - min(b.trade_id) + 1) - toInt64(uniqExact(b.trade_id)) AS missing,
           any(g.unfillable) AS unfillable
    FROM k2.bronze_trades_binance AS b
    LEFT JOIN
    (
        SELECT symbol, toInt64(sum(assumeNotNull(to_id) - assumeNotNull(from_id) + 1 - trades_recovered)) AS unfillable
        FROM k2.gaps FINAL WHERE exchange = 'binance' AND kind = 'ids' AND state = 'unfillable' GROUP BY symbol
    ) AS g ON g.symbol = toString(b.symbol)
    GROUP BY b.symbol
    HAVING missing > 0
);

-- check: 5 data quality | quality.gaps | warn | every gap the feed found was filled by backfill
SELECT countIf(state != 'filled'),
       arrayStringConcat(groupArrayIf(3)(concat(exchange, ' ', symbol, ' ', toString(state), ' ', detail), state != 'filled'), '; ')
FROM k2.gaps FINAL;

-- check: 5 data quality | quality.latency | info | live ingest latency (ingested_at - exchange time), p50 / p99
SELECT 0, if(count() = 0, 'no live trades',
             concat('p50 ', toString(round(quantileExact(0.5)(lat), 1)), ' ms, p99 ',
                    toString(round(quantileExact(0.99)(lat), 1)), ' ms over ', toString(count()), ' trades'))
FROM (SELECT (toUnixTimestamp64Micro(ingestion_timestamp) - toUnixTimestamp64Micro(timestamp)) / 1000 AS lat
      FROM k2.silver_trades_v2 WHERE source IN ('ws', 'kafka'));
