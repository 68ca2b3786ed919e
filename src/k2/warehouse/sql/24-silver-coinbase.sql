-- Silver view for Coinbase Exchange: bronze_trades_coinbase -> silver_trades_v2.
--
-- The inner SELECT renames bronze columns (raw_price, raw_time, maker_side...) so the outer SELECT can
-- name its results `price`, `side`, `timestamp` without an alias shadowing a source column.
--   canonical_symbol : base/quote from k2.instruments (GET /products), else the product id split on
--                      '-' (BTC-USD -> BTC/USD, BTC-USDT -> BTC/USDT: the true quote, never USDT -> USD)
--   side             : Coinbase's `side` is the MAKER order's side, so the taker side is its opposite
--                      (maker sell -> taker BUY)
--   timestamp        : the RFC 3339 `time`, to the microsecond
--   trade_id         : Coinbase's per-product trade_id
--   vendor_data      : the match fields under Coinbase's names; REST rows lack type, order ids, sequence
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_coinbase_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'coinbase'                                                          AS exchange,
    b.product                                                           AS symbol,
    if(b.base_asset = '' OR b.quote_asset = '', b.product, concat(b.base_asset, '/', b.quote_asset)) AS canonical_symbol,
    b.base_asset                                                        AS base,
    b.quote_asset                                                       AS quote,
    b.quote_asset                                                       AS currency,
    toString(b.tid)                                                     AS trade_id,
    ifNull(toDecimal128OrNull(b.raw_price, 18), toDecimal128(0, 18))    AS price,
    ifNull(toDecimal128OrNull(b.raw_size, 18), toDecimal128(0, 18))     AS quantity,
    if(b.maker_side = 'sell', 'BUY', 'SELL')                            AS side,
    ifNull(b.ts, toDateTime64(0, 6, 'UTC'))                             AS timestamp,
    b.received                                                          AS received_at,
    b.ingested                                                          AS ingestion_timestamp,
    b.src                                                               AS source,
    'bronze_trades_coinbase'                                            AS bronze_table,
    mapFilter((k, v) -> v != '',
        map('type', b.raw_type, 'trade_id', toString(b.tid), 'maker_order_id', b.maker, 'taker_order_id', b.taker,
            'side', b.maker_side, 'size', b.raw_size, 'price', b.raw_price, 'product_id', b.product,
            'sequence', if(b.raw_type = '', '', toString(b.seq)), 'time', b.raw_time)) AS vendor_data,
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
        r.raw_type, r.tid, r.maker, r.taker, r.maker_side, r.raw_size, r.raw_price, r.product, r.seq, r.raw_time,
        r.received, r.ingested, r.src, r.ts,
        if(i.base != '', i.base, if(length(r.parts) = 2, r.parts[1], ''))  AS base_asset,
        if(i.base != '', i.quote, if(length(r.parts) = 2, r.parts[2], '')) AS quote_asset
    FROM
    (
        SELECT type AS raw_type, trade_id AS tid, maker_order_id AS maker, taker_order_id AS taker,
               toString(side) AS maker_side, size AS raw_size, price AS raw_price, product_id AS product,
               sequence AS seq, time AS raw_time, received_at AS received, ingested_at AS ingested, source AS src,
               parseDateTime64BestEffortOrNull(time, 6, 'UTC') AS ts,
               arrayFilter(x -> x != '', splitByChar('-', toString(product_id))) AS parts
        FROM k2.bronze_trades_coinbase
    ) AS r
    LEFT JOIN
    (
        SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = 'coinbase'
    ) AS i ON i.native_symbol = r.product
) AS b;
