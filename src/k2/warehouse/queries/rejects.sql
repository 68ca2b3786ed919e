-- k2 rejects: frames and messages that could not be parsed, newest first, with the raw text.
SELECT formatDateTime(received_at, '%Y-%m-%dT%H:%i:%S.%fZ') AS received, exchange, source, reason,
       raw, origin, kafka_topic, kafka_partition, kafka_offset
FROM k2.rejects
WHERE ({exchange:String} = 'all' OR exchange = {exchange:String})
  AND received_at >= {since:DateTime64(6, 'UTC')}
ORDER BY received_at DESC
LIMIT {limit:UInt64}
