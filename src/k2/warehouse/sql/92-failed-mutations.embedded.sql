-- Embedded only (a server's version may not know the setting; it exists since 24.x).
--
-- Retry a failed mutation within a second. `k2 rebuild`, `k2 repair` and the repair on open
-- (an insert a crash interrupted, damaged parts) delete a range with ALTER ... DELETE and wait for
-- it (mutations_sync = 2). A mutation that fails -- the disk was full when it ran -- is postponed
-- with a backoff that doubles up to 5 minutes by default, and every later mutation of the same
-- parts waits behind it: in the storm, a `k2 run` started while the data dir's disk was still
-- full repaired its damaged parts, then waited on the postponed mutation for longer than the run
-- lasted and never ingested (1 run in ~5). A second between retries costs nothing while the disk
-- stays full (the mutation fails fast) and lets the repair finish as soon as there is room.
ALTER TABLE k2.bronze_trades_binance MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_kraken MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_kraken_v2 MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_coinbase MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_coinbase_advanced MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_bybit MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_okx MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_bitfinex MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_trades_gemini MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_archive_binance_trades MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_archive_binance_agg_trades MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.bronze_archive_kraken_timesales MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.silver_trades_v2 MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.gold_ohlcv_1m MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
ALTER TABLE k2.gold_ohlcv_1h MODIFY SETTING max_postpone_time_for_failed_mutations_ms = 1000;
