"""`k2 rebuild`: recompute silver and gold from bronze, deterministically.

Why: after a normalization rule changes (a silver view is edited), or to repair a damaged gold.
Bronze holds every trade as sent, so silver and gold can always be derived again.

How, per exchange, from the start of the UTC hour of --since (gold stores 1m and 1h states; 5m,
15m and 1d are read from them, so no stored window straddles an hour boundary):
  1. the exchange's silver rows and gold states from that hour on are deleted;
  2. for each of its bronze tables (the live one and the archive tables `k2 import` fills, whose
     rows are in the same silver), the rows from that hour on are moved to a staging table
     (`k2.rebuild_<bronze table>`) and inserted back into bronze one day at a time: the
     materialized views fire exactly as they did live and recompute silver and gold. The rows
     keep their ingestion metadata, so the result equals what live ingestion produced.
A staging table left behind by an interrupted rebuild is put back first, so nothing is lost.
"""

from __future__ import annotations

import sys

from k2.errors import K2Error
from k2.exchanges import ALL_ADAPTERS
from k2.exchanges.base import ExchangeAdapter
from k2.terminal import Progress
from k2.times import parse_time, to_microseconds

GOLD_TABLES = ("gold_ohlcv_1m", "gold_ohlcv_1h")
_HOUR_US = 3_600_000_000
#: every archive table that feeds silver has this column (ExchangeAdapter.archive_tables)
ARCHIVE_TIME_SQL = "fromUnixTimestamp64Micro(trade_time_us, 'UTC')"


def bronze_tables(adapter: ExchangeAdapter) -> list[tuple[str, str | None]]:
    """The bronze tables whose rows make `adapter`'s silver rows, each with the SQL giving a row's
    trade time (None: not known, the table is replayed whole)."""
    return [(adapter.bronze_table, adapter.bronze_time_sql),
            *((t, ARCHIVE_TIME_SQL) for t in adapter.archive_tables)]


def _hour_start_us(since: str | None) -> int:
    if not since:
        return 0
    return to_microseconds(parse_time(since, "--since", "")) // _HOUR_US * _HOUR_US


def _restore_leftovers(wh, table: str) -> int:
    staging = f"rebuild_{table}"
    if not int(wh.scalar("SELECT count() FROM system.tables WHERE database = 'k2' AND name = {t:String}",
                         {"t": staging})):
        return 0
    n = int(wh.scalar(f"SELECT count() FROM k2.{staging}"))
    wh.execute(f"INSERT INTO k2.{table} SETTINGS insert_deduplicate = 0 SELECT * FROM k2.{staging}")
    wh.execute(f"DROP TABLE k2.{staging}")
    return n


def rebuild(wh, exchanges: list[str], since: str | None = None, progress: bool = True,
            final_line: bool = False) -> dict[str, int]:
    """Recompute silver and gold for `exchanges` from the UTC hour of `since` on. Returns the
    number of bronze rows replayed per bronze table."""
    return rebuild_from_us(wh, exchanges, _hour_start_us(since), progress, final_line)


def rebuild_from_us(wh, exchanges: list[str], since_us: int, progress: bool = True,
                    final_line: bool = False) -> dict[str, int]:
    start_us = since_us // _HOUR_US * _HOUR_US
    replayed: dict[str, int] = {}
    for exchange in exchanges:
        adapters = [a for a in ALL_ADAPTERS if a.name == exchange]
        if not adapters:
            raise K2Error(f"unknown exchange {exchange!r}")
        tables = [t for a in adapters for t in bronze_tables(a)]
        for table, _ in tables:
            restored = _restore_leftovers(wh, table)
            if restored:
                print(f"{table}: put back {restored} rows left by an interrupted rebuild", file=sys.stderr)
        from_us = start_us
        if from_us and any(not time_sql for _, time_sql in tables):
            print(f"{exchange}: --since is not supported for all its bronze tables; rebuilding all of it",
                  file=sys.stderr)
            from_us = 0
        params = {"e": exchange, "t": from_us}
        bar = Progress(f"rebuild {exchange}", _rows_to_replay(wh, tables, from_us), "rows", enabled=progress,
                       final_line=final_line)
        bar.update(0, note="deleting silver")
        wh.execute("ALTER TABLE k2.silver_trades_v2 DELETE WHERE exchange = {e:String} "
                   "AND timestamp >= fromUnixTimestamp64Micro({t:Int64}, 'UTC') SETTINGS mutations_sync = 2", params)
        for table in GOLD_TABLES:
            bar.update(0, note=f"deleting {table}")
            wh.execute(f"ALTER TABLE k2.{table} DELETE WHERE exchange = {{e:String}} "
                       "AND window_start >= toDateTime(intDiv({t:Int64}, 1000000), 'UTC') SETTINGS mutations_sync = 2",
                       params)
        with bar:
            for table, time_sql in tables:
                replayed[table] = _replay(wh, table, time_sql, from_us, bar)
    return replayed


def _where(time_sql: str | None, from_us: int) -> tuple[str, str]:
    time_sql = time_sql or "toDateTime64(0, 6, 'UTC')"
    return time_sql, (f"{time_sql} >= fromUnixTimestamp64Micro({{t:Int64}}, 'UTC')" if from_us else "1")


def _rows_to_replay(wh, tables: list[tuple[str, str | None]], from_us: int) -> int:
    """The rows the replay will insert (the progress bar's total), counted before anything moves."""
    return sum(int(wh.scalar(f"SELECT count() FROM k2.{table} WHERE {_where(time_sql, from_us)[1]}",
                             {"t": from_us})) for table, time_sql in tables)


def _replay(wh, table: str, time_sql: str | None, from_us: int, bar: Progress) -> int:
    staging = f"rebuild_{table}"
    time_sql, where = _where(time_sql, from_us)
    params = {"t": from_us}
    done = bar.done
    bar.update(done, note=f"staging {table}")
    wh.execute(f"CREATE TABLE k2.{staging} AS k2.{table}")
    wh.execute(f"INSERT INTO k2.{staging} SETTINGS insert_deduplicate = 0 SELECT * FROM k2.{table} WHERE {where}", params)
    wh.execute(f"ALTER TABLE k2.{table} DELETE WHERE {where} SETTINGS mutations_sync = 2", params)
    days = [(int(d), int(n)) for d, n in wh.rows(
        f"SELECT toUnixTimestamp(toStartOfDay({time_sql})) AS d, count() FROM k2.{staging} GROUP BY d ORDER BY d")]
    total = sum(n for _, n in days)
    for i, (day, rows) in enumerate(days, 1):
        bar.update(done, note=f"{table} day {i}/{len(days)}")
        wh.execute(f"INSERT INTO k2.{table} SETTINGS insert_deduplicate = 0 SELECT * FROM k2.{staging} "
                   f"WHERE toUnixTimestamp(toStartOfDay({time_sql})) = {{d:Int64}}", {"d": day})
        done += rows
        bar.update(done)
    wh.execute(f"DROP TABLE k2.{staging}")
    return total
