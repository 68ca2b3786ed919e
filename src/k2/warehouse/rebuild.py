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


def rebuild_from_us(wh, exchanges: list[str], since_us: int | dict[str, int], progress: bool = True,
                    final_line: bool = False) -> dict[str, int]:
    """Recompute silver and gold for `exchanges` from the UTC hour of `since_us` (one time for all,
    or one per exchange) on. Every delete is issued first and waited for together: ClickHouse
    mutates a table's parts one at a time with a pause between them (~0.13 s a part in chDB, CPU
    ~0), so one delete after another cost ~5 s per table of 30 parts and a repair at start ran
    past a minute; side by side they cost about as much as the slowest one."""
    replayed: dict[str, int] = {}
    plan: list[tuple[str, list[tuple[str, str | None]], int]] = []
    for exchange in exchanges:
        adapters = [a for a in ALL_ADAPTERS if a.name == exchange]
        if not adapters:
            raise K2Error(f"unknown exchange {exchange!r}")
        tables = [t for a in adapters for t in bronze_tables(a)]
        for table, _ in tables:
            restored = _restore_leftovers(wh, table)
            if restored:
                print(f"{table}: put back {restored} rows left by an interrupted rebuild", file=sys.stderr)
        since = since_us.get(exchange, 0) if isinstance(since_us, dict) else since_us
        from_us = since // _HOUR_US * _HOUR_US
        if from_us and any(not time_sql for _, time_sql in tables):
            print(f"{exchange}: --since is not supported for all its bronze tables; rebuilding all of it",
                  file=sys.stderr)
            from_us = 0
        plan.append((exchange, tables, from_us))
    bar = Progress(f"rebuild {','.join(exchanges)}", sum(_rows_to_replay(wh, t, f) for _, t, f in plan), "rows",
                   enabled=progress, final_line=final_line)
    with bar:
        bar.update(0, note="deleting silver and gold")
        deletes = MutationWait(wh)
        for exchange, _, from_us in plan:
            params = {"e": exchange, "t": from_us}
            deletes.issue("silver_trades_v2", "ALTER TABLE k2.silver_trades_v2 DELETE WHERE exchange = {e:String} "
                          "AND timestamp >= fromUnixTimestamp64Micro({t:Int64}, 'UTC')", params)
            for table in GOLD_TABLES:
                deletes.issue(table, f"ALTER TABLE k2.{table} DELETE WHERE exchange = {{e:String}} "
                              "AND window_start >= toDateTime(intDiv({t:Int64}, 1000000), 'UTC')", params)
        staged: list[tuple[str, str | None]] = []
        for _, tables, from_us in plan:
            for table, time_sql in tables:
                bar.update(0, note=f"staging {table}")
                _stage(wh, table, time_sql, from_us, deletes)  # the copy, then at once its delete
                staged.append((table, time_sql))
        bar.update(0, note="waiting for the deletes")
        deletes.wait()
        for table, time_sql in staged:
            replayed[table] = _replay(wh, table, time_sql, bar)
    return replayed


class MutationWait:
    """ALTER ... DELETEs issued without waiting (mutations_sync = 0), then waited for together.
    Like mutations_sync = 2, a delete that fails is an error at once (a full disk, say); it stays
    queued in ClickHouse and is retried there, as a synchronous one would be."""

    POLL_S = 0.05

    def __init__(self, wh):
        self.wh = wh
        self.tables: set[str] = set()
        self._before = self._ids()

    def _ids(self) -> set[tuple[str, str]]:
        return {(str(t), str(m)) for t, m in self.wh.rows(
            "SELECT table, mutation_id FROM system.mutations WHERE database = 'k2'")}

    def issue(self, table: str, sql: str, params: dict | None = None) -> None:
        self.wh.execute(sql + " SETTINGS mutations_sync = 0", params)
        self.tables.add(table)

    def wait(self) -> None:
        import time

        if not self.tables:
            return
        while True:
            pending = [(str(t), str(m), str(reason)) for t, m, reason in self.wh.rows(
                "SELECT table, mutation_id, latest_fail_reason FROM system.mutations "
                "WHERE database = 'k2' AND has(splitByChar(',', {t:String}), table) AND NOT is_done",
                {"t": ",".join(sorted(self.tables))})
                if (str(t), str(m)) not in self._before]
            if not pending:
                return
            failed = next((p for p in pending if p[2]), None)
            if failed:
                raise K2Error(f"deleting from k2.{failed[0]} failed: {failed[2].splitlines()[0][:300]}")
            time.sleep(self.POLL_S)


def _where(time_sql: str | None, from_us: int) -> tuple[str, str]:
    time_sql = time_sql or "toDateTime64(0, 6, 'UTC')"
    return time_sql, (f"{time_sql} >= fromUnixTimestamp64Micro({{t:Int64}}, 'UTC')" if from_us else "1")


def _rows_to_replay(wh, tables: list[tuple[str, str | None]], from_us: int) -> int:
    """The rows the replay will insert (the progress bar's total), counted before anything moves."""
    return sum(int(wh.scalar(f"SELECT count() FROM k2.{table} WHERE {_where(time_sql, from_us)[1]}",
                             {"t": from_us})) for table, time_sql in tables)


def _stage(wh, table: str, time_sql: str | None, from_us: int, deletes: MutationWait) -> None:
    """Copy `table`'s rows from `from_us` on to its staging table and issue their delete right
    after: once issued, a delete survives a crash, and the next rebuild puts the staging rows back
    into a bronze that no longer holds them."""
    staging = f"rebuild_{table}"
    where = _where(time_sql, from_us)[1]
    wh.execute(f"CREATE TABLE k2.{staging} AS k2.{table}")
    wh.execute(f"INSERT INTO k2.{staging} SETTINGS insert_deduplicate = 0 SELECT * FROM k2.{table} WHERE {where}",
               {"t": from_us})
    deletes.issue(table, f"ALTER TABLE k2.{table} DELETE WHERE {where}", {"t": from_us})


def _replay(wh, table: str, time_sql: str | None, bar: Progress) -> int:
    """Insert the staged rows back into bronze one day at a time: the views recompute silver and gold."""
    staging = f"rebuild_{table}"
    time_sql = _where(time_sql, 0)[0]
    done = bar.done
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
