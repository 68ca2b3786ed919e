-- k2 repair: bronze_trades_okx rows that silver holds and bronze lost (a damaged part), rebuilt from silver's
-- vendor_data (the native fields as received) and ingestion metadata, into the staging table
-- k2.repair_bronze_trades_okx; k2.warehouse.repair attaches its partitions to bronze (ATTACH PARTITION FROM runs no
-- materialized view, so silver and gold are not counted twice). batch_id says where a row came from.
INSERT INTO k2.repair_bronze_trades_okx (channel, inst_id, trade_id, px, sz, side, ts, count, trade_source, seq_id,
    received_at, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT vendor_data['channel'] AS channel, vendor_data['instId'] AS inst_id, vendor_data['tradeId'] AS trade_id,
           vendor_data['px'] AS px, vendor_data['sz'] AS sz, vendor_data['side'] AS side, vendor_data['ts'] AS ts,
           vendor_data['count'] AS count, vendor_data['source'] AS trade_source,
           if(mapContains(vendor_data, 'seqId'), toInt64OrZero(vendor_data['seqId']), -1) AS seq_id,
           received_at, ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_trades_okx'
    LIMIT 1 BY inst_id, trade_id
)
WHERE (inst_id, trade_id) NOT IN (SELECT inst_id, trade_id FROM k2.bronze_trades_okx)
