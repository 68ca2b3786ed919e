-- k2.connect().ohlcv(): candles of one canonical symbol with their exact types, for Arrow.
-- {view} is ohlcv_<interval> (per exchange) or ohlcv_<interval>_cross (exchange = 'all'), chosen
-- from a fixed list; every user value is a bound parameter. Decimals stay Decimal(38, 18);
-- quote_volume is stored as Decimal(76, 36) (exact sums of price x quantity) and comes out as
-- Decimal(38, 18) only when that is exact: a candle whose quote volume has more than 18 decimal
-- places is an error, never a rounded number.
SELECT
    toDateTime64(ws, 0, 'UTC') AS time,
    toString(ex) AS exchange,
    toString(cs) AS symbol,
    o AS open,
    h AS high,
    l AS low,
    c AS close,
    v AS volume,
    qv18 + throwIf(qv18 != qv, 'a quote volume has more than 18 decimal places; read it exactly with k2.query()')
        AS quote_volume,
    vw AS vwap,
    bv AS buy_volume,
    sv AS sell_volume,
    n AS trade_count,
    ft AS first_trade_at,
    lt AS last_trade_at
FROM
(
    SELECT window_start AS ws, exchange AS ex, canonical_symbol AS cs, open_price AS o, high_price AS h,
           low_price AS l, close_price AS c, volume AS v, quote_volume AS qv, toDecimal128(quote_volume, 18) AS qv18,
           vwap AS vw, buy_volume AS bv, sell_volume AS sv, trade_count AS n, first_trade_at AS ft,
           last_trade_at AS lt
    FROM k2.{view:Identifier}
    WHERE canonical_symbol = {symbol:String}
      AND ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
      AND window_start >= {since:DateTime64(6, 'UTC')}
      AND window_start < {until:DateTime64(6, 'UTC')}
)
ORDER BY ws, exchange
LIMIT {limit:UInt64}
