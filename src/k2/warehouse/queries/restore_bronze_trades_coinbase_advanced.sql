-- k2 repair: bronze_trades_coinbase_advanced rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_coinbase_advanced; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_coinbase_advanced (product_id, trade_id, price, size, side, time, event_type,
    sequence_num, envelope_timestamp, received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT vendor_data['product_id'] AS product_id, vendor_data['trade_id'] AS trade_id, vendor_data['price'] AS price,
           vendor_data['size'] AS size, vendor_data['side'] AS side, vendor_data['time'] AS time,
           vendor_data['type'] AS event_type, toUInt64OrZero(vendor_data['sequence_num']) AS sequence_num,
           vendor_data['timestamp'] AS envelope_timestamp,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_coinbase_advanced'
    LIMIT 1 BY product_id, trade_id
)
WHERE (product_id, trade_id) NOT IN (SELECT product_id, trade_id FROM k2.bronze_trades_coinbase_advanced)
