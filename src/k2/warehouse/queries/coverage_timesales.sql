-- k2 coverage: Kraken time-and-sales archive rows per pair and day (reconciliation only: these
-- rows are not in silver; the count is shown next to silver's).
SELECT pair, toString(toDate(toDateTime(time, 'UTC'))) AS day, count() AS trades
FROM k2.bronze_archive_kraken_timesales
WHERE toDateTime(time, 'UTC') >= {since:DateTime64(6, 'UTC')} AND toDateTime(time, 'UTC') < {until:DateTime64(6, 'UTC')}
GROUP BY pair, day
