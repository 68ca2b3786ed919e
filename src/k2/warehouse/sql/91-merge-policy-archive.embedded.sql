-- Embedded only, like 90-merge-policy.embedded.sql, whose reasons hold here too: the archive
-- bronze tables that `k2 import` fills merge column by column in small blocks, with 64 KiB
-- compression buffers. They had ClickHouse's defaults (horizontal merges reading every column of
-- every part at once, 8,192 rows at a time, 1 MiB buffers per stream). At most 8 parts per merge,
-- as 90-*.sql gives the others. 10M-line import, 50,000-line chunks: 456 MB peak RSS without the
-- cap, 416 MB with it (ADR 0029).
ALTER TABLE k2.bronze_archive_binance_trades MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_archive_binance_agg_trades MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
ALTER TABLE k2.bronze_archive_kraken_timesales MODIFY SETTING merge_selector_base = 20, min_compress_block_size = 16384, max_compress_block_size = 65536,
    vertical_merge_algorithm_min_rows_to_activate = 1, vertical_merge_algorithm_min_columns_to_activate = 1,
    vertical_merge_algorithm_min_bytes_to_activate = 0, merge_max_block_size = 2048, max_parts_to_merge_at_once = 8;
