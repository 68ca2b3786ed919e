-- k2 spreads: the windows where two venues' prices for one canonical pair were at least
-- {min_bps} basis points apart for at least {min_windows} consecutive windows (a "run").
-- {source} is venue_prices_1s or venue_prices_1m (32-gold-spreads.sql), chosen from a fixed list;
-- the spread expressions are those of the spreads_<i> views, with the pair, venues and range
-- pushed inside. {by} picks the spread the threshold applies to: 'last' (last trades) or 'vwap'.
-- A run is a venue pair's consecutive windows over the threshold with the same sign
-- (gaps-and-islands: window number minus row number is constant along a run).
WITH sides AS
(
    SELECT exchange, window_start, last_price, vwap, volume, trade_count, last_trade_at
    FROM k2.{source:Identifier}
    WHERE canonical_symbol = {symbol:String}
      AND (empty({venues:Array(String)}) OR has({venues:Array(String)}, exchange))
      AND window_start >= {since:DateTime64(6, 'UTC')}
      AND window_start < {until:DateTime64(6, 'UTC')}
),
pairs AS
(
    SELECT a.window_start AS window_start, a.exchange AS venue_a, b.exchange AS venue_b,
           a.last_price AS last_a, b.last_price AS last_b,
           toDecimal128((toDecimal256(b.last_price, 18) - toDecimal256(a.last_price, 18)) * 10000
                        / toDecimal256(a.last_price, 18), 8) AS last_spread_bps,
           a.vwap AS vwap_a, b.vwap AS vwap_b,
           toDecimal128((toDecimal256(b.vwap, 18) - toDecimal256(a.vwap, 18)) * 10000
                        / toDecimal256(a.vwap, 18), 8) AS vwap_spread_bps,
           a.volume AS volume_a, b.volume AS volume_b, a.trade_count AS trades_a, b.trade_count AS trades_b,
           a.last_trade_at AS last_trade_at_a, b.last_trade_at AS last_trade_at_b,
           if({by:String} = 'vwap', vwap_spread_bps, last_spread_bps) AS spread_bps
    FROM sides AS a INNER JOIN sides AS b ON a.window_start = b.window_start
    WHERE a.exchange < b.exchange
),
hits AS
(
    SELECT *, sign(spread_bps) AS direction,
           intDiv(toUnixTimestamp(window_start), {seconds:UInt32})
             - row_number() OVER (PARTITION BY venue_a, venue_b, direction ORDER BY window_start) AS island
    FROM pairs
    WHERE abs(spread_bps) >= {min_bps:Decimal(38, 8)}
),
runs AS
(
    SELECT *, count() OVER (PARTITION BY venue_a, venue_b, direction, island) AS run_windows,
           min(window_start) OVER (PARTITION BY venue_a, venue_b, direction, island) AS run_start
    FROM hits
)
SELECT
    formatDateTime(window_start, '%Y-%m-%dT%H:%i:%SZ') AS window,
    {symbol:String} AS symbol,
    venue_a, venue_b,
    last_spread_bps, vwap_spread_bps,
    last_a, last_b, vwap_a, vwap_b, volume_a, volume_b, trades_a, trades_b,
    formatDateTime(last_trade_at_a, '%Y-%m-%dT%H:%i:%S.%fZ') AS last_trade_at_a,
    formatDateTime(last_trade_at_b, '%Y-%m-%dT%H:%i:%S.%fZ') AS last_trade_at_b,
    formatDateTime(run_start, '%Y-%m-%dT%H:%i:%SZ') AS run_start,
    run_windows
FROM runs
WHERE run_windows >= {min_windows:UInt32}
ORDER BY window_start, venue_a, venue_b
