"""`k2 export`: Parquet that pyarrow.dataset, polars and duckdb read back equal to the warehouse,
partitioned by exchange and day, exact types; re-exports are idempotent, resumable and atomic.

The warehouse is `history_dir` (three days of Binance and Kraken trades). Exports run as the
`k2` command in a subprocess; the reference rows come from the warehouse through the Python API.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

import k2
from k2.read.api import _close_held_engine


@pytest.fixture(scope="module", autouse=True)
def give_up_the_engine():
    _close_held_engine()
    yield
    _close_held_engine()


def reference(history_dir, sql: str) -> pa.Table:
    with k2.connect(history_dir, keep_open_s=0) as db:
        return db.query(sql)


def run_export(k2_cli, history_dir, out: Path, *args) -> str:
    _close_held_engine()  # the export opens the data dir itself
    r = k2_cli("export", "--out", out, "--data-dir", history_dir, *args, timeout=300)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def sorted_rows(table: pa.Table, keys: list[str]) -> list[dict]:
    return table.sort_by([(k, "ascending") for k in keys]).to_pylist()


SILVER_COLUMNS = ("exchange, trade_id, toString(canonical_symbol) AS canonical_symbol, price, quantity, "
                  "toString(side) AS side, timestamp, vendor_data, is_valid")


@pytest.fixture(scope="module")
def silver_export(k2_cli, history_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export")
    run_export(k2_cli, history_dir, out, "--layer", "silver")
    return out


def test_silver_reads_back_equal_with_pyarrow_polars_and_duckdb(silver_export, history_dir):
    root = silver_export / "silver" / "trades"
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet"))
    assert files == [f"exchange={ex}/date=2026-07-{d}/data.parquet" for ex in ("binance", "kraken") for d in (15, 16, 17)]
    want = sorted_rows(reference(history_dir, f"SELECT {SILVER_COLUMNS} FROM silver_trades_v2"), ["exchange", "trade_id"])
    assert len(want) == 3 * 1440 * 2 + 3 * 960

    got = ds.dataset(root, partitioning="hive").to_table()
    assert str(got.schema.field("price").type) == "decimal128(38, 18)"
    assert str(got.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    got = got.select(["exchange", "trade_id", "canonical_symbol", "price", "quantity", "side", "timestamp",
                      "vendor_data", "is_valid"])
    assert sorted_rows(got, ["exchange", "trade_id"]) == want

    pl = pytest.importorskip("polars")
    frame = pl.read_parquet(str(root / "**" / "*.parquet"), hive_partitioning=True)
    assert str(frame.schema["price"]) == "Decimal(precision=38, scale=18)"
    assert sorted(zip(frame["exchange"].to_list(), frame["trade_id"].to_list(), frame["price"].to_list())) == \
        [(w["exchange"], w["trade_id"], w["price"]) for w in want]

    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(f"SELECT exchange, trade_id, price, quantity, side FROM read_parquet('{root}/**/*.parquet', "
                      "hive_partitioning = true) ORDER BY exchange, trade_id").fetchall()
    assert rows == [(w["exchange"], w["trade_id"], w["price"], w["quantity"], w["side"]) for w in want]
    assert isinstance(rows[0][2], Decimal)


def test_files_are_zstd_with_sized_row_groups(silver_export):
    meta = pq.read_metadata(next((silver_export / "silver").rglob("*.parquet")))
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.num_rows == sum(meta.row_group(i).num_rows for i in range(meta.num_row_groups))


def test_reexport_is_idempotent_and_resumable(silver_export, k2_cli, history_dir):
    root = silver_export / "silver" / "trades"
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")}
    log = run_export(k2_cli, history_dir, silver_export, "--layer", "silver")
    assert "6 of 6 partitions already up to date" in log
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*.parquet")} == stamps
    gone = root / "exchange=kraken" / "date=2026-07-16" / "data.parquet"
    gone.unlink()
    log = run_export(k2_cli, history_dir, silver_export, "--layer", "silver")
    assert "1 partition files" in log and "5 of 6 partitions already up to date" in log
    assert pq.read_metadata(gone).num_rows == 960
    assert not list(root.rglob(".data.parquet.tmp-*"))


def _export_here(history_dir, out: Path, **kw):
    """export() in this process (the engine writes when writer="engine" or "auto")."""
    from k2.read import export as export_mod
    from k2.read.remote import open_reader

    _close_held_engine()
    reader = open_reader(history_dir)
    try:
        return export_mod.export(reader, out, **kw)
    finally:
        reader.close()


def _fail_pyarrow_midway(monkeypatch):
    real = pq.ParquetWriter.write_table

    def fail_midway(self, table, *a, **kw):
        real(self, table, *a, **kw)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", fail_midway)
    return OSError, "disk full"


def _fail_engine_midway(monkeypatch):
    """A real failure of the engine's statement while it writes: a row past the first row group throws."""
    from k2.errors import QueryError
    from k2.read import export as export_mod

    real = export_mod.select_sql

    def failing(src, columns, **kw):
        sql = real(src, columns, **kw)
        return sql.replace("SELECT ", "SELECT throwIf(rowNumberInAllBlocks() >= 1000, 'broke midway (simulated)') "
                                      "AS k2_test_fail, ", 1)

    monkeypatch.setattr(export_mod, "select_sql", failing)
    return QueryError, "broke midway"


def _fail_engine_after_writing(monkeypatch):
    """The engine wrote the whole temporary file; the export fails before renaming it."""
    def no_fsync(fd):
        raise OSError("fsync failed (simulated)")

    monkeypatch.setattr(os, "fsync", no_fsync)
    return OSError, "fsync failed"


@pytest.mark.parametrize("writer, fail", [("pyarrow", _fail_pyarrow_midway), ("engine", _fail_engine_midway),
                                          ("engine", _fail_engine_after_writing)])
def test_an_interrupted_export_leaves_the_old_file_whole(silver_export, history_dir, monkeypatch, writer, fail):
    target = silver_export / "silver" / "trades" / "exchange=binance" / "date=2026-07-15" / "data.parquet"
    before = target.read_bytes()
    error, message = fail(monkeypatch)
    with pytest.raises(error, match=message):
        _export_here(history_dir, silver_export, layer="silver", exchanges=["binance"], since="2026-07-15",
                     until="2026-07-16", force=True, row_group_rows=500, writer=writer)
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert not list(target.parent.glob(".data.parquet.tmp-*"))
    assert not (target.parent / "_k2_export.json").exists()  # the old manifest went first: the day is redone
    report = _export_here(history_dir, silver_export, layer="silver", exchanges=["binance"], since="2026-07-15",
                          until="2026-07-16")
    assert report.written == 1 and pq.read_metadata(target).num_rows == 2 * 1440


def test_the_engine_and_pyarrow_write_the_same_schema_and_rows(history_dir, tmp_path):
    """The engine's Parquet (local export) and pyarrow's (export through `k2 run`) are the same files
    to a reader: every layer, field by field (types, nullability, map/list shapes) and row by row."""
    day = {"since": "2026-07-16", "until": "2026-07-17"}
    for layer, kw in (("silver", day), ("gold", {"interval": "1h", **day}), ("bronze", {"exchanges": ["kraken"]})):
        got = {}
        for writer in ("engine", "pyarrow"):
            out = tmp_path / writer
            _export_here(history_dir, out, layer=layer, writer=writer, **kw)
            files = sorted(p for p in (out / layer).rglob("data.parquet"))
            assert files, (layer, writer)
            got[writer] = [(f.relative_to(out), pq.read_table(f)) for f in files]
        assert [f for f, _ in got["engine"]] == [f for f, _ in got["pyarrow"]]
        for (f, a), (_, b) in zip(got["engine"], got["pyarrow"]):
            assert a.schema.remove_metadata() == b.schema.remove_metadata(), f
            if layer == "silver":  # the engine writes each stored part's sorted run (see the test below)
                a = a.sort_by([("canonical_symbol", "ascending"), ("timestamp", "ascending"), ("trade_id", "ascending")])
            assert a.equals(b.replace_schema_metadata(None).cast(a.schema)), f
    silver = pq.read_schema(next((tmp_path / "engine" / "silver").rglob("data.parquet")))
    assert str(silver.field("price").type) == "decimal128(38, 18)"
    assert str(silver.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert str(silver.field("side").type) == "string"
    assert str(silver.field("vendor_data").type) == "map<string, string ('vendor_data')>"


def test_a_manifest_vouches_only_for_its_own_file(history_dir, tmp_path):
    kw = dict(layer="silver", exchanges=["kraken"], since="2026-07-15", until="2026-07-16")
    _export_here(history_dir, tmp_path, **kw)
    part = tmp_path / "silver" / "trades" / "exchange=kraken" / "date=2026-07-15"
    import json

    manifest = json.loads((part / "_k2_export.json").read_text())
    assert manifest["rows"] == 960 and manifest["bytes"] == (part / "data.parquet").stat().st_size
    assert _export_here(history_dir, tmp_path, **kw).skipped == 1
    # another file of the same rows put in its place (say, rewritten by hand): not trusted, redone
    table = pq.read_table(part / "data.parquet")
    pq.write_table(table, part / "data.parquet", compression="snappy")
    assert _export_here(history_dir, tmp_path, **kw).written == 1
    # other filters than the manifest's: redone
    assert _export_here(history_dir, tmp_path, **kw, symbols=["XBT/USD"]).written == 1
    # a file of an earlier K2 (the filters in its own metadata, no manifest) is still up to date
    from k2.read.export import _up_to_date

    filt = {"layer": "silver", "symbols": [], "since": "2026-07-15 00:00:00.000000",
            "until": "2026-07-16 00:00:00.000000", "interval": None}
    _export_here(history_dir, tmp_path, **kw)
    assert _up_to_date(part / "data.parquet", 960, filt)
    (part / "_k2_export.json").unlink()
    legacy = pq.read_table(part / "data.parquet")
    pq.write_table(legacy.replace_schema_metadata({"k2.export": json.dumps({"filter": filt})}), part / "data.parquet")
    assert _up_to_date(part / "data.parquet", 960, filt)
    assert not _up_to_date(part / "data.parquet", 961, filt)
    assert _export_here(history_dir, tmp_path, **kw).skipped == 1


def test_the_manifest_hides_from_readers(silver_export):
    root = silver_export / "silver" / "trades"
    assert len(list(root.rglob("_k2_export.json"))) == 6
    assert ds.dataset(root, partitioning="hive").files == sorted(str(p) for p in root.rglob("data.parquet"))


def test_gold_and_bronze_and_filters(k2_cli, history_dir, tmp_path):
    run_export(k2_cli, history_dir, tmp_path, "--layer", "gold", "--interval", "1h", "--symbols", "BTC/USDT,XBT/USD",
               "--since", "2026-07-16")
    gold = ds.dataset(tmp_path / "gold" / "ohlcv_1h", partitioning="hive").to_table()
    want = reference(history_dir, "SELECT exchange, toString(canonical_symbol) AS s, "
                                  "toDateTime64(window_start, 0, 'UTC') AS window_start, close_price, "
                                  "toDecimal128(quote_volume, 18) AS qv FROM ohlcv_1h WHERE window_start >= "
                                  "'2026-07-16' AND canonical_symbol IN ('BTC/USDT', 'BTC/USD')")
    assert gold.num_rows == want.num_rows == 2 * 48
    assert str(gold.schema.field("window_start").type) == "timestamp[ms, tz=UTC]"  # Parquet's coarsest unit
    assert str(gold.schema.field("quote_volume").type) == "decimal128(38, 18)"
    got = {(r["exchange"], r["canonical_symbol"], r["window_start"]): (r["close_price"], r["quote_volume"])
           for r in gold.to_pylist()}
    assert got == {(r["exchange"], r["s"], r["window_start"]): (r["close_price"], r["qv"]) for r in want.to_pylist()}

    run_export(k2_cli, history_dir, tmp_path, "--layer", "bronze", "--exchange", "kraken")
    bronze = ds.dataset(tmp_path / "bronze" / "kraken", partitioning="hive").to_table()
    assert bronze.num_rows == 3 * 960
    assert set(bronze["side"].to_pylist()) == {"b", "s"}  # the venue's own values, as stored
    assert isinstance(bronze["price"][0].as_py(), str)  # bronze keeps the exchange's strings


@pytest.mark.parametrize("args, message", [
    (["--layer", "platinum"], "invalid choice"),
    (["--layer", "bronze", "--symbols", "BTC/USDT"], "--symbols filters silver and gold"),
    (["--since", "last week"], "--since: not a time"),
    (["--layer", "gold", "--interval", "2m"], "unknown interval"),
    (["--exchange", "nasdaq"], "nasdaq"),
    (["--symbols", "NOPE/USD"], "unknown symbol"),
])
def test_bad_input_is_one_line_and_exit_2(k2_cli, history_dir, tmp_path, args, message):
    _close_held_engine()
    r = k2_cli("export", "--out", tmp_path / "out", "--data-dir", history_dir, *args)
    assert r.returncode == 2 and message in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert not (tmp_path / "out" / "silver").exists()


def test_out_must_be_a_directory_for_exports(k2_cli, history_dir, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    r = k2_cli("export", "--out", afile, "--data-dir", history_dir)
    assert r.returncode == 2 and "not a directory" in r.stderr
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_text("meow")
    r = k2_cli("export", "--out", other, "--data-dir", history_dir)
    assert r.returncode == 2 and "holds other files" in r.stderr
    assert os.listdir(other) == ["cat.jpg"]


def test_progress_follows_the_engine_while_it_writes(history_dir, tmp_path):
    """The bar moves inside one partition: the rows the engine's statement has handed to the
    Parquet writer, read from system.processes while it runs."""
    from k2.read.export import ENGINE_PARQUET, _watch_rows
    from k2.read.remote import open_reader

    _close_held_engine()
    reader = open_reader(history_dir)
    seen: list[int] = []
    try:
        tag = "k2-export-test-progress"
        stop = _watch_rows(reader.door, tag, seen.append, every_s=0.02)
        try:
            # 200 rows in blocks of 10, 10 ms a row: two seconds of steady progress
            n = reader.door.select_into_file("SELECT number FROM numbers(200) WHERE NOT ignore(sleepEachRow(0.01))",
                                             tmp_path / "p.parquet", "Parquet", None,
                                             {**ENGINE_PARQUET, "log_comment": tag, "max_block_size": 10})
        finally:
            stop()
    finally:
        reader.close()
    assert n == 200
    assert seen and seen == sorted(seen) and any(0 < v < n for v in seen), seen


@pytest.mark.parametrize("name", ["lake", "lake[1] {x}"])
def test_relative_and_glob_character_paths(k2_cli, history_dir, tmp_path, name):
    """A relative --out, and one with characters ClickHouse's file() would expand (pyarrow writes
    those): the same partitions, whole."""
    _close_held_engine()
    r = k2_cli("export", "--out", name, "--data-dir", history_dir, "--layer", "silver", "--exchange", "kraken",
               "--since", "2026-07-16", "--until", "2026-07-17", cwd=tmp_path, timeout=300)
    assert r.returncode == 0, r.stderr
    (f,) = (tmp_path / name / "silver" / "trades").rglob("data.parquet")
    assert f.parent.name == "date=2026-07-16" and pq.read_metadata(f).num_rows == 960
    assert (f.parent / "_k2_export.json").is_file()
    writer = pq.read_metadata(f).created_by
    assert ("ClickHouse" in writer) == (name == "lake"), writer


@pytest.fixture(scope="module")
def parts_dir(k2_cli, tmp_path_factory) -> Path:
    """A data dir whose Binance days are stored in three parts that each span every day and symbol
    (three `k2 load`s of every third frame): the engine writer reads them one after another."""
    from conftest import write_history_frames
    from fixtures.make_frames import write_lines

    folder = tmp_path_factory.mktemp("parts")
    frames = write_history_frames(folder)["binance"].read_bytes().splitlines()
    data = folder / "k2data"
    for k in range(3):
        path = write_lines(folder / f"third{k}.jsonl", frames[k::3])
        r = k2_cli("load", path, "--exchange", "binance", "--data-dir", data)
        assert r.returncode == 0, r.stderr
    return data


def test_a_day_in_several_parts_is_exact_in_sorted_runs_and_bounded_row_groups(parts_dir, tmp_path, monkeypatch):
    """The engine writer reads a day's stored parts without merging them in order (memory, ADR 0017):
    the file holds exactly the day's rows, as at most one sorted run per stored part; the pyarrow
    writer (through `k2 run`) holds the same rows, sorted. A row group ends at the row count or at
    ENGINE_ROW_GROUP_BYTES of column data, whichever comes first."""
    from k2.read import export as export_mod

    day = {"layer": "silver", "since": "2026-07-16", "until": "2026-07-17"}
    parts = reference(parts_dir, "SELECT count() AS n FROM system.parts WHERE database = 'k2' AND "
                                 "table = 'silver_trades_v2' AND active").column("n")[0].as_py()
    assert parts >= 2, "the fixture must store the day in several parts"
    keys = ["canonical_symbol", "timestamp", "trade_id"]
    want = reference(parts_dir, "SELECT trade_id, toString(canonical_symbol) AS canonical_symbol, price, quantity, "
                                "timestamp, vendor_data FROM silver_trades_v2 WHERE exchange = 'binance' AND "
                                "timestamp >= '2026-07-16' AND timestamp < '2026-07-17'")
    assert want.num_rows == 2 * 1440
    # 2 KiB of column data per row group, blocks of 256 rows: several groups although one may hold 100k rows
    monkeypatch.setattr(export_mod, "ENGINE_ROW_GROUP_BYTES", 2048, raising=False)
    monkeypatch.setitem(export_mod.ENGINE_PARQUET, "max_block_size", 256)
    got = {}
    for writer in ("engine", "pyarrow"):
        _export_here(parts_dir, tmp_path / writer, writer=writer, row_group_rows=100_000, **day)
        (f,) = (tmp_path / writer / "silver" / "trades").rglob("data.parquet")
        got[writer] = (pq.read_table(f), pq.read_metadata(f))
    engine, meta = got["engine"]
    assert engine.select(want.column_names).sort_by([(k, "ascending") for k in keys]) == \
        want.sort_by([(k, "ascending") for k in keys]).cast(engine.select(want.column_names).schema)
    assert engine.sort_by([(k, "ascending") for k in keys]) == got["pyarrow"][0].cast(engine.schema)
    rows = list(zip(*(engine.column(k).cast(pa.string() if k == "timestamp" else engine.column(k).type).to_pylist()
                      for k in keys)))
    runs = 1 + sum(1 for a, b in zip(rows, rows[1:]) if b < a)
    assert 1 <= runs <= parts, (runs, parts)
    assert meta.num_row_groups > 1 and max(meta.row_group(i).num_rows for i in range(meta.num_row_groups)) < 2880
    assert got["pyarrow"][1].num_row_groups == 1  # the byte bound is the engine's only


def test_bronze_keeps_its_tables_sorting_key_and_is_never_sorted_whole(parts_dir, tmp_path, monkeypatch):
    """A venue's bronze day is read in its table's own sorting key (a sort by receive time held the
    whole day in memory: 10M Binance rows failed at the 512 MB read limit): the engine reads the
    parts as stored (sorted runs), pyarrow's read merges them in that order; both hold every row."""
    from k2.read import export as export_mod

    key = reference(parts_dir, "SELECT sorting_key AS k FROM system.tables WHERE database = 'k2' AND "
                               "name = 'bronze_trades_binance'").column("k")[0].as_py()
    assert key == "symbol, trade_id"
    asked = []
    real = export_mod.select_sql

    def spy(src, columns, **kw):
        asked.append((src.table, src.order_by, kw.get("ordered", True)))
        return real(src, columns, **kw)

    monkeypatch.setattr(export_mod, "select_sql", spy)
    want = reference(parts_dir, "SELECT count() AS n FROM bronze_trades_binance").column("n")[0].as_py()
    tables = {}
    for writer in ("engine", "pyarrow"):
        _export_here(parts_dir, tmp_path / writer, layer="bronze", exchanges=["binance"], writer=writer)
        tables[writer] = ds.dataset(tmp_path / writer / "bronze", partitioning="hive").to_table()
        assert tables[writer].num_rows == want == 3 * 2 * 1440
    assert {a for a in asked if a[0] == "bronze_trades_binance"} == {("bronze_trades_binance", key, False),
                                                                      ("bronze_trades_binance", key, True)}
    by_key = [("symbol", "ascending"), ("trade_id", "ascending")]
    assert tables["engine"].sort_by(by_key).select(["symbol", "trade_id"]) == \
        tables["pyarrow"].sort_by(by_key).select(["symbol", "trade_id"])
    for f in (tmp_path / "engine" / "bronze").rglob("data.parquet"):
        rows = list(zip(*(pq.read_table(f, columns=["symbol", "trade_id"]).column(k).to_pylist()
                          for k in ("symbol", "trade_id"))))
        assert 1 + sum(1 for a, b in zip(rows, rows[1:]) if b < a) <= 3  # one sorted run per stored part at most
