-- How many ledger rows gaps.sql would return without a limit (the CLI says when it cut the list).
SELECT count()
FROM k2.gaps FINAL
WHERE ({exchange:String} = 'all' OR has(splitByChar(',', {exchange:String}), exchange))
  AND ({state:String} = 'all' OR toString(state) = {state:String})
