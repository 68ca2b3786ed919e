-- k2 import (Binance trades): the runs of consecutive trade ids a symbol already holds around a
-- file's dates, in the archive table and in the live/REST bronze table (the same ids). The
-- import leaves them out, so a trade is written once whichever way it came first.
SELECT min(id) AS lo, max(id) AS hi
FROM (
    SELECT id, toInt64(id) - toInt64(row_number() OVER (ORDER BY id)) AS run
    FROM (
        SELECT id FROM k2.bronze_archive_binance_trades
        WHERE symbol = {symbol:String} AND trade_time_us BETWEEN {from_us:Int64} AND {to_us:Int64}
        UNION DISTINCT
        SELECT trade_id AS id FROM k2.bronze_trades_binance
        WHERE symbol = {symbol:String} AND trade_time_ms BETWEEN intDiv({from_us:Int64}, 1000) AND intDiv({to_us:Int64}, 1000)
    )
)
GROUP BY run
ORDER BY lo
