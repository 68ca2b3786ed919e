-- k2 trades: silver rows of one canonical symbol, in exchange-time order. {offset} skips the
-- oldest rows when the newest {limit} are asked for (trades_count.sql counts them first).
-- The inner SELECT renames columns so no output alias shadows a filtered column.
SELECT
    formatDateTime(ts, '%Y-%m-%dT%H:%i:%S.%fZ') AS time,
    ex AS exchange,
    cs AS symbol,
    ns AS native_symbol,
    id AS trade_id,
    px AS price,
    qty AS quantity,
    taker AS side,
    valid AS is_valid
FROM
(
    SELECT timestamp AS ts, exchange AS ex, canonical_symbol AS cs, symbol AS ns, trade_id AS id,
           price AS px, quantity AS qty, side AS taker, is_valid AS valid
    FROM k2.silver_trades_v2
    WHERE canonical_symbol = {symbol:String}
      AND ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
      AND timestamp >= {since:DateTime64(6, 'UTC')}
      AND timestamp < {until:DateTime64(6, 'UTC')}
)
ORDER BY ts, exchange, length(id), id
LIMIT {limit:UInt64} OFFSET {offset:UInt64}
