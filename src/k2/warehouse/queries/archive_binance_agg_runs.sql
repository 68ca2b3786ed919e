-- k2 import (Binance aggTrades): the runs of consecutive aggregate ids a symbol already holds
-- around a file's dates; the import leaves them out.
SELECT min(agg_id) AS lo, max(agg_id) AS hi
FROM (
    SELECT agg_id, toInt64(agg_id) - toInt64(row_number() OVER (ORDER BY agg_id)) AS run
    FROM (
        SELECT DISTINCT agg_id FROM k2.bronze_archive_binance_agg_trades
        WHERE symbol = {symbol:String} AND trade_time_us BETWEEN {from_us:Int64} AND {to_us:Int64}
    )
)
GROUP BY run
ORDER BY lo
