-- Embedded only (files named *.embedded.sql are skipped on a ClickHouse server, whose merges run
-- on its own cores and whose version may not know the setting; it exists since 24.12).
--
-- Merge less often: in one process on a laptop, ClickHouse's background merges compete with the
-- feed and the writer for the same cores. With the default base of 5, a live feed's small parts
-- (one per table per insert, several inserts a second) were merged into ever larger parts so often
-- that merging cost 0.25-0.3 cores at 50k trades/s, almost as much as the inserts. A base of 20
-- waits for about four times as many parts of a size before merging them: in a 20 s run at 50k/s,
-- 17 merges instead of 58, 1.3M rows rewritten instead of 3.9M, half the merge time. The price is
-- more parts at a time (tens, far below the limits). Bronze and silver only: gold's parts are a
-- few rows per minute, cheap to merge, and every candle read opens all of them (with base 20 the
-- 10M-trade read benchmark found gold 1m in 10 parts instead of 5, and the read 8 ms slower).
--
-- Smaller compression blocks (64 KiB, LZ4's own window, so the ratio barely moves): each part
-- written or merged holds one buffer per column stream (a silver part has ~35), 1 MiB by default.
-- At 50k trades/s `k2 run`'s peak RSS went from ~490 to 460 MB; at 10k/s it did not change.
-- Merge column by column, in blocks of 2,048 rows: a merge of twenty silver parts read every
-- column of every part at once, 8,192 rows at a time, and was the largest single use of memory in
-- `k2 run` (at 50k trades/s the process's anonymous memory averaged 217 MB with merges and 158 MB
-- with merges stopped). Vertical merges read the sort key first and then one column at a time;
-- smaller blocks bound what each part holds meanwhile. In three A/B rounds at 50k/s the peak RSS of
-- the writer went from 424-432 MB to 354-360 MB, with the same CPU.
-- At most 8 parts per merge (ClickHouse's default is 100; with base 20 the selector took ~20): a
-- merge holds buffers for every part it reads, and a bulk load's (`k2 load`, `k2 import`) peak RSS
-- was its merges of silver beside its inserts. 10M-trade `k2 load`: 627 MB instead of 732; 10M-line
-- `k2 import`: 381 MB instead of 425 with only the archive tables capped (91-*.sql), the same CPU;
-- `k2 run` at 50k trades/s: the same peak RSS and no more CPU per trade (ADR 0029).
ALTER TABLE k2.bronze_trades_binance MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_kraken MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_kraken_v2 MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_coinbase MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_coinbase_advanced MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_bybit MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_okx MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_bitfinex MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_trades_gemini MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
-- Silver's parts of fewer than 65,536 rows are Compact (one data file and one marks file), not
-- Wide (two files per column stream, ~70 for silver): a bulk load's 50,000-row insert is ~17 MB,
-- over ClickHouse's 10 MiB bound for Compact, and creating those files was most of the fixed cost
-- of every insert on this file system (a 1-row insert into a 21-column table: 13 ms Compact, 89 ms
-- Wide). Merged parts of 65,536 rows and more are Wide, as before. `k2 load` of 1M trades: 1.18-1.26x
-- as fast as with Wide insert parts, 1 s less system time, the same peak RSS (ADR 0038).
ALTER TABLE k2.silver_trades_v2 MODIFY SETTING min_rows_for_wide_part = 65536, merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
