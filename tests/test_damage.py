"""Damaged parts and a full disk (issue 16): exactly-once must not rest on bronze alone.

A part whose file is cut short (a full disk, a crash of the machine) is detached by ClickHouse
when the data dir opens, and the table opens without its rows. These tests plant that damage in a
real part (truncate its column file), then check that K2 says so (log, `k2 status`, `k2 validate`),
that bronze comes back from silver without silver or gold counting anything twice -- also when the
same file is loaded again with the same or another batch size -- and that a damaged silver part is
rebuilt from bronze. A full disk leaves the data dir readable, with its repair deferred.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from faults.diskfull import DiskFull
from fixtures import k2db
from k2.exchanges import ALL_ADAPTERS
from k2.history.archives import import_archives, rebuild_partition_from_files
from k2.history.load import load_file
from k2.simulator.history import BinanceHistory, day_start_us, write_archives
from k2.warehouse.rebuild import rebuild
from k2.warehouse.repair import BROKEN_REASONS, restore_bronze_from_silver
from kafka_broker import Procs, procs, wait_for  # noqa: F401 - fixtures

FIXTURES = Path(__file__).resolve().parent / "fixtures"
COUNTS = ("SELECT (SELECT count() FROM k2.bronze_trades_binance) AS bronze, (SELECT count() FROM k2.silver_trades_v2) "
          "AS silver, (SELECT sum(trade_count_agg) FROM k2.gold_ohlcv_1m) AS gold, "
          "(SELECT sum(trade_count_agg) FROM k2.gold_ohlcv_1h) AS gold_1h")


def _session(adapter) -> Path:
    return FIXTURES / f"{adapter.bronze_table.removeprefix('bronze_trades_')}_session.jsonl"


# -- bronze rebuilt from silver, venue by venue ---------------------------------------------------------
@pytest.mark.parametrize("adapter", ALL_ADAPTERS, ids=lambda a: a.bronze_table)
def test_bronze_rebuilt_from_silver_is_the_bronze_that_was_lost(clean_warehouse, adapter):
    wh = clean_warehouse
    report = load_file(wh, adapter, _session(adapter))
    assert report.written > 0
    # another venue's trades beside them in silver (whose vendor_data has other keys)
    other = next(a for a in ALL_ADAPTERS if a.name != adapter.name)
    assert load_file(wh, other, _session(other)).written > 0
    table = adapter.bronze_table
    columns = [r[0] for r in wh.rows("SELECT name FROM system.columns WHERE database = 'k2' AND table = {t:String} "
                                     "AND name != 'batch_id' ORDER BY position", {"t": table})]
    select = f"SELECT {', '.join(f'toString({c})' for c in columns)} FROM k2.{table} ORDER BY tuple(*)"
    before, silver = wh.rows(select), k2db.snapshot(wh, "silver_trades_v2")
    assert len(silver) > len(before)
    wh.execute(f"TRUNCATE TABLE k2.{table}")  # every bronze row lost; silver and gold intact
    assert restore_bronze_from_silver(wh, table) == len(before)
    assert wh.rows(select) == before  # every native field and the ingestion metadata, exactly
    assert k2db.snapshot(wh, "silver_trades_v2") == silver  # no view ran: nothing counted twice
    assert restore_bronze_from_silver(wh, table) == 0  # nothing left to restore


def _imported_and_live(wh, tmp_path) -> None:
    """Binance trades of March 2024 from archive files (k2 import) and live ones from a session file."""
    past = BinanceHistory(7, "BTCUSDT", "BTC", "USDT", 5_000_000, day_start_us("2024-03-31"), 4, 200)
    report = import_archives(wh, write_archives(past, tmp_path / "daily", ("trades",)), "binance")
    assert sum(f.loaded for f in report.files) > 0
    adapter = next(a for a in ALL_ADAPTERS if a.name == "binance")
    assert load_file(wh, adapter, _session(adapter)).written > 0


def test_bronze_rebuilt_from_silver_includes_the_archive_tables(clean_warehouse, tmp_path):
    wh = clean_warehouse
    _imported_and_live(wh, tmp_path)
    for table in next(a for a in ALL_ADAPTERS if a.name == "binance").archive_tables:
        columns = [r[0] for r in wh.rows("SELECT name FROM system.columns WHERE database = 'k2' AND table = {t:String} "
                                         "AND name != 'batch_id' AND default_kind != 'ALIAS' ORDER BY position",
                                         {"t": table})]
        select = f"SELECT {', '.join(f'toString({c})' for c in columns)} FROM k2.{table} ORDER BY tuple(*)"
        before, silver = wh.rows(select), k2db.snapshot(wh, "silver_trades_v2")
        assert before
        wh.execute(f"TRUNCATE TABLE k2.{table}")
        assert restore_bronze_from_silver(wh, table) == len(before)
        assert wh.rows(select) == before  # every column as the file had it, its name and line too
        assert k2db.snapshot(wh, "silver_trades_v2") == silver


@pytest.mark.parametrize("since", [None, "2024-03-29T00:00:00Z"], ids=["all", "since"])
def test_rebuild_replays_the_archive_tables_too(clean_warehouse, tmp_path, since):
    """k2 rebuild deletes a venue's silver and gold and replays its bronze: the trades k2 import
    brought (bronze_archive_*) are that venue's silver rows as much as the live ones."""
    wh = clean_warehouse
    _imported_and_live(wh, tmp_path)
    silver = k2db.snapshot(wh, "silver_trades_v2")
    gold = {t: k2db.read_candles(wh, t, cross=False) for t in ("1m", "1h")}
    assert {r for r in (str(x) for row in silver for x in row)} >= {"bronze_archive_binance_trades",
                                                                   "bronze_trades_binance"}
    replayed = rebuild(wh, ["binance"], since, progress=False)
    assert replayed["bronze_archive_binance_trades"] > 0
    assert k2db.snapshot(wh, "silver_trades_v2") == silver
    assert {t: k2db.read_candles(wh, t, cross=False) for t in ("1m", "1h")} == gold


def test_the_reasons_that_mean_lost_rows_are_the_same_in_python_and_sql():
    sql = {name: (Path(__file__).resolve().parent.parent / "src" / "k2" / path).read_text()
           for name, path in (("query", "warehouse/queries/damaged_parts.sql"),
                              ("check", "quality/checks/90-storage.sql"))}
    for text in sql.values():
        assert all(f"'{r}'" in text for r in BROKEN_REASONS)
        assert "'ignored'" not in text


# -- planting damage in a real part ------------------------------------------------------------------------
def _frames(path: Path, first: int, n: int) -> Path:
    t0 = 1_784_116_800_000
    with path.open("w") as f:
        for tid in range(first, first + n):
            f.write(json.dumps({"stream": "btcusdt@trade", "data": {
                "e": "trade", "E": t0 + tid * 7, "s": "BTCUSDT", "t": tid, "p": f"{97000 + tid % 100}.01000000",
                "q": "0.00100000", "T": t0 + tid * 7, "m": bool(tid % 2), "M": True}}) + "\n")
    return path


def _truncate_a_part(procs: Procs, data: Path, table: str, newest: bool = True) -> str:  # noqa: F811
    """Cut a column file of one active part of `table` to half its size (as a full disk or a crash
    of the machine leaves it). Returns the part's name."""
    parts = procs.query(data, f"SELECT name, path FROM system.parts WHERE database = 'k2' AND table = '{table}' "
                              "AND active ORDER BY name")
    part = parts[-1 if newest else 0]
    column_file = sorted(Path(part["path"]).glob("*.bin"))[0]
    with column_file.open("r+b") as f:
        f.truncate(column_file.stat().st_size // 2)
    return part["name"]


def _counts(procs: Procs, data: Path) -> dict:  # noqa: F811
    return {k: int(v) for k, v in procs.query(data, COUNTS)[0].items()}


@pytest.fixture
def damaged(procs, tmp_path) -> tuple[Path, Path]:  # noqa: F811
    """A data dir holding 2 x 4,000 Binance trades loaded from two files, whose newer bronze part
    has a column file cut in half; and the second file."""
    data, a, b = tmp_path / "data", _frames(tmp_path / "a.jsonl", 1, 4000), _frames(tmp_path / "b.jsonl", 4001, 4000)
    for f in (a, b):
        assert procs.run("load", str(f), "--exchange", "binance", "--data-dir", str(data)).returncode == 0
    assert _counts(procs, data) == {"bronze": 8000, "silver": 8000, "gold": 8000, "gold_1h": 8000}
    _truncate_a_part(procs, data, "bronze_trades_binance")
    return data, b


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", ["100000", "777"], ids=["same-batches", "other-batches"])
def test_a_reload_after_a_bronze_part_was_lost_restores_bronze_and_counts_nothing_twice(procs, damaged, batch_size):  # noqa: F811
    data, second_file = damaged
    status = procs.run("status", "--data-dir", str(data))
    assert "DAMAGED bronze_trades_binance: part broken-on-start_" in status.stdout, status.stdout
    check = procs.run("validate", "--data-dir", str(data))
    assert check.returncode == 1 and "FAIL  storage.damaged_parts" in check.stdout
    assert "FAIL  silver.complete [bronze_trades_binance]" in check.stdout  # bronze 4000, silver 8000

    loaded = procs.run("load", str(second_file), "--exchange", "binance", "--batch-size", batch_size,
                       "--data-dir", str(data))
    assert loaded.returncode == 0, loaded.stderr
    assert "(0 new, 4000 already stored)" in loaded.stdout, loaded.stdout  # the count is what was stored
    assert "4,000 rows restored from silver" in loaded.stderr
    assert _counts(procs, data) == {"bronze": 8000, "silver": 8000, "gold": 8000, "gold_1h": 8000}
    check = procs.run("validate", "--data-dir", str(data))
    assert check.returncode == 0, check.stdout[-2500:]
    assert procs.run("status", "--data-dir", str(data)).stdout.count("DAMAGED") == 0


@pytest.mark.slow
def test_k2_repair_rebuilds_a_damaged_silver_part_from_bronze(procs, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    for i, f in enumerate((_frames(tmp_path / "a.jsonl", 1, 3000), _frames(tmp_path / "b.jsonl", 3001, 3000))):
        assert procs.run("load", str(f), "--exchange", "binance", "--data-dir", str(data)).returncode == 0
    _truncate_a_part(procs, data, "silver_trades_v2", newest=False)
    assert _counts(procs, data)["silver"] == 3000
    repaired = procs.run("repair", "--data-dir", str(data))
    assert repaired.returncode == 0, repaired.stderr
    assert "silver and gold rebuilt from bronze" in repaired.stdout, repaired.stdout
    assert _counts(procs, data) == {"bronze": 6000, "silver": 6000, "gold": 6000, "gold_1h": 6000}
    assert procs.run("validate", "--data-dir", str(data)).returncode == 0
    assert procs.run("repair", "--data-dir", str(data)).stdout.strip() == "nothing to repair"


# -- archive tables nothing else copies: rebuilt from the files -------------------------------------------
AGG = ("SELECT symbol, agg_id, price, qty, first_trade_id, last_trade_id, time, time_unit, is_buyer_maker, "
       "is_best_match, archive_file, line_no, batch_id FROM k2.bronze_archive_binance_agg_trades ORDER BY agg_id")


def _member_lines(archive: Path) -> list[str]:
    with zipfile.ZipFile(archive) as z:
        return z.read(z.namelist()[0]).decode().splitlines(keepends=True)


def test_a_lost_part_of_agg_trades_comes_back_from_the_files_once_they_are_all_there(procs, tmp_path):  # noqa: F811
    """Binance aggTrades feed nothing (not trades): a damaged part can only come back from the files
    `k2 import` read. Every file of that month must be there, unchanged; until then the damage is
    said, `k2 repair` exits 1 and keeps it on record."""
    data = tmp_path / "data"
    past = BinanceHistory(7, "BTCUSDT", "BTC", "USDT", 5_000_000, day_start_us("2024-03-31"), 4, 300)
    files = write_archives(past, tmp_path / "daily", ("aggTrades",))
    # one file as extracted CSV with a corrupt line in the middle: its reject is not stored twice
    lines = _member_lines(files[0])
    csv = files[0].with_suffix(".csv")
    csv.write_text("".join(lines[:50] + ["1,2,3\n"] + lines[50:]))
    files[0].unlink()
    files = [csv, *files[1:]]
    res = procs.run("import", *map(str, files), "--exchange", "binance", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    before = procs.query(data, AGG)
    rejects = procs.query(data, "SELECT origin, raw FROM k2.rejects ORDER BY origin")
    expected = len(lines) + sum(len(_member_lines(f)) for f in files[1:])
    assert len(before) == expected and len(rejects) == 1, (len(before), expected, rejects)
    _truncate_a_part(procs, data, "bronze_archive_binance_agg_trades")
    assert len(procs.query(data, AGG)) < len(before)
    # a writer at start (here k2 import, with nothing new to import) says so and goes on: reading
    # archive files again is `k2 repair`'s job, not a start-up one
    res = procs.run("import", *map(str, files), "--exchange", "binance", "--data-dir", str(data))
    assert res.returncode == 0 and "not rebuilt at start" in res.stderr, res.stderr
    assert len(procs.query(data, AGG)) < len(before)
    # a file of that month gone: not rebuilt, said, exit 1, and reported again next time
    away = files[-1].rename(tmp_path / files[-1].name)
    for _ in range(2):
        res = procs.run("repair", "--data-dir", str(data))
        assert res.returncode == 1 and "not rebuilt" in res.stdout and files[-1].name in res.stdout, res.stdout
    assert len(procs.query(data, AGG)) < len(before)
    away.rename(files[-1])
    res = procs.run("repair", "--data-dir", str(data))
    assert res.returncode == 0 and f"rebuilt from {len(files)} archive file(s): {len(before):,} rows" in res.stdout, \
        res.stdout + res.stderr
    assert procs.query(data, AGG) == before  # every row as the files had it, once
    assert procs.query(data, "SELECT origin, raw FROM k2.rejects ORDER BY origin") == rejects
    assert procs.run("repair", "--data-dir", str(data)).stdout.strip() == "nothing to repair"
    # the ledger still says the files are done: importing them again changes nothing
    res = procs.run("import", *map(str, files), "--exchange", "binance", "--data-dir", str(data))
    assert res.returncode == 0 and procs.query(data, AGG) == before


def test_a_kraken_time_and_sales_month_is_rebuilt_from_its_file_and_only_that_month(clean_warehouse, tmp_path):
    wh = clean_warehouse
    path = tmp_path / "XBTUSD.csv"
    rows = [f"{1709251200 + i * 3600},{70000 + i}.1,0.{i + 1:03d}" for i in range(24 * 45)]  # March and April 2024
    # a corrupt line of March itself: the rebuild reads March's good lines only, so no reject twice
    path.write_text("\n".join(rows[:10] + ["1709287205,1,x"] + rows[10:]) + "\n")
    assert import_archives(wh, [path], "kraken").files[0].loaded == len(rows)
    select = ("SELECT pair, time, price, volume, archive_file, line_no, batch_id FROM k2.bronze_archive_kraken_timesales "
              "ORDER BY time")
    before, rejects = wh.rows(select), wh.rows("SELECT origin, raw FROM k2.rejects ORDER BY origin")
    wh.execute("ALTER TABLE k2.bronze_archive_kraken_timesales DELETE WHERE toYYYYMM(toDateTime(time, 'UTC')) = 202403 "
               "AND time % 7200 = 0 SETTINGS mutations_sync = 1")
    april = wh.rows("SELECT name FROM system.parts WHERE database = 'k2' AND table = 'bronze_archive_kraken_timesales' "
                    "AND active AND partition_id = '202404'")
    assert len(wh.rows(select)) < len(before)
    ok, line = rebuild_partition_from_files(wh, "bronze_archive_kraken_timesales", "202403", "t")
    assert ok and "rebuilt from 1 archive file(s): 744 rows" in line, line
    assert wh.rows(select) == before
    assert wh.rows("SELECT origin, raw FROM k2.rejects ORDER BY origin") == rejects
    # April was not touched: the same parts
    assert wh.rows("SELECT name FROM system.parts WHERE database = 'k2' AND table = 'bronze_archive_kraken_timesales' "
                   "AND active AND partition_id = '202404'") == april
    path.write_text("1709251200,1,1\n")  # the file changed since: refused, nothing dropped
    ok, line = rebuild_partition_from_files(wh, "bronze_archive_kraken_timesales", "202403", "t2")
    assert not ok and "SHA-256 changed" in line and wh.rows(select) == before
    # no file of that month in the ledger: refused rather than emptying the month
    ok, line = rebuild_partition_from_files(wh, "bronze_archive_binance_agg_trades", "202403", "t3")
    assert not ok and "no imported file of that month" in line, line


# -- a full disk ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_full_disk_leaves_the_data_dir_readable_and_the_repair_waits_for_space(procs, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    assert procs.run("load", str(_frames(tmp_path / "a.jsonl", 1, 2000)), "--exchange", "binance",
                     "--data-dir", str(data)).returncode == 0
    # the last run stopped in the middle of an insert: its repair replays bronze into silver and gold
    (data / "inflight.json").write_text(json.dumps({"bronze_table": "bronze_trades_binance", "token": "t",
                                                    "first_time_us": 1_784_116_800_000_000}))
    disk = DiskFull(data, tmp_path)
    procs.env.update(disk.env(procs.env))
    disk.fill()
    try:
        read = procs.run("query", "SELECT count() AS n FROM k2.silver_trades_v2", "--format", "json",
                         "--data-dir", str(data))
        assert read.returncode == 0 and json.loads(read.stdout)["n"] in (2000, "2000"), read.stderr
        assert "repair deferred" in read.stderr
        assert (data / "inflight.json").exists()  # still to do
        write = procs.run("load", str(_frames(tmp_path / "b.jsonl", 2001, 10)), "--exchange", "binance",
                          "--data-dir", str(data))
        assert write.returncode == 2 and write.stderr.strip().splitlines()[-1].startswith("k2: error: cannot repair"), \
            write.stderr
    finally:
        disk.free()
    read = procs.run("query", "SELECT count() AS n FROM k2.silver_trades_v2", "--format", "json", "--data-dir", str(data))
    assert read.returncode == 0 and not (data / "inflight.json").exists()  # repaired once there was room
    assert _counts(procs, data) == {"bronze": 2000, "silver": 2000, "gold": 2000, "gold_1h": 2000}
    shutil.rmtree(tmp_path / "state", ignore_errors=True)
