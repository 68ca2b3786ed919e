-- k2 coverage: holes in the trade ids of venues that number trades consecutively per symbol
-- (Binance, Coinbase): every pair of neighbouring stored ids more than one apart, with the times
-- of the trades either side. Read a day either side of the range so edge holes are seen.
SELECT exchange, symbol, prev_id + 1 AS from_id, id - 1 AS to_id,
       toString(toDate(prev_ts)) AS after_day, toString(toDate(ts)) AS before_day,
       formatDateTime(prev_ts, '%Y-%m-%dT%H:%i:%S.%fZ') AS after_time,
       formatDateTime(ts, '%Y-%m-%dT%H:%i:%S.%fZ') AS before_time
FROM (
    SELECT exchange, symbol, toUInt64(trade_id) AS id, timestamp AS ts,
           lagInFrame(toUInt64(trade_id), 1, toUInt64(0)) OVER w AS prev_id,
           lagInFrame(timestamp, 1, timestamp) OVER w AS prev_ts
    FROM k2.silver_trades_v2
    WHERE exchange IN {exchanges:Array(String)}
      AND ({symbol:String} = '' OR symbol = {symbol:String} OR canonical_symbol = {symbol:String})
      AND timestamp >= {since:DateTime64(6, 'UTC')} - INTERVAL 1 DAY
      AND timestamp < {until:DateTime64(6, 'UTC')} + INTERVAL 1 DAY
      AND toUInt64OrNull(trade_id) IS NOT NULL
    WINDOW w AS (PARTITION BY exchange, symbol ORDER BY toUInt64(trade_id) ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
)
WHERE prev_id != 0 AND id > prev_id + 1
ORDER BY exchange, symbol, from_id
