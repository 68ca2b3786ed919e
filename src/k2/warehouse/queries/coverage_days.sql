-- k2 coverage: per exchange, native symbol and UTC day, what silver holds and where it came from.
-- For venues that number trades consecutively per symbol ({consecutive}: Binance, Coinbase), a
-- day is proven complete when its ids form one run (as many distinct ids as max - min + 1) that
-- joins the previous stored day's last id and the next stored day's first id. The days are read
-- over the whole history (one aggregation) so a range's edge days see their neighbours.
SELECT exchange, symbol, toString(d) AS day, trades, distinct_ids, sources, first_trade, last_trade,
       min_id, max_id, prev_max, next_min,
       has({consecutive:Array(String)}, exchange) AS consecutive,
       consecutive AND trades = distinct_ids AND distinct_ids = max_id - min_id + 1
           AND prev_max != 0 AND prev_max + 1 = min_id AND next_min != 0 AND next_min = max_id + 1 AS proven
FROM (
    SELECT exchange, symbol, d, trades, distinct_ids, sources, first_trade, last_trade, min_id, max_id,
           lagInFrame(max_id, 1, toUInt64(0)) OVER w AS prev_max,
           leadInFrame(min_id, 1, toUInt64(0)) OVER w AS next_min
    FROM (
        SELECT exchange, symbol, toDate(timestamp) AS d, count() AS trades, uniqExact(trade_id) AS distinct_ids,
               arrayStringConcat(arraySort(groupUniqArray(toString(source))), ',') AS sources,
               formatDateTime(min(timestamp), '%H:%i:%S.%f') AS first_trade,
               formatDateTime(max(timestamp), '%H:%i:%S.%f') AS last_trade,
               min(toUInt64OrZero(trade_id)) AS min_id, max(toUInt64OrZero(trade_id)) AS max_id
        FROM k2.silver_trades_v2
        WHERE ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
          AND ({symbol:String} = '' OR symbol = {symbol:String} OR canonical_symbol = {symbol:String})
        GROUP BY exchange, symbol, d
    )
    WINDOW w AS (PARTITION BY exchange, symbol ORDER BY d ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING)
)
WHERE toDateTime64(d, 6, 'UTC') < {until:DateTime64(6, 'UTC')}
  AND toDateTime64(d, 6, 'UTC') + INTERVAL 1 DAY > {since:DateTime64(6, 'UTC')}
ORDER BY exchange, symbol, d
