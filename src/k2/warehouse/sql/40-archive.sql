-- Archives (k2 import): exchange archive files, one bronze table per archive format (ADR 0018).
--
-- An archive is a native format of its own: Binance's `trades` CSV has quoteQty and no event
-- time, and its times are milliseconds up to 2024 and MICROseconds from 2025-01-01. The live
-- table (trade_time_ms) could not hold them without losing digits, so each format keeps its
-- columns as the file has them, plus where each row came from (file, line) and the file's time
-- unit, detected per file and checked per row.
--
-- ClickHouse parses the files: `k2 import` streams each file's lines (LineAsString) into the
-- Null table `archive_lines` with the fields split and a reject reason computed per line
-- (queries/archive_*.sql); the views below route good lines to their bronze table and bad ones,
-- with their original text, file and line, to `rejects`. Nothing is stored in archive_lines.

CREATE TABLE IF NOT EXISTS k2.archive_lines
(
    exchange     LowCardinality(String),
    kind         LowCardinality(String),   -- trades | aggTrades | timesales
    symbol       LowCardinality(String),   -- from the file name (the files carry none)
    archive_file String,                   -- the file's name as published
    line_no      UInt64,                   -- 1-based line of the file (of the member, for a zip)
    line         String,                   -- the line as read, line ending removed
    fields       Array(String),
    time_unit    LowCardinality(String),   -- ms | us (Binance), s (Kraken): detected per file
    reason       String,                   -- '' when the line is good
    batch_id     String
)
ENGINE = Null;

-- batch_id is the same ~64 characters on every row of a file (archive:<venue>:<file>:<sha256>): as
-- LowCardinality it is one dictionary entry per part, not 640 MiB of text per 10M rows that every
-- insert and merge had to compress and every merge to read back (ADR 0039). A data dir made before
-- keeps the String column: the same values, read the same way.
--
-- Binance spot `trades` files: trade id, price, qty, quoteQty, time, isBuyerMaker, isBestMatch.
-- The same trade ids as the live `t` and REST `id`: silver holds a trade once whichever of the
-- three brought it (the import skips ids bronze holds; the live writer skips ids held here).
CREATE TABLE IF NOT EXISTS k2.bronze_archive_binance_trades
(
    symbol         LowCardinality(String),
    id             UInt64,                          -- trade id
    price          String,                          -- decimal string as in the file
    qty            String,
    quote_qty      String,                          -- quoteQty
    time           Int64,                           -- as in the file: ms (to 2024) or µs (from 2025)
    time_unit      Enum8('ms' = 1, 'us' = 2),       -- the file's unit
    is_buyer_maker Bool,                            -- isBuyerMaker: true = the taker sold
    is_best_match  Nullable(Bool),                  -- isBestMatch ("ignore" per Binance)
    archive_file   LowCardinality(String),
    line_no        UInt64,
    ingested_at    DateTime64(6, 'UTC') DEFAULT now64(6),
    source         LowCardinality(String) DEFAULT 'archive',
    batch_id       LowCardinality(String),
    trade_id       UInt64 ALIAS id,                 -- the live table's key name, for key probes
    trade_time_us  Int64 ALIAS if(time_unit = 'us', time, time * 1000)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Micro(if(time_unit = 'us', time, time * 1000), 'UTC'))
ORDER BY (symbol, id)
SETTINGS non_replicated_deduplication_window = 100000;

-- Binance spot `aggTrades` files: aggId, price, qty, firstTradeId, lastTradeId, time,
-- isBuyerMaker, isBestMatch. An aggregate trade is one taker order's fills at one price: not a
-- trade, so it does not feed silver (it would count volume twice next to the trades). Kept as
-- the source said, and read by `k2 coverage` as a witness of which trade ids exist.
CREATE TABLE IF NOT EXISTS k2.bronze_archive_binance_agg_trades
(
    symbol         LowCardinality(String),
    agg_id         UInt64,
    price          String,
    qty            String,
    first_trade_id UInt64,
    last_trade_id  UInt64,
    time           Int64,
    time_unit      Enum8('ms' = 1, 'us' = 2),
    is_buyer_maker Bool,
    is_best_match  Nullable(Bool),
    archive_file   LowCardinality(String),
    line_no        UInt64,
    ingested_at    DateTime64(6, 'UTC') DEFAULT now64(6),
    source         LowCardinality(String) DEFAULT 'archive',
    batch_id       LowCardinality(String),
    trade_time_us  Int64 ALIAS if(time_unit = 'us', time, time * 1000)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(fromUnixTimestamp64Micro(if(time_unit = 'us', time, time * 1000), 'UTC'))
ORDER BY (symbol, agg_id)
SETTINGS non_replicated_deduplication_window = 100000;

-- Kraken's downloadable Time & Sales CSVs: unix seconds, price, volume -- no side, no id, no
-- order type. Reconciliation only (ADR 0019): such a row cannot be told apart from, or matched
-- to, the live and REST trades, and silver needs a side. `k2 coverage` compares its daily counts
-- and volumes with silver's.
CREATE TABLE IF NOT EXISTS k2.bronze_archive_kraken_timesales
(
    pair         LowCardinality(String),   -- from the file name (XBTUSD.csv)
    time         Int64,                    -- unix seconds as in the file
    price        String,
    volume       String,
    archive_file LowCardinality(String),
    line_no      UInt64,
    ingested_at  DateTime64(6, 'UTC') DEFAULT now64(6),
    source       LowCardinality(String) DEFAULT 'archive',
    batch_id     LowCardinality(String)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(toDateTime(time, 'UTC'))
ORDER BY (pair, time, archive_file, line_no)
SETTINGS non_replicated_deduplication_window = 100000;

-- Every file `k2 import` started, and how far it got: a re-import of a finished file (same name,
-- same SHA-256) is a no-op, and an interrupted one resumes after its last committed chunk.
CREATE TABLE IF NOT EXISTS k2.archive_files
(
    exchange     LowCardinality(String),
    archive_file String,
    sha256       String,
    kind         LowCardinality(String),
    symbol       LowCardinality(String),
    time_unit    LowCardinality(String),
    path         String,
    lines_done   UInt64,                   -- lines committed (a resume starts after them)
    rows_loaded  UInt64,
    rejected     UInt64,
    state        Enum8('loading' = 1, 'done' = 2),
    updated_at   DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (exchange, archive_file, sha256);

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.archive_lines_to_binance_trades_mv TO k2.bronze_archive_binance_trades AS
SELECT symbol, toUInt64(fields[1]) AS id, fields[2] AS price, fields[3] AS qty, fields[4] AS quote_qty,
       toInt64(fields[5]) AS time, time_unit, lower(fields[6]) = 'true' AS is_buyer_maker,
       if(length(fields) >= 7 AND fields[7] != '', lower(fields[7]) = 'true', NULL) AS is_best_match,
       archive_file, line_no, batch_id
FROM k2.archive_lines
WHERE exchange = 'binance' AND kind = 'trades' AND reason = '';

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.archive_lines_to_binance_agg_trades_mv TO k2.bronze_archive_binance_agg_trades AS
SELECT symbol, toUInt64(fields[1]) AS agg_id, fields[2] AS price, fields[3] AS qty,
       toUInt64(fields[4]) AS first_trade_id, toUInt64(fields[5]) AS last_trade_id,
       toInt64(fields[6]) AS time, time_unit, lower(fields[7]) = 'true' AS is_buyer_maker,
       if(length(fields) >= 8 AND fields[8] != '', lower(fields[8]) = 'true', NULL) AS is_best_match,
       archive_file, line_no, batch_id
FROM k2.archive_lines
WHERE exchange = 'binance' AND kind = 'aggTrades' AND reason = '';

CREATE MATERIALIZED VIEW IF NOT EXISTS k2.archive_lines_to_kraken_timesales_mv TO k2.bronze_archive_kraken_timesales AS
SELECT symbol AS pair, toInt64(fields[1]) AS time, fields[2] AS price, fields[3] AS volume,
       archive_file, line_no, batch_id
FROM k2.archive_lines
WHERE exchange = 'kraken' AND kind = 'timesales' AND reason = '';

-- A bad line is kept with its original text and says where it was: "<file>:<line>".
CREATE MATERIALIZED VIEW IF NOT EXISTS k2.archive_lines_to_rejects_mv TO k2.rejects AS
SELECT exchange, 'archive' AS source, reason, line AS raw, now64(6) AS received_at,
       concat(archive_file, ':', toString(line_no)) AS origin, batch_id
FROM k2.archive_lines
WHERE reason != '';
