-- Where each symbol's stored history ends, per bronze table: the last trade time, and the last id
-- for exchanges whose ids are sequential. The feed starts gap detection from here after a restart.
SELECT toString(symbol), toUnixTimestamp64Micro(max(timestamp)), max(toUInt64OrZero(trade_id))
FROM k2.silver_trades_v2
WHERE bronze_table = {bronze:String}
GROUP BY symbol
