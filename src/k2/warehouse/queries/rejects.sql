-- k2 rejects: frames and messages that could not be parsed, newest first, with the raw bytes:
-- as text when they are valid UTF-8 (raw_encoding 'utf-8'), else base64 of the exact bytes
-- (raw_encoding 'base64'), so that no output format has to replace what it cannot print.
SELECT formatDateTime(received_at, '%Y-%m-%dT%H:%i:%S.%fZ') AS received, exchange, source, reason,
       if(isValidUTF8(rj.raw), rj.raw, base64Encode(rj.raw)) AS raw,
       if(isValidUTF8(rj.raw), 'utf-8', 'base64') AS raw_encoding,
       origin, kafka_topic, kafka_partition, kafka_offset
FROM k2.rejects AS rj
WHERE ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND received_at >= {since:DateTime64(6, 'UTC')}
ORDER BY received_at DESC
LIMIT {limit:UInt64}
