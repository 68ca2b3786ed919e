-- Instruments: how each exchange's native symbol splits into base and quote asset.
--
-- Binance writes `BTCUSDT` and `ETHBTC` with no separator, so the split cannot be guessed from
-- the last letters: it comes from the exchange's metadata endpoint (GET /api/v3/exchangeInfo,
-- baseAsset/quoteAsset), refreshed by the feed when online, seeded from a built-in fallback list.
-- Assets are stored already canonical (XBT -> BTC, XDG -> DOGE); rows are versioned by
-- `updated_at` so a refresh simply inserts newer rows (read with FINAL).
CREATE TABLE IF NOT EXISTS k2.instruments
(
    exchange      LowCardinality(String),
    native_symbol String,
    base          LowCardinality(String),
    quote         LowCardinality(String),
    source        LowCardinality(String),          -- 'builtin' or 'exchange'
    updated_at    DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (exchange, native_symbol);
