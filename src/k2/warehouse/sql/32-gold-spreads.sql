-- Cross-exchange dislocations: the same canonical pair on two venues, per window, from trades
-- (ADR 0025). A signal, not a tradeable edge: trades only (no quotes, so no bid/ask), no fees,
-- no transfer time, and a venue's last trade may be seconds old in a thin window (the trade
-- counts and times are there to show it).
--
-- venue_prices_<i> : one row per (exchange, canonical_symbol, window): the last trade (exchange
--                    time, then the trade id as a number, as the candles' close), VWAP, volume,
--                    trade count and the last trade's time.
--                    1s is read from silver when asked (no materialized view: nothing more to do
--                    per insert; silver is sorted by (canonical_symbol, timestamp), so a pair's
--                    range reads only its own granules). 1m is the candles' 1m states.
-- spreads_<i>      : one row per (canonical_symbol, window, venue_a < venue_b) where both traded:
--                    both sides' prices, sizes, counts and times, and the spread of B over A in
--                    basis points, from the last trades and from the VWAPs.
-- quote_basis_1m   : one row per (base, minute, quote_a < quote_b) where both quotes traded (quotes
--                    among USD, USDT, USDC, EUR, GBP, FDUSD, DAI; the conversion pair too): the
--                    cross-venue VWAP of BASE/quote_a and BASE/quote_b, the rate of quote_b in
--                    quote_a from the venues' own pair that minute (USDT/USD, USDC/USD,
--                    USDC/USDT or their inverse) -- NULL when no venue traded it: never assumed 1
--                    -- and the basis of BASE/quote_b over BASE/quote_a after conversion.
--
-- Exactness: prices, VWAPs and sizes are the exact decimals of silver and gold. A spread is
-- (B - A) * 10000 / A divided in Decimal256 (Decimal(38, 18) / Decimal(38, 18) overflows above
-- ~170, the bug k2 validate's cross.price_agreement once had) and kept to 8 decimals
-- (truncated). The quote basis multiplies three prices and is taken in Float64 (rounded to
-- 0.0001 bp): a ratio of averages, where 15 significant digits are more than the signal holds.
-- Stored queries (warehouse/queries/spreads*.sql) repeat these expressions with the pair and
-- range pushed inside; keep them in step.

CREATE OR REPLACE VIEW k2.venue_prices_1s AS
SELECT exchange, canonical_symbol, toStartOfSecond(timestamp)::DateTime('UTC') AS window_start,
       argMax(price, (timestamp, toUInt64(length(trade_id)), trade_id)) AS last_price,
       toDecimal128(sum(toDecimal256(price, 18) * quantity) / sum(quantity), 18) AS vwap,
       sum(quantity) AS volume, count() AS trade_count, max(timestamp) AS last_trade_at
FROM k2.silver_trades_v2
WHERE is_valid
GROUP BY exchange, canonical_symbol, window_start;

CREATE OR REPLACE VIEW k2.venue_prices_1m AS
SELECT exchange, canonical_symbol, window_start, close_price AS last_price, vwap, volume, trade_count,
       last_trade_at
FROM k2.ohlcv_1m;

CREATE OR REPLACE VIEW k2.spreads_1s AS
SELECT a.canonical_symbol AS canonical_symbol, a.window_start AS window_start,
       a.exchange AS venue_a, b.exchange AS venue_b,
       a.last_price AS last_a, b.last_price AS last_b,
       toDecimal128((toDecimal256(b.last_price, 18) - toDecimal256(a.last_price, 18)) * 10000
                    / toDecimal256(a.last_price, 18), 8) AS last_spread_bps,
       a.vwap AS vwap_a, b.vwap AS vwap_b,
       toDecimal128((toDecimal256(b.vwap, 18) - toDecimal256(a.vwap, 18)) * 10000
                    / toDecimal256(a.vwap, 18), 8) AS vwap_spread_bps,
       a.volume AS volume_a, b.volume AS volume_b, a.trade_count AS trades_a, b.trade_count AS trades_b,
       a.last_trade_at AS last_trade_at_a, b.last_trade_at AS last_trade_at_b
FROM k2.venue_prices_1s AS a
INNER JOIN k2.venue_prices_1s AS b ON a.canonical_symbol = b.canonical_symbol AND a.window_start = b.window_start
WHERE a.exchange < b.exchange;

CREATE OR REPLACE VIEW k2.spreads_1m AS
SELECT a.canonical_symbol AS canonical_symbol, a.window_start AS window_start,
       a.exchange AS venue_a, b.exchange AS venue_b,
       a.last_price AS last_a, b.last_price AS last_b,
       toDecimal128((toDecimal256(b.last_price, 18) - toDecimal256(a.last_price, 18)) * 10000
                    / toDecimal256(a.last_price, 18), 8) AS last_spread_bps,
       a.vwap AS vwap_a, b.vwap AS vwap_b,
       toDecimal128((toDecimal256(b.vwap, 18) - toDecimal256(a.vwap, 18)) * 10000
                    / toDecimal256(a.vwap, 18), 8) AS vwap_spread_bps,
       a.volume AS volume_a, b.volume AS volume_b, a.trade_count AS trades_a, b.trade_count AS trades_b,
       a.last_trade_at AS last_trade_at_a, b.last_trade_at AS last_trade_at_b
FROM k2.venue_prices_1m AS a
INNER JOIN k2.venue_prices_1m AS b ON a.canonical_symbol = b.canonical_symbol AND a.window_start = b.window_start
WHERE a.exchange < b.exchange;

CREATE OR REPLACE VIEW k2.quote_basis_1m AS
WITH prices AS
(
    SELECT splitByChar('/', canonical_symbol)[1] AS base, splitByChar('/', canonical_symbol)[2] AS quote,
           canonical_symbol, window_start, vwap, trade_count, exchanges
    FROM k2.ohlcv_1m_cross
    WHERE splitByChar('/', canonical_symbol)[2] IN ('USD', 'USDT', 'USDC', 'EUR', 'GBP', 'FDUSD', 'DAI')
)
SELECT x.base AS base, x.window_start AS window_start, x.quote AS quote_a, y.quote AS quote_b,
       x.vwap AS vwap_a, y.vwap AS vwap_b, x.trade_count AS trades_a, y.trade_count AS trades_b,
       x.exchanges AS venues_a, y.exchanges AS venues_b,
       multiIf(direct.vwap > 0, concat(y.quote, '/', x.quote), inverse.vwap > 0, concat(x.quote, '/', y.quote), '')
           AS rate_pair,
       multiIf(direct.vwap > 0, toFloat64(direct.vwap), inverse.vwap > 0, 1 / toFloat64(inverse.vwap), NULL)
           AS rate_b_in_a,
       if(rate_b_in_a IS NULL, NULL,
          round((toFloat64(y.vwap) * rate_b_in_a / toFloat64(x.vwap) - 1) * 10000, 4)) AS basis_bps
FROM prices AS x
INNER JOIN prices AS y ON x.base = y.base AND x.window_start = y.window_start
LEFT JOIN (SELECT canonical_symbol, window_start, vwap FROM prices) AS direct
    ON direct.canonical_symbol = concat(y.quote, '/', x.quote) AND direct.window_start = x.window_start
LEFT JOIN (SELECT canonical_symbol, window_start, vwap FROM prices) AS inverse
    ON inverse.canonical_symbol = concat(x.quote, '/', y.quote) AND inverse.window_start = x.window_start
WHERE x.quote < y.quote;
