-- Silver view for Gemini (v2 trades): bronze_trades_gemini -> silver_trades_v2.
--
-- The inner SELECT renames bronze columns (raw_price, raw_side, ts_ms...) so no output alias shadows a
-- source column.
--   symbol split : from k2.instruments, never guessed in SQL: BTCUSD -> BTC/USD, BTCUSDT -> BTC/USDT,
--                  BTCGUSD -> BTC/GUSD (the built-in list, refreshed from GET /v1/symbols)
--   side         : already the TAKER side
--   timestamp    : `timestamp` (ms) -> DateTime64(6)
--   trade_id     : tid (the event_id for a trade event that carried no tid: id_field = 'event_id')
--   vendor_data  : the trade's fields under Gemini's names, only those sent (event_id: REST has none;
--                  tid: a trade named by its event_id had none)
-- Recreated when the schema changes (the DROP runs only then): a view's query cannot be altered.
DROP VIEW IF EXISTS k2.bronze_gemini_to_silver_v2_mv;
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_gemini_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'gemini'                                                            AS exchange,
    b.raw_symbol                                                        AS symbol,
    if(i.base = '', b.raw_symbol, concat(i.base, '/', i.quote))         AS canonical_symbol,
    i.base                                                              AS base,
    i.quote                                                             AS quote,
    i.quote                                                             AS currency,
    toString(b.tid)                                                     AS trade_id,
    ifNull(toDecimal128OrNull(b.raw_price, 18), toDecimal128(0, 18))    AS price,
    ifNull(toDecimal128OrNull(b.raw_quantity, 18), toDecimal128(0, 18)) AS quantity,
    if(b.raw_side = 'buy', 'BUY', 'SELL')                               AS side,
    fromUnixTimestamp64Milli(b.ts_ms, 'UTC')::DateTime64(6, 'UTC')      AS timestamp,
    b.received                                                          AS received_at,
    b.ingested                                                          AS ingestion_timestamp,
    b.src                                                               AS source,
    'bronze_trades_gemini'                                              AS bronze_table,
    mapFilter((k, v) -> v != '',
        map('symbol', b.raw_symbol, 'event_id', if(b.event_id = 0, '', toString(b.event_id)),
            'timestamp', toString(b.ts_ms), 'price', b.raw_price, 'quantity', b.raw_quantity, 'side', b.raw_side,
            'tid', if(b.named_by = 'event_id', '', toString(b.tid)),
            'is_snapshot', if(b.snapshot, 'true', 'false'))) AS vendor_data,
    arrayFilter(x -> x != '', [
        if(toDecimal128OrNull(b.raw_price, 18) IS NULL, 'price_not_decimal',
           if(toDecimal128OrNull(b.raw_price, 18) <= 0, 'price_not_positive', '')),
        if(position(b.raw_price, '.') > 0 AND length(b.raw_price) - position(b.raw_price, '.') > 18, 'price_beyond_18_decimals', ''),
        if(toDecimal128OrNull(b.raw_quantity, 18) IS NULL, 'quantity_not_decimal',
           if(toDecimal128OrNull(b.raw_quantity, 18) <= 0, 'quantity_not_positive', '')),
        if(position(b.raw_quantity, '.') > 0 AND length(b.raw_quantity) - position(b.raw_quantity, '.') > 18,
           'quantity_beyond_18_decimals', ''),
        if(toDecimal256OrZero(b.raw_price, 18) * toDecimal256OrZero(b.raw_quantity, 18) >= toDecimal256('100000000000000', 18),
           'notional_out_of_range', ''),
        if(i.base = '', 'unknown_instrument', ''),
        if(b.ts_ms > toUnixTimestamp64Milli(b.ingested) + 60000, 'timestamp_in_future', ''),
        if(b.ts_ms < 1230768000000, 'timestamp_before_2009', '')
    ])                                                                  AS validation_errors,
    empty(validation_errors)                                            AS is_valid
FROM
(
    SELECT symbol AS raw_symbol, event_id, timestamp AS ts_ms, price AS raw_price, quantity AS raw_quantity,
           toString(side) AS raw_side, tid, is_snapshot AS snapshot, id_field AS named_by,
           received_at AS received, ingested_at AS ingested, source AS src
    FROM k2.bronze_trades_gemini
) AS b
LEFT JOIN
(
    SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = 'gemini'
) AS i ON i.native_symbol = b.raw_symbol;
