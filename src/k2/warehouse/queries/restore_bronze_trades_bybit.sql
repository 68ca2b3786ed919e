-- k2 repair: bronze_trades_bybit rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_bybit; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_bybit (topic, message_type, message_ts_ms, exec_id, trade_time_ms, price, size,
    side, symbol, is_block_trade, is_rpi, seq, received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT vendor_data['topic'] AS topic, vendor_data['type'] AS message_type,
           toInt64OrZero(vendor_data['ts']) AS message_ts_ms, vendor_data['i'] AS exec_id,
           toInt64OrZero(vendor_data['T']) AS trade_time_ms, vendor_data['p'] AS price, vendor_data['v'] AS size,
           vendor_data['S'] AS side, vendor_data['s'] AS symbol, vendor_data['BT'] = 'true' AS is_block_trade,
           if(mapContains(vendor_data, 'RPI'), vendor_data['RPI'] = 'true', NULL) AS is_rpi,
           if(mapContains(vendor_data, 'seq'), toInt64OrZero(vendor_data['seq']), -1) AS seq,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_bybit'
    LIMIT 1 BY symbol, exec_id
)
WHERE (symbol, exec_id) NOT IN (SELECT symbol, exec_id FROM k2.bronze_trades_bybit)
