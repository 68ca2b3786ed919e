-- Reconciliation: K2's candles compared with the venue's own, window by window (k2 reconcile).
--
-- verdict: 'match' (every field both sides carry is equal), 'missing' (the venue counts more
-- trades or volume than K2 holds: a hole, also entered in the gaps ledger), 'extra' (K2 holds
-- more than the venue: never expected), 'venue' (a documented venue-side difference, named in
-- `cause`), 'unexplained' (anything else). `fields` lists the fields that differ; `k2` and
-- `venue` hold both sides' values as JSON objects of decimal strings, exactly as compared.
-- The latest check of a window wins (ReplacingMergeTree on checked_at): read with FINAL.
CREATE TABLE IF NOT EXISTS k2.reconciliation
(
    exchange         LowCardinality(String),
    symbol           String,
    canonical_symbol LowCardinality(String),
    interval         LowCardinality(String),
    window_start     DateTime('UTC'),
    verdict          Enum8('match' = 1, 'missing' = 2, 'extra' = 3, 'venue' = 4, 'unexplained' = 5),
    cause            String,
    fields           Array(String),
    k2               String,
    venue            String,
    checked_at       DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(checked_at)
ORDER BY (exchange, symbol, interval, window_start);
