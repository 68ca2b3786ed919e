-- k2 repair: bronze_trades_gemini rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_gemini; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_gemini (symbol, event_id, timestamp, price, quantity, side, tid, is_snapshot,
    received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT vendor_data['symbol'] AS symbol, toUInt64OrZero(vendor_data['event_id']) AS event_id,
           toInt64OrZero(vendor_data['timestamp']) AS timestamp, vendor_data['price'] AS price,
           vendor_data['quantity'] AS quantity, vendor_data['side'] AS side, toUInt64OrZero(vendor_data['tid']) AS tid,
           vendor_data['is_snapshot'] = 'true' AS is_snapshot,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_gemini'
    LIMIT 1 BY symbol, tid
)
WHERE (symbol, tid) NOT IN (SELECT symbol, tid FROM k2.bronze_trades_gemini)
