-- Silver view for Bybit (spot publicTrade): bronze_trades_bybit -> silver_trades_v2.
--
-- The inner SELECT renames bronze columns back to Bybit's wire keys (i, T, p, v, S, s, BT, RPI, seq)
-- so no output alias shadows a source column.
--   symbol split : from k2.instruments (GET /v5/market/instruments-info baseCoin/quoteCoin), never
--                  guessed from suffixes: BTCUSDT -> BTC/USDT (the true quote)
--   side         : S is already the TAKER side (Buy -> BUY)
--   timestamp    : T (ms) -> DateTime64(6)
--   trade_id     : i, the execution id (unique per symbol, not sequential)
--   vendor_data  : the raw fields under Bybit's keys; RPI and seq only when Bybit sent them, topic and
--                  type only for WebSocket rows
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_bybit_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'bybit'                                                       AS exchange,
    b.s                                                           AS symbol,
    if(i.base = '', b.s, concat(i.base, '/', i.quote))            AS canonical_symbol,
    i.base                                                        AS base,
    i.quote                                                       AS quote,
    i.quote                                                       AS currency,
    b.i                                                           AS trade_id,
    ifNull(toDecimal128OrNull(b.p, 18), toDecimal128(0, 18))      AS price,
    ifNull(toDecimal128OrNull(b.v, 18), toDecimal128(0, 18))      AS quantity,
    if(b.S = 'Buy', 'BUY', 'SELL')                                AS side,
    fromUnixTimestamp64Milli(b.T, 'UTC')::DateTime64(6, 'UTC')    AS timestamp,
    b.received                                                    AS received_at,
    b.ingested                                                    AS ingestion_timestamp,
    b.src                                                         AS source,
    'bronze_trades_bybit'                                         AS bronze_table,
    mapFilter((k, v) -> v != '',
        map('topic', b.topic, 'type', b.msg_type, 'ts', toString(b.ts), 'i', b.i, 'T', toString(b.T), 'p', b.p,
            'v', b.v, 'S', b.S, 's', b.s, 'BT', if(b.BT, 'true', 'false'),
            'RPI', multiIf(b.RPI IS NULL, '', b.RPI, 'true', 'false'), 'seq', if(b.seq = -1, '', toString(b.seq))))
                                                                  AS vendor_data,
    arrayFilter(x -> x != '', [
        if(toDecimal128OrNull(b.p, 18) IS NULL, 'price_not_decimal',
           if(toDecimal128OrNull(b.p, 18) <= 0, 'price_not_positive', '')),
        if(position(b.p, '.') > 0 AND length(b.p) - position(b.p, '.') > 18, 'price_beyond_18_decimals', ''),
        if(toDecimal128OrNull(b.v, 18) IS NULL, 'quantity_not_decimal',
           if(toDecimal128OrNull(b.v, 18) <= 0, 'quantity_not_positive', '')),
        if(position(b.v, '.') > 0 AND length(b.v) - position(b.v, '.') > 18, 'quantity_beyond_18_decimals', ''),
        if(toDecimal256OrZero(b.p, 18) * toDecimal256OrZero(b.v, 18) >= toDecimal256('100000000000000', 18),
           'notional_out_of_range', ''),
        if(i.base = '', 'unknown_instrument', ''),
        if(b.T > toUnixTimestamp64Milli(b.ingested) + 60000, 'timestamp_in_future', ''),
        if(b.T < 1230768000000, 'timestamp_before_2009', '')
    ])                                                            AS validation_errors,
    empty(validation_errors)                                      AS is_valid
FROM
(
    SELECT topic, message_type AS msg_type, message_ts_ms AS ts, exec_id AS i, trade_time_ms AS T, price AS p,
           size AS v, toString(side) AS S, symbol AS s, is_block_trade AS BT, is_rpi AS RPI, seq,
           received_at AS received, ingested_at AS ingested, source AS src
    FROM k2.bronze_trades_bybit
) AS b
LEFT JOIN
(
    SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = 'bybit'
) AS i ON i.native_symbol = b.s;
