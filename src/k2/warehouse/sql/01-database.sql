-- The K2 warehouse lives in one database. Every later file creates objects inside it.
CREATE DATABASE IF NOT EXISTS k2;

-- Which version of these files was applied last (a hash of every statement), so that commands
-- can skip re-applying an unchanged schema.
CREATE TABLE IF NOT EXISTS k2.schema_state
(
    schema_hash String,
    applied_at  DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY applied_at;
