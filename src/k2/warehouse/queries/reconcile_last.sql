-- The last reconciliation per exchange: when it ran, and its windows by verdict (k2 validate,
-- k2 reconcile --status).
SELECT exchange, toString(max(checked_at)) AS last_checked, count() AS windows,
       countIf(verdict = 'match') AS match, countIf(verdict = 'missing') AS missing,
       countIf(verdict = 'extra') AS extra, countIf(verdict = 'venue') AS venue,
       countIf(verdict = 'unexplained') AS unexplained
FROM k2.reconciliation FINAL
GROUP BY exchange
ORDER BY exchange
