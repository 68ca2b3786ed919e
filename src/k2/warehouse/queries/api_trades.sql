-- k2.connect().trades(): silver rows of one canonical symbol with their exact types, in
-- exchange-time order (the same order as `k2 trades`). The inner SELECT renames columns so no
-- output alias shadows a filtered column.
SELECT
    ts AS time,
    toString(ex) AS exchange,
    toString(cs) AS symbol,
    toString(ns) AS native_symbol,
    id AS trade_id,
    px AS price,
    qty AS quantity,
    toString(taker) AS side,
    valid AS is_valid,
    toString(src) AS source,
    ing AS ingested_at
FROM
(
    SELECT timestamp AS ts, exchange AS ex, canonical_symbol AS cs, symbol AS ns, trade_id AS id,
           price AS px, quantity AS qty, side AS taker, is_valid AS valid, source AS src,
           ingestion_timestamp AS ing
    FROM k2.silver_trades_v2
    WHERE canonical_symbol = {symbol:String}
      AND ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
      AND timestamp >= {since:DateTime64(6, 'UTC')}
      AND timestamp < {until:DateTime64(6, 'UTC')}
)
ORDER BY ts, exchange, length(id), id
LIMIT {limit:UInt64}
