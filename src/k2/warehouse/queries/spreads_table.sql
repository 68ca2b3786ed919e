-- k2 spreads --format table: the columns a terminal can hold, over spreads.sql (put in place of
-- the marker line by k2.read.spreads); csv and json give every column.
SELECT window, concat(venue_a, '/', venue_b) AS venues, last_spread_bps AS bps, last_a, last_b,
       trades_a AS n_a, trades_b AS n_b, run_windows AS run
FROM (
-- @spreads
)
