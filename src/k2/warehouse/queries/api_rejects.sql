-- k2.connect().rejects(): frames and messages that could not be parsed, newest first.
SELECT received_at, toString(exchange) AS exchange, toString(source) AS source, reason, raw, origin,
       kafka_topic, kafka_partition, kafka_offset
FROM k2.rejects
WHERE ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND received_at >= {since:DateTime64(6, 'UTC')}
ORDER BY received_at DESC
LIMIT {limit:UInt64}
