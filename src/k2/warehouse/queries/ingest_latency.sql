-- Ingest latency of the live trades written since {s} (µs): count, p50, p99, p99.9 in ms
-- (ingestion_timestamp - exchange time). The end-of-run summary of `k2 run`.
SELECT count(), quantileExact(0.5)(lat), quantileExact(0.99)(lat), quantileExact(0.999)(lat) FROM
(SELECT (toUnixTimestamp64Micro(ingestion_timestamp) - toUnixTimestamp64Micro(timestamp)) / 1000 AS lat
 FROM k2.silver_trades_v2 WHERE source IN ('ws', 'kafka')  -- live trades, direct or through Kafka
 AND received_at >= fromUnixTimestamp64Micro({s:Int64}, 'UTC'))
