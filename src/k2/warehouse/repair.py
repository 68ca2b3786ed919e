"""Damaged parts: found when the data dir opens, reported, and repaired from the layer that is intact.

ClickHouse checks every part when it opens a table; a part whose files are short or wrong (a disk
that filled up, a crash of the machine, a bad sector) is moved to `detached/` as `broken-on-start`
and the table opens without its rows. Nothing else says so: bronze is simply short. Bronze,
silver and gold hold the same trades three times, so one damaged layer is rebuilt from another:

  * bronze lost rows: silver keeps every bronze row's native fields (`vendor_data`) and ingestion
    metadata, so the missing rows are rebuilt from silver (queries/restore_<bronze table>.sql) into
    a staging table whose partitions are then ATTACHed to bronze. Attaching runs no materialized
    view, so silver and gold are not counted twice; and once bronze holds the rows again, its key
    check skips them in any reload (a file, REST, Kafka), so the exactly-once guarantee no longer
    rests on bronze alone being intact.
  * silver or gold lost rows: bronze is replayed into them (k2.warehouse.rebuild), from the month of
    the damaged silver partition, or for all of gold.
  * the archive tables that feed nothing (Binance aggTrades, Kraken's Time & Sales): the damaged
    month is imported again from the files the ledger (`archive_files`) lists, when every one of
    them is still at its path with its SHA-256; otherwise the damage stays unrepaired and reported
    until the files are back (k2.history.archives.rebuild_partition_from_files).
  * other tables (the gaps ledger, rejects, instruments): nothing to rebuild them from; reported.

`find_damage` lists what is damaged and not yet repaired (repairs are recorded in `k2.repairs`).
`repair` does the work; the writers (`k2 run`, `k2 sink`, `k2 load`) run it when they open the data
dir, the readers only report, and `k2 repair` runs it on demand (also `--check`: restore any bronze
row silver has and bronze lacks, damage found or not). A repair needs room to write: with less free
space than the writer's reserve it is deferred, and the data dir opens for reading.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from k2.exchanges import ALL_ADAPTERS
from k2.warehouse import stored_query

log = logging.getLogger("k2.warehouse")

#: detached-part reasons that mean lost rows (not `ignored`: an outdated part covered by a newer one)
BROKEN_REASONS = ("broken", "broken-on-start", "unexpected", "covered-by-broken", "noquorum", "broken-from-backup")
BRONZE_TABLES = {t: a for a in ALL_ADAPTERS for t in (a.bronze_table, *a.archive_tables)}
SILVER, GOLD = "silver_trades_v2", ("gold_ohlcv_1m", "gold_ohlcv_1h")
#: archive tables nothing else holds a copy of (aggTrades are not trades, ADR 0018; Kraken's Time &
#: Sales rows are for reconciliation only, ADR 0019): neither feeds silver, so a lost month of one
#: comes back only from the files `k2 import` read
WITNESS_TABLES = ("bronze_archive_binance_agg_trades", "bronze_archive_kraken_timesales")


@dataclass(frozen=True)
class Damage:
    table: str
    part: str
    partition_id: str
    reason: str

    @property
    def layer(self) -> str:
        if self.table in BRONZE_TABLES:
            return "bronze"
        if self.table == SILVER:
            return "silver"
        if self.table in WITNESS_TABLES:
            return "files"  # only the archive files hold these rows again
        return "gold" if self.table in GOLD else "other"

    def text(self) -> str:
        return f"{self.table}: part {self.part} ({self.reason}, partition {self.partition_id})"


def find_damage(wh) -> list[Damage]:
    """Detached parts of K2's tables that mean lost rows and were not repaired yet."""
    try:
        rows = wh.rows(stored_query("damaged_parts"))
    except Exception as exc:  # a server without the system table's columns: say so, do not fail
        log.warning("could not look for damaged parts: %s", str(exc).splitlines()[0][:200] if str(exc) else exc)
        return []
    return [Damage(*map(str, r)) for r in rows]


def report(damage: list[Damage]) -> str:
    return "; ".join(d.text() for d in damage)


# -- repairing --------------------------------------------------------------------------------------
def restore_bronze_from_silver(wh, bronze_table: str) -> int:
    """Rebuild the rows silver holds and `bronze_table` lacks, without running the views. Returns
    how many rows came back."""
    staging = f"repair_{bronze_table}"
    wh.execute(f"DROP TABLE IF EXISTS k2.{staging}")
    wh.execute(f"CREATE TABLE k2.{staging} AS k2.{bronze_table}")
    try:
        wh.execute(stored_query(f"restore_{bronze_table}"))
        parts = wh.rows("SELECT partition_id, sum(rows) FROM system.parts WHERE database = 'k2' AND table = {t:String} "
                        "AND active GROUP BY partition_id ORDER BY partition_id", {"t": staging})
        for partition_id, _ in parts:
            wh.execute(f"ALTER TABLE k2.{bronze_table} ATTACH PARTITION ID {{p:String}} FROM k2.{staging}",
                       {"p": partition_id})
        return sum(int(n) for _, n in parts)
    finally:
        wh.execute(f"DROP TABLE IF EXISTS k2.{staging}")


def _month_start_us(partition_id: str) -> int:
    """Silver is partitioned by toYYYYMM(timestamp): '202611' -> µs of 2026-11-01 00:00 UTC."""
    from datetime import datetime, timezone

    try:
        return int(datetime(int(partition_id[:4]), int(partition_id[4:6]), 1, tzinfo=timezone.utc).timestamp()) * 10**6
    except ValueError:
        return 0


def repair(wh, damage: list[Damage] | None = None, check_all_bronze: bool = False, progress: bool = False,
           also_rebuild: tuple[str, int] | None = None,
           rebuild_from_files: Callable[[object, str, str, str], tuple[bool, str]] | None = None) -> list[str]:
    """Repair `damage` (default: what `find_damage` finds) from the intact layers; with
    `check_all_bronze`, every bronze table gets back what silver holds and it lacks. Returns one
    line per action, and records the repaired parts in `k2.repairs`. `also_rebuild` (exchange,
    since µs: an insert a stop interrupted) joins the rebuild of silver and gold when there is one,
    so the repair at start replays bronze once, not twice. `rebuild_from_files` (wh, table,
    partition id, tag) -> (rebuilt, line): how a `WITNESS_TABLES` month comes back from its archive
    files (k2.history.archives, handed in by `k2 repair`); without it that damage stays on record."""
    from k2.warehouse.rebuild import rebuild_from_us

    damage = find_damage(wh) if damage is None else damage
    done: list[str] = []
    bronze = {d.table for d in damage if d.layer == "bronze"}
    if check_all_bronze:
        bronze |= set(BRONZE_TABLES)
    for table in sorted(bronze):
        n = restore_bronze_from_silver(wh, table)
        if n or table in {d.table for d in damage}:
            done.append(f"{table}: {n:,} rows restored from silver")
    # silver or gold: replay bronze (now complete) into them
    silver = [d for d in damage if d.layer == "silver"]
    gold = [d for d in damage if d.layer == "gold"]
    if silver or gold:
        since = 0 if gold else min(_month_start_us(d.partition_id) for d in silver)
        plan = {a.name: since for t, a in sorted(BRONZE_TABLES.items()) if int(wh.scalar(
            f"SELECT count() > 0 FROM k2.{t}") or 0)}
        if also_rebuild:
            plan[also_rebuild[0]] = min(plan.get(also_rebuild[0], also_rebuild[1]), also_rebuild[1])
        replayed = rebuild_from_us(wh, sorted(plan), plan, progress=progress)
        done.append(f"silver and gold rebuilt from bronze since {since} µs: "
                    + ", ".join(f"{t} {n:,} rows" for t, n in replayed.items()))
    # the archive tables nothing copies (aggTrades, Kraken's Time & Sales): from the files themselves
    not_rebuilt = set()
    for table, partition_id in sorted({(d.table, d.partition_id) for d in damage if d.layer == "files"}):
        if rebuild_from_files is None:
            ok, line = False, (f"{table}: partition {partition_id} not rebuilt at start (`k2 repair` imports it "
                               "again from its archive files)")
        else:
            ok, line = rebuild_from_files(wh, table, partition_id, f"{table}:{partition_id}")
        done.append(line)
        if not ok:
            not_rebuilt.add((table, partition_id))
    for d in damage:
        if (d.table, d.partition_id) in not_rebuilt:
            continue  # not on record as repaired: reported again, and rebuilt once the files are back
        if d.layer == "other":
            done.append(f"{d.table}: part {d.part} cannot be rebuilt from another table (its rows are lost)")
        wh.execute(stored_query("repair_record"),
                   {"table": d.table, "part": d.part, "reason": d.reason, "action": "; ".join(done)[:1000]})
    return done
