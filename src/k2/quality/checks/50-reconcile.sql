-- Reconciliation (k2 reconcile): K2's candles against each venue's own. Same header format as
-- ../checks.sql; the report groups checks by section.

-- check: 7 reconciliation | reconcile.last | info | the last reconciliation per exchange (k2 reconcile)
SELECT 0, if(count() = 0, 'never run (k2 reconcile --exchange X --symbols S --since 1d)',
             arrayStringConcat(groupArray(line), '; '))
FROM
(
    SELECT concat(exchange, ' ', toString(max(checked_at)), ': ', toString(count()), ' windows, ',
                  toString(countIf(verdict = 'match')), ' match, ', toString(countIf(verdict = 'venue')), ' venue-side, ',
                  toString(countIf(verdict IN ('missing', 'extra', 'unexplained'))), ' not explained') AS line
    FROM k2.reconciliation FINAL GROUP BY exchange ORDER BY exchange
);

-- check: 7 reconciliation | reconcile.unexplained | warn | no window whose last check found missing trades, extra trades or an unexplained difference (k2 reconcile --repair fills missing ones)
SELECT count(), any(concat(exchange, ' ', symbol, ' ', interval, ' ', toString(window_start), ' ', toString(verdict)))
FROM k2.reconciliation FINAL
WHERE verdict IN ('missing', 'extra', 'unexplained');
