-- Canonical symbols K2 knows: from the instruments table and from what silver holds.
SELECT DISTINCT s FROM
(
    SELECT concat(base, '/', quote) AS s FROM k2.instruments FINAL
    UNION ALL
    SELECT DISTINCT toString(canonical_symbol) AS s FROM k2.silver_trades_v2
)
ORDER BY s
