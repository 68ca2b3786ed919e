-- k2 repair: bronze_trades_binance rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_binance; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_binance (event_type, event_time_ms, symbol, trade_id, price, quantity,
    trade_time_ms, is_buyer_maker, is_best_match, received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT vendor_data['e'] AS event_type, toInt64OrZero(vendor_data['E']) AS event_time_ms, vendor_data['s'] AS symbol,
           toUInt64OrZero(vendor_data['t']) AS trade_id, vendor_data['p'] AS price, vendor_data['q'] AS quantity,
           toInt64OrZero(vendor_data['T']) AS trade_time_ms, vendor_data['m'] = 'true' AS is_buyer_maker,
           if(mapContains(vendor_data, 'M'), vendor_data['M'] = 'true', NULL) AS is_best_match,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_binance'
    LIMIT 1 BY symbol, trade_id
)
WHERE (symbol, trade_id) NOT IN (SELECT symbol, trade_id FROM k2.bronze_trades_binance)
