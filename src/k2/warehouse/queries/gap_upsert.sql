-- One version of a gap ledger row. `updated` is when this version's content changed (stamped by
-- the feed, later than every earlier version of the gap), not when the insert runs: versions may
-- be written out of order (a thread pool, a Kafka sink) and the latest still wins. `since` < 0: none.
INSERT INTO k2.gaps (gap_id, exchange, symbol, kind, from_id, to_id, from_time, to_time, since_time, state,
                     trades_recovered, detail, detected_at, updated_at)
SELECT {gap_id:String}, {exchange:String}, {symbol:String}, {kind:String},
       if({kind:String} = 'ids', toNullable(toUInt64({start:Int64})), NULL),
       if({kind:String} = 'ids', toNullable(toUInt64({end:Int64})), NULL),
       if({kind:String} = 'time', toNullable(fromUnixTimestamp64Micro({start:Int64}, 'UTC')), NULL),
       if({kind:String} = 'time', toNullable(fromUnixTimestamp64Micro({end:Int64}, 'UTC')), NULL),
       if({since:Int64} < 0, NULL, toNullable(fromUnixTimestamp64Micro({since:Int64}, 'UTC'))),
       {state:String}, {recovered:UInt64}, {detail:String},
       fromUnixTimestamp64Micro({detected:Int64}, 'UTC'),
       fromUnixTimestamp64Micro({updated:Int64}, 'UTC')
