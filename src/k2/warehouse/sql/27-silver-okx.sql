-- Silver view for OKX (`trades`): bronze_trades_okx -> silver_trades_v2.
--
-- The inner SELECT renames bronze columns back to OKX's wire keys (instId, tradeId, px, sz, ...) so no
-- output alias shadows a source column.
--   canonical_symbol : base/quote from k2.instruments (GET /api/v5/public/instruments baseCcy/quoteCcy),
--                      else instId split on '-' (BTC-USDT -> BTC/USDT: the true quote)
--   side             : already the TAKER side
--   timestamp        : ts is ms as a STRING -> Int64 -> DateTime64(6); a ts that is not digits is flagged
--   trade_id         : tradeId as sent (on `trades` it may stand for `count` aggregated fills)
--   vendor_data      : the raw fields under OKX's keys (+ the channel); count, source, seqId only when sent
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_okx_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'okx'                                                               AS exchange,
    b.instId                                                            AS symbol,
    if(b.base_asset = '' OR b.quote_asset = '', b.instId, concat(b.base_asset, '/', b.quote_asset)) AS canonical_symbol,
    b.base_asset                                                        AS base,
    b.quote_asset                                                       AS quote,
    b.quote_asset                                                       AS currency,
    b.tradeId                                                           AS trade_id,
    ifNull(toDecimal128OrNull(b.px, 18), toDecimal128(0, 18))           AS price,
    ifNull(toDecimal128OrNull(b.sz, 18), toDecimal128(0, 18))           AS quantity,
    if(b.raw_side = 'buy', 'BUY', 'SELL')                               AS side,
    fromUnixTimestamp64Milli(b.ts_ms, 'UTC')::DateTime64(6, 'UTC')      AS timestamp,
    b.received                                                          AS received_at,
    b.ingested                                                          AS ingestion_timestamp,
    b.src                                                               AS source,
    'bronze_trades_okx'                                                 AS bronze_table,
    mapFilter((k, v) -> v != '',
        map('channel', b.channel, 'instId', b.instId, 'tradeId', b.tradeId, 'px', b.px, 'sz', b.sz,
            'side', b.raw_side, 'ts', b.ts, 'count', b.cnt, 'source', b.trade_source,
            'seqId', if(b.seqId = -1, '', toString(b.seqId))))          AS vendor_data,
    arrayFilter(x -> x != '', [
        if(toDecimal128OrNull(b.px, 18) IS NULL, 'price_not_decimal',
           if(toDecimal128OrNull(b.px, 18) <= 0, 'price_not_positive', '')),
        if(position(b.px, '.') > 0 AND length(b.px) - position(b.px, '.') > 18, 'price_beyond_18_decimals', ''),
        if(toDecimal128OrNull(b.sz, 18) IS NULL, 'quantity_not_decimal',
           if(toDecimal128OrNull(b.sz, 18) <= 0, 'quantity_not_positive', '')),
        if(position(b.sz, '.') > 0 AND length(b.sz) - position(b.sz, '.') > 18, 'quantity_beyond_18_decimals', ''),
        if(toDecimal256OrZero(b.px, 18) * toDecimal256OrZero(b.sz, 18) >= toDecimal256('100000000000000', 18),
           'notional_out_of_range', ''),
        if(b.base_asset = '' OR b.quote_asset = '', 'unknown_instrument', ''),
        if(NOT match(b.ts, '^[0-9]{1,16}$'), 'timestamp_not_ms', ''),
        if(b.ts_ms > toUnixTimestamp64Milli(b.ingested) + 60000, 'timestamp_in_future', ''),
        if(b.ts_ms < 1230768000000, 'timestamp_before_2009', '')
    ])                                                                  AS validation_errors,
    empty(validation_errors)                                            AS is_valid
FROM
(
    SELECT
        r.channel, r.instId, r.tradeId, r.px, r.sz, r.raw_side, r.ts, r.ts_ms, r.cnt, r.trade_source, r.seqId,
        r.received, r.ingested, r.src,
        if(i.base != '', i.base, if(length(r.parts) = 2, r.parts[1], ''))  AS base_asset,
        if(i.base != '', i.quote, if(length(r.parts) = 2, r.parts[2], '')) AS quote_asset
    FROM
    (
        SELECT channel, inst_id AS instId, trade_id AS tradeId, px, sz, toString(side) AS raw_side, ts,
               toInt64OrZero(ts) AS ts_ms, count AS cnt, trade_source, seq_id AS seqId,
               received_at AS received, ingested_at AS ingested, source AS src,
               arrayFilter(x -> x != '', splitByChar('-', toString(inst_id))) AS parts
        FROM k2.bronze_trades_okx
    ) AS r
    LEFT JOIN
    (
        SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = 'okx'
    ) AS i ON i.native_symbol = r.instId
) AS b;
