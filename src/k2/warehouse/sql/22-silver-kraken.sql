-- Silver view for Kraken (WebSocket v1): bronze_trades_kraken -> silver_trades_v2.
--
-- The inner SELECT gives the bronze columns the seed's vendor_data names (raw_timestamp, ...)
-- so the outer SELECT can produce `timestamp`, `side`, `price` without an alias shadowing a
-- source column.
--   canonical_symbol : split "XBT/USD" on '/', then XBT -> BTC and XDG -> DOGE on BOTH sides
--                      (ADA/XBT -> ADA/BTC)
--   timestamp        : "seconds.microseconds" -> DateTime64(6) with integer arithmetic (no float)
--   trade_id         : Kraken v1 has none; KRAKEN-<µs>-<hash8>, hash8 = first 8 hex digits of the
--                      MD5 of the native fields, so the same trade always gets the same id
--   side             : b/s is already the taker side
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_kraken_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'kraken'                                                            AS exchange,
    pair                                                                AS symbol,
    if(base_asset = '' OR quote_asset = '', pair, concat(base_asset, '/', quote_asset)) AS canonical_symbol,
    base_asset                                                          AS base,
    quote_asset                                                         AS quote,
    quote_asset                                                         AS currency,
    concat('KRAKEN-', toString(ts_us), '-',
           lower(hex(substring(MD5(concat(pair, '|', raw_timestamp, '|', raw_price, '|', raw_volume, '|',
                                          raw_side, '|', raw_order_type, '|', misc,
                                          if(occurrence > 0, concat('|', toString(occurrence)), ''))),
                               1, 4))))                                 AS trade_id,
    ifNull(toDecimal128OrNull(raw_price, 18), toDecimal128(0, 18))      AS price,
    ifNull(toDecimal128OrNull(raw_volume, 18), toDecimal128(0, 18))     AS quantity,
    if(raw_side = 'b', 'BUY', 'SELL')                                   AS side,
    fromUnixTimestamp64Micro(ts_us, 'UTC')                              AS timestamp,
    received                                                            AS received_at,
    ingested                                                            AS ingestion_timestamp,
    src                                                                 AS source,
    'bronze_trades_kraken' AS bronze_table,
    map('pair', pair, 'raw_timestamp', raw_timestamp, 'price', raw_price, 'volume', raw_volume,
        'side', raw_side, 'order_type', raw_order_type, 'misc', misc,
        'channel_id', toString(channel_id), 'occurrence', toString(occurrence)) AS vendor_data,
    arrayFilter(x -> x != '', [
        if(toDecimal128OrNull(raw_price, 18) IS NULL, 'price_not_decimal',
           if(toDecimal128OrNull(raw_price, 18) <= 0, 'price_not_positive', '')),
        if(position(raw_price, '.') > 0 AND length(raw_price) - position(raw_price, '.') > 18, 'price_beyond_18_decimals', ''),
        if(toDecimal128OrNull(raw_volume, 18) IS NULL, 'quantity_not_decimal',
           if(toDecimal128OrNull(raw_volume, 18) <= 0, 'quantity_not_positive', '')),
        if(position(raw_volume, '.') > 0 AND length(raw_volume) - position(raw_volume, '.') > 18, 'quantity_beyond_18_decimals', ''),
        if(toDecimal256OrZero(raw_price, 18) * toDecimal256OrZero(raw_volume, 18) >= toDecimal256('100000000000000', 18),
           'notional_out_of_range', ''),
        if(base_asset = '' OR quote_asset = '', 'unknown_instrument', ''),
        if(NOT match(raw_timestamp, '^[0-9]{1,12}(\\.[0-9]{1,9})?$'), 'timestamp_not_seconds', ''),
        if(ts_us > toUnixTimestamp64Micro(ingested) + 60000000, 'timestamp_in_future', ''),
        if(ts_us < 1230768000000000, 'timestamp_before_2009', '')
    ])                                                                  AS validation_errors,
    empty(validation_errors)                                            AS is_valid
FROM
(
    SELECT
        channel_id, pair, price AS raw_price, volume AS raw_volume, timestamp AS raw_timestamp,
        toString(side) AS raw_side, toString(order_type) AS raw_order_type, misc, occurrence,
        received_at AS received, ingested_at AS ingested, source AS src,
        transform(splitByChar('/', pair)[1], ['XBT', 'XDG'], ['BTC', 'DOGE'], splitByChar('/', pair)[1]) AS base_asset,
        if(length(splitByChar('/', pair)) = 2,
           transform(splitByChar('/', pair)[2], ['XBT', 'XDG'], ['BTC', 'DOGE'], splitByChar('/', pair)[2]),
           '')                                                          AS quote_asset,
        toInt64OrZero(splitByChar('.', timestamp)[1]) * 1000000
          + toInt64OrZero(substring(rightPad(if(length(splitByChar('.', timestamp)) > 1,
                                                splitByChar('.', timestamp)[2], ''), 6, '0'), 1, 6)) AS ts_us
    FROM k2.bronze_trades_kraken
);
