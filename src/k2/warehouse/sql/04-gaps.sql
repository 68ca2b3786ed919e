-- Gaps ledger: every hole the feed found in a trade stream, and what backfill did about it.
--
-- kind 'ids': the exchange numbers trades one by one per symbol (Binance), and ids from_id..to_id
-- were missing. kind 'time': no such ids (Kraken v1); the window from_time..to_time around a
-- reconnect (or a restart) was fetched from the REST API. state: open -> filled | unfillable.
-- Rows are versioned by updated_at: read with FINAL.
CREATE TABLE IF NOT EXISTS k2.gaps
(
    gap_id           String,
    exchange         LowCardinality(String),
    symbol           String,
    kind             Enum8('ids' = 1, 'time' = 2),
    from_id          Nullable(UInt64),
    to_id            Nullable(UInt64),
    from_time        Nullable(DateTime64(6, 'UTC')),
    to_time          Nullable(DateTime64(6, 'UTC')),
    state            Enum8('open' = 1, 'filled' = 2, 'unfillable' = 3),
    trades_recovered UInt64,
    detail           String,
    detected_at      DateTime64(6, 'UTC'),
    updated_at       DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (exchange, symbol, gap_id);

-- A gap at a symbol's first trade after a reconnect, on an id venue, whose first missing id is not
-- found yet: the ids traded since this time are missing (k2.feed.gaps, Gap.since_us). Kept so that
-- a restart retries it as the same gap instead of a fixed window of ids.
ALTER TABLE k2.gaps ADD COLUMN IF NOT EXISTS since_time Nullable(DateTime64(6, 'UTC')) AFTER to_time;
