-- k2 repair: bronze_archive_binance_trades rows (k2 import of Binance's trades files) that silver holds and bronze
-- lost (a damaged part), rebuilt from silver's vendor_data (the file's own columns, file name and line) and ingestion
-- metadata into the staging table k2.repair_bronze_archive_binance_trades; k2.warehouse.repair attaches its
-- partitions to bronze (no materialized view runs, so silver and gold are not counted twice).
INSERT INTO k2.repair_bronze_archive_binance_trades (symbol, id, price, qty, quote_qty, time, time_unit,
    is_buyer_maker, is_best_match, archive_file, line_no, ingested_at, source, batch_id)
SELECT * FROM (
    SELECT symbol, toUInt64OrZero(vendor_data['id']) AS id, vendor_data['price'] AS price, vendor_data['qty'] AS qty,
           vendor_data['quoteQty'] AS quote_qty, toInt64OrZero(vendor_data['time']) AS time,
           CAST(vendor_data['time_unit'], 'Enum8(\'ms\' = 1, \'us\' = 2)') AS time_unit,
           vendor_data['isBuyerMaker'] = 'True' AS is_buyer_maker,
           if(vendor_data['isBestMatch'] = '', NULL, vendor_data['isBestMatch'] = 'True') AS is_best_match,
           vendor_data['file'] AS archive_file, toUInt64OrZero(vendor_data['line']) AS line_no,
           ingestion_timestamp AS ingested_at, source, 'repair:from-silver' AS batch_id
    FROM k2.silver_trades_v2 WHERE bronze_table = 'bronze_archive_binance_trades'
    LIMIT 1 BY symbol, id
)
WHERE (symbol, id) NOT IN (SELECT symbol, id FROM k2.bronze_archive_binance_trades)
