-- Silver view for Kraken WebSocket v2: bronze_trades_kraken_v2 -> silver_trades_v2 (exchange 'kraken').
--
-- v2 already writes BTC and DOGE; the XBT/XDG map is applied anyway, on both sides, so the rule
-- is the same as v1's. trade_id is Kraken's own sequence number; timestamp is RFC 3339 parsed to
-- the microsecond; side and ord_type are the taker's. The inner SELECT renames columns so no
-- output alias shadows a source column.
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_kraken_v2_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'kraken'                                                            AS exchange,
    raw_symbol                                                          AS symbol,
    if(base_asset = '' OR quote_asset = '', raw_symbol, concat(base_asset, '/', quote_asset)) AS canonical_symbol,
    base_asset                                                          AS base,
    quote_asset                                                         AS quote,
    quote_asset                                                         AS currency,
    toString(raw_trade_id)                                              AS trade_id,
    ifNull(toDecimal128OrNull(raw_price, 18), toDecimal128(0, 18))      AS price,
    ifNull(toDecimal128OrNull(raw_qty, 18), toDecimal128(0, 18))        AS quantity,
    if(raw_side = 'buy', 'BUY', 'SELL')                                 AS side,
    ifNull(ts, toDateTime64(0, 6, 'UTC'))                               AS timestamp,
    received                                                            AS received_at,
    ingested                                                            AS ingestion_timestamp,
    src                                                                 AS source,
    'bronze_trades_kraken_v2'                                           AS bronze_table,
    map('symbol', raw_symbol, 'side', raw_side, 'price', raw_price, 'qty', raw_qty,
        'ord_type', raw_ord_type, 'trade_id', toString(raw_trade_id), 'timestamp', raw_timestamp,
        'is_snapshot', if(snapshot, 'true', 'false'))                   AS vendor_data,
    arrayFilter(x -> x != '', [
        if(toDecimal128OrNull(raw_price, 18) IS NULL, 'price_not_decimal',
           if(toDecimal128OrNull(raw_price, 18) <= 0, 'price_not_positive', '')),
        if(toDecimal128OrNull(raw_qty, 18) IS NULL, 'quantity_not_decimal',
           if(toDecimal128OrNull(raw_qty, 18) <= 0, 'quantity_not_positive', '')),
        if(toDecimal256OrZero(raw_price, 18) * toDecimal256OrZero(raw_qty, 18) >= toDecimal256('100000000000000', 18),
           'notional_out_of_range', ''),
        if(base_asset = '' OR quote_asset = '', 'unknown_instrument', ''),
        if(ts IS NULL, 'timestamp_not_rfc3339', ''),
        if(ts > ingested + INTERVAL 1 MINUTE, 'timestamp_in_future', '')
    ])                                                                  AS validation_errors,
    empty(validation_errors)                                            AS is_valid
FROM
(
    SELECT
        symbol AS raw_symbol, toString(side) AS raw_side, price AS raw_price, qty AS raw_qty,
        toString(ord_type) AS raw_ord_type, trade_id AS raw_trade_id, timestamp AS raw_timestamp,
        is_snapshot AS snapshot, received_at AS received, ingested_at AS ingested, source AS src,
        parseDateTime64BestEffortOrNull(timestamp, 6, 'UTC') AS ts,
        transform(splitByChar('/', symbol)[1], ['XBT', 'XDG'], ['BTC', 'DOGE'], splitByChar('/', symbol)[1]) AS base_asset,
        if(length(splitByChar('/', symbol)) = 2,
           transform(splitByChar('/', symbol)[2], ['XBT', 'XDG'], ['BTC', 'DOGE'], splitByChar('/', symbol)[2]),
           '')                                                          AS quote_asset
    FROM k2.bronze_trades_kraken_v2
);
