-- k2 repair: bronze_trades_kraken_v2 rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_kraken_v2; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_kraken_v2 (symbol, side, price, qty, ord_type, trade_id, timestamp, is_snapshot,
    received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT vendor_data['symbol'] AS symbol, vendor_data['side'] AS side, vendor_data['price'] AS price,
           vendor_data['qty'] AS qty, vendor_data['ord_type'] AS ord_type, toUInt64OrZero(vendor_data['trade_id']) AS trade_id,
           vendor_data['timestamp'] AS timestamp, vendor_data['is_snapshot'] = 'true' AS is_snapshot,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_kraken_v2'
    LIMIT 1 BY symbol, trade_id
)
WHERE (symbol, trade_id) NOT IN (SELECT symbol, trade_id FROM k2.bronze_trades_kraken_v2)
