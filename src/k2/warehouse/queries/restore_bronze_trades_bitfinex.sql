-- k2 repair: bronze_trades_bitfinex rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_bitfinex; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_bitfinex (chan_id, symbol, msg_type, id, mts, amount, price,
    received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT toUInt64OrZero(vendor_data['chanId']) AS chan_id, vendor_data['symbol'] AS symbol,
           vendor_data['msg_type'] AS msg_type, toUInt64OrZero(vendor_data['ID']) AS id, toInt64OrZero(vendor_data['MTS']) AS mts,
           vendor_data['AMOUNT'] AS amount, vendor_data['PRICE'] AS price,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_bitfinex'
    LIMIT 1 BY symbol, id
)
WHERE (symbol, id) NOT IN (SELECT symbol, id FROM k2.bronze_trades_bitfinex)
