-- Rejects: every frame or message that could not be parsed, kept with its raw text and the
-- reason, so nothing the exchange sent is silently lost. `source` says where it came from
-- ('ws', 'file', 'kafka', 'rest'); the Kafka coordinates are filled in by the Kafka sink.
CREATE TABLE IF NOT EXISTS k2.rejects
(
    exchange        LowCardinality(String),
    source          LowCardinality(String),
    reason          String,
    raw             String,
    received_at     DateTime64(6, 'UTC'),
    ingested_at     DateTime64(6, 'UTC') DEFAULT now64(6),
    origin          String DEFAULT '',             -- file path:line, or connection id
    kafka_topic     String DEFAULT '',
    kafka_partition Int32 DEFAULT -1,
    kafka_offset    Int64 DEFAULT -1,
    batch_id        String DEFAULT ''
)
ENGINE = MergeTree
ORDER BY (exchange, received_at)
SETTINGS non_replicated_deduplication_window = 100000;
