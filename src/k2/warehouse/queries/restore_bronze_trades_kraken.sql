-- k2 repair: bronze_trades_kraken rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_kraken; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_kraken (channel_id, pair, price, volume, timestamp, side, order_type, misc,
    occurrence, received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT toUInt64OrZero(vendor_data['channel_id']) AS channel_id, vendor_data['pair'] AS pair,
           vendor_data['price'] AS price, vendor_data['volume'] AS volume, vendor_data['raw_timestamp'] AS timestamp,
           vendor_data['side'] AS side, vendor_data['order_type'] AS order_type, vendor_data['misc'] AS misc,
           toUInt16OrZero(vendor_data['occurrence']) AS occurrence,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_kraken'
    LIMIT 1 BY pair, timestamp, price, volume, side, order_type, misc, occurrence
)
WHERE (pair, timestamp, price, volume, side, order_type, misc, occurrence) NOT IN
      (SELECT pair, timestamp, price, volume, toString(side), toString(order_type), misc, occurrence
       FROM k2.bronze_trades_kraken)
