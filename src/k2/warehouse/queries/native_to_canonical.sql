-- Resolve a native symbol (BTCUSDT, XBT/USD) to its canonical form through the instruments table.
SELECT concat(base, '/', quote) FROM k2.instruments FINAL
WHERE native_symbol = {native:String}
ORDER BY exchange
LIMIT 1
