-- Silver view for Coinbase Advanced Trade: bronze_trades_coinbase_advanced -> silver_trades_v2
-- (exchange 'coinbase', like the Exchange feed; bronze_table tells them apart).
--
-- Same rules as 24-silver-coinbase.sql except the side: Advanced Trade's BUY/SELL is taken as the
-- TAKER side as sent (Coinbase's docs do not say; cryptofeed, ccxt and nautilus read it so --
-- UNCONFIRMED), so it is not inverted. trade_id is the numeric string as sent.
--   vendor_data : the trade's fields plus the envelope's `type` (events[].type), `sequence_num` and
--                 `timestamp`; REST rows have no envelope.
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_coinbase_advanced_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'coinbase'                                                          AS exchange,
    b.product                                                           AS symbol,
    if(b.base_asset = '' OR b.quote_asset = '', b.product, concat(b.base_asset, '/', b.quote_asset)) AS canonical_symbol,
    b.base_asset                                                        AS base,
    b.quote_asset                                                       AS quote,
    b.quote_asset                                                       AS currency,
    b.tid                                                               AS trade_id,
    ifNull(toDecimal128OrNull(b.raw_price, 18), toDecimal128(0, 18))    AS price,
    ifNull(toDecimal128OrNull(b.raw_size, 18), toDecimal128(0, 18))     AS quantity,
    if(b.raw_side = 'BUY', 'BUY', 'SELL')                               AS side,
    ifNull(b.ts, toDateTime64(0, 6, 'UTC'))                             AS timestamp,
    b.received                                                          AS received_at,
    b.ingested                                                          AS ingestion_timestamp,
    b.src                                                               AS source,
    'bronze_trades_coinbase_advanced'                                   AS bronze_table,
    mapFilter((k, v) -> v != '',
        map('trade_id', b.tid, 'product_id', b.product, 'price', b.raw_price, 'size', b.raw_size,
            'side', b.raw_side, 'time', b.raw_time, 'type', b.event_type,
            'sequence_num', if(b.event_type = '', '', toString(b.seq_num)), 'timestamp', b.envelope_ts)) AS vendor_data,
    arrayFilter(x -> x != '', [
        if(toDecimal128OrNull(b.raw_price, 18) IS NULL, 'price_not_decimal',
           if(toDecimal128OrNull(b.raw_price, 18) <= 0, 'price_not_positive', '')),
        if(position(b.raw_price, '.') > 0 AND length(b.raw_price) - position(b.raw_price, '.') > 18, 'price_beyond_18_decimals', ''),
        if(toDecimal128OrNull(b.raw_size, 18) IS NULL, 'quantity_not_decimal',
           if(toDecimal128OrNull(b.raw_size, 18) <= 0, 'quantity_not_positive', '')),
        if(position(b.raw_size, '.') > 0 AND length(b.raw_size) - position(b.raw_size, '.') > 18, 'quantity_beyond_18_decimals', ''),
        if(toDecimal256OrZero(b.raw_price, 18) * toDecimal256OrZero(b.raw_size, 18) >= toDecimal256('100000000000000', 18),
           'notional_out_of_range', ''),
        if(b.base_asset = '' OR b.quote_asset = '', 'unknown_instrument', ''),
        if(b.ts IS NULL, 'timestamp_not_rfc3339', ''),
        if(b.ts > b.ingested + INTERVAL 1 MINUTE, 'timestamp_in_future', ''),
        if(b.ts < toDateTime64('2009-01-01 00:00:00', 6, 'UTC'), 'timestamp_before_2009', '')
    ])                                                                  AS validation_errors,
    empty(validation_errors)                                            AS is_valid
FROM
(
    SELECT
        r.product, r.tid, r.raw_price, r.raw_size, r.raw_side, r.raw_time, r.event_type, r.seq_num, r.envelope_ts,
        r.received, r.ingested, r.src, r.ts,
        if(i.base != '', i.base, if(length(r.parts) = 2, r.parts[1], ''))  AS base_asset,
        if(i.base != '', i.quote, if(length(r.parts) = 2, r.parts[2], '')) AS quote_asset
    FROM
    (
        SELECT product_id AS product, trade_id AS tid, price AS raw_price, size AS raw_size,
               toString(side) AS raw_side, time AS raw_time, event_type, sequence_num AS seq_num,
               envelope_timestamp AS envelope_ts, received_at AS received, ingested_at AS ingested, source AS src,
               parseDateTime64BestEffortOrNull(time, 6, 'UTC') AS ts,
               arrayFilter(x -> x != '', splitByChar('-', toString(product_id))) AS parts
        FROM k2.bronze_trades_coinbase_advanced
    ) AS r
    LEFT JOIN
    (
        SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = 'coinbase'
    ) AS i ON i.native_symbol = r.product
) AS b;
