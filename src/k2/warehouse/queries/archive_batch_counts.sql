-- k2 import: rows one file put in bronze and in rejects (its batch ids share a prefix).
SELECT
    (SELECT count() FROM k2.{table:Identifier} WHERE {key:Identifier} = {symbol:String} AND startsWith(batch_id, {batch:String})),
    (SELECT count() FROM k2.rejects WHERE source = 'archive' AND startsWith(batch_id, {batch:String}))
