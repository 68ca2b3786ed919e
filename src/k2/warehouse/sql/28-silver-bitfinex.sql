-- Silver view for Bitfinex (`trades`): bronze_trades_bitfinex -> silver_trades_v2.
--
-- The inner SELECT renames bronze columns to Bitfinex's field names (ID, MTS, AMOUNT, PRICE) so no
-- output alias shadows a source column.
--   canonical_symbol : base/quote from k2.instruments (pub:list:pair:exchange + pub:map:currency:sym),
--                      else the pair split by Bitfinex's rule -- drop the leading 't'; a colon separates
--                      long codes (tDOGE:USD), six letters are 3 + 3 (tBTCUSD) -- and Bitfinex's own
--                      currency codes mapped to the common ones on BOTH sides: UST -> USDT, UDC -> USDC,
--                      TSD -> TUSD, EUT -> EURT, DSH -> DASH, IOT -> IOTA, QTM -> QTUM, ALG -> ALGO,
--                      MNA -> MANA, ATO -> ATOM, DAT -> DATA, STJ -> STORJ, WBT -> WBTC
--                      (k2.exchanges.bitfinex.CURRENCY_ALIASES; keep the two lists equal).
--                      So tBTCUST is BTC/USDT, never BTC/USD.
--   side             : the sign of AMOUNT: > 0 the taker BOUGHT, < 0 the taker SOLD
--   quantity         : |AMOUNT|
--   price / AMOUNT   : JSON-number text (exponents allowed) parsed exactly; a value with more than 18
--                      decimals is flagged, never rounded
--   timestamp        : MTS (ms) -> DateTime64(6)
--   trade_id         : ID
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.bronze_bitfinex_to_silver_v2_mv TO k2.silver_trades_v2 AS
SELECT
    'bitfinex'                                                          AS exchange,
    b.symbol                                                            AS symbol,
    if(b.base_asset = '' OR b.quote_asset = '', b.symbol, concat(b.base_asset, '/', b.quote_asset)) AS canonical_symbol,
    b.base_asset                                                        AS base,
    b.quote_asset                                                       AS quote,
    b.quote_asset                                                       AS currency,
    toString(b.ID)                                                      AS trade_id,
    ifNull(toDecimal128OrNull(b.PRICE, 18), toDecimal128(0, 18))        AS price,
    abs(ifNull(toDecimal128OrNull(b.AMOUNT, 18), toDecimal128(0, 18)))  AS quantity,
    if(startsWith(b.AMOUNT, '-'), 'SELL', 'BUY')                        AS side,
    fromUnixTimestamp64Milli(b.MTS, 'UTC')::DateTime64(6, 'UTC')        AS timestamp,
    b.received                                                          AS received_at,
    b.ingested                                                          AS ingestion_timestamp,
    b.src                                                               AS source,
    'bronze_trades_bitfinex'                                            AS bronze_table,
    mapFilter((k, v) -> v != '',
        map('ID', toString(b.ID), 'MTS', toString(b.MTS), 'AMOUNT', b.AMOUNT, 'PRICE', b.PRICE, 'symbol', b.symbol,
            'chanId', if(b.chanId = 0, '', toString(b.chanId)), 'msg_type', b.msg_type)) AS vendor_data,
    arrayFilter(x -> x != '', [
        if(toDecimal128OrNull(b.PRICE, 18) IS NULL, 'price_not_decimal',
           if(toDecimal128OrNull(b.PRICE, 18) <= 0, 'price_not_positive', '')),
        if(toDecimal256OrNull(b.PRICE, 36) != toDecimal256(toDecimal128OrZero(b.PRICE, 18), 36), 'price_beyond_18_decimals', ''),
        if(toDecimal128OrNull(b.AMOUNT, 18) IS NULL, 'quantity_not_decimal',
           if(toDecimal128OrNull(b.AMOUNT, 18) = 0, 'quantity_not_positive', '')),
        if(toDecimal256OrNull(b.AMOUNT, 36) != toDecimal256(toDecimal128OrZero(b.AMOUNT, 18), 36), 'quantity_beyond_18_decimals', ''),
        if(abs(toDecimal256OrZero(b.PRICE, 18) * toDecimal256OrZero(b.AMOUNT, 18)) >= toDecimal256('100000000000000', 18),
           'notional_out_of_range', ''),
        if(b.base_asset = '' OR b.quote_asset = '', 'unknown_instrument', ''),
        if(b.MTS > toUnixTimestamp64Milli(b.ingested) + 60000, 'timestamp_in_future', ''),
        if(b.MTS < 1230768000000, 'timestamp_before_2009', '')
    ])                                                                  AS validation_errors,
    empty(validation_errors)                                            AS is_valid
FROM
(
    SELECT
        r.chanId, r.symbol, r.msg_type, r.ID, r.MTS, r.AMOUNT, r.PRICE, r.received, r.ingested, r.src,
        if(i.base != '', i.base, transform(r.codes[1], ['UST', 'UDC', 'TSD', 'EUT', 'DSH', 'IOT', 'QTM', 'ALG', 'MNA', 'ATO', 'DAT', 'STJ', 'WBT'],
            ['USDT', 'USDC', 'TUSD', 'EURT', 'DASH', 'IOTA', 'QTUM', 'ALGO', 'MANA', 'ATOM', 'DATA', 'STORJ', 'WBTC'], r.codes[1])) AS base_asset,
        if(i.base != '', i.quote, transform(r.codes[2], ['UST', 'UDC', 'TSD', 'EUT', 'DSH', 'IOT', 'QTM', 'ALG', 'MNA', 'ATO', 'DAT', 'STJ', 'WBT'],
            ['USDT', 'USDC', 'TUSD', 'EURT', 'DASH', 'IOTA', 'QTUM', 'ALGO', 'MANA', 'ATOM', 'DATA', 'STORJ', 'WBTC'], r.codes[2])) AS quote_asset
    FROM
    (
        SELECT chan_id AS chanId, symbol, msg_type, id AS ID, mts AS MTS, amount AS AMOUNT, price AS PRICE,
               received_at AS received, ingested_at AS ingested, source AS src,
               -- tBTCUSD -> [BTC, USD]; tDOGE:USD -> [DOGE, USD]; anything else -> ['', '']
               multiIf(NOT startsWith(symbol, 't'), ['', ''],
                       position(symbol, ':') > 0 AND length(splitByChar(':', substring(symbol, 2))) = 2,
                           splitByChar(':', substring(symbol, 2)),
                       length(symbol) = 7, [substring(symbol, 2, 3), substring(symbol, 5, 3)],
                       ['', ''])                                        AS codes
        FROM k2.bronze_trades_bitfinex
    ) AS r
    LEFT JOIN
    (
        SELECT native_symbol, base, quote FROM k2.instruments FINAL WHERE exchange = 'bitfinex'
    ) AS i ON i.native_symbol = r.symbol
) AS b;
