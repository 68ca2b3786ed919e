"""History (issue 17): k2 import of exchange archives, k2 backfill over REST, k2 coverage's per-day
proof, and all three while `k2 run` holds the data dir.

The archives and the REST history come from the simulator's seeded past (k2.simulator.history),
so every test compares silver with the exact trades the venue published: each once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import zipfile
from decimal import Decimal
from pathlib import Path

import pytest

from k2.history.archives import import_archives
from k2.read.coverage import coverage
from k2.simulator.history import BinanceHistory, day_start_us, trade_lines, write_archives, write_zip
from k2.simulator.process import SimulatorProcess

END_US = day_start_us("2024-03-31") + 12 * 3600 * 1_000_000  # history days in March 2024 (ms files)


def _history(days: int = 8, per_day: int = 300, end_us: int = END_US, end_id: int = 5_000_000) -> BinanceHistory:
    return BinanceHistory(7, "BTCUSDT", "BTC", "USDT", end_id, end_us, days, per_day)


def _silver(wh, symbol: str = "BTCUSDT") -> list[tuple]:
    rows = wh.rows("SELECT trade_id, toString(price), toString(quantity), toString(side), "
                   "toUnixTimestamp64Micro(timestamp), toString(source) FROM k2.silver_trades_v2 "
                   "WHERE exchange = 'binance' AND symbol = {s:String} ORDER BY toUInt64(trade_id)", {"s": symbol})
    return [(int(r[0]), Decimal(r[1]), Decimal(r[2]), r[3], int(r[4]), r[5]) for r in rows]


def _truth(trades) -> list[tuple]:
    return [(t[0], Decimal(t[1]), Decimal(t[2]), "SELL" if t[4] else "BUY", t[3]) for t in trades]


def _gold_count(wh) -> int:
    return int(wh.scalar("SELECT sum(trade_count_agg) FROM k2.gold_ohlcv_1m WHERE exchange = 'binance'") or 0)


# -- k2 import -------------------------------------------------------------------------------------
def test_import_daily_and_monthly_archives_once_each_trade(clean_warehouse, tmp_path):
    wh = clean_warehouse
    past = _history()
    daily = write_archives(past, tmp_path / "daily", ("trades", "aggTrades"))
    monthly = write_archives(past, tmp_path / "monthly", ("trades",), monthly=True)
    assert [p.name for p in monthly] == ["BTCUSDT-trades-2024-03.zip"]
    report = import_archives(wh, daily, "binance", chunk_lines=500)  # several chunks per file
    assert {f.time_unit for f in report.files} == {"ms"}
    complete_days = past.days[:-1]
    truth = _truth(past.all_trades(complete_days))
    got = _silver(wh)
    assert [g[:5] for g in got] == truth  # every trade, exactly as published, once
    assert {g[5] for g in got} == {"archive"}
    assert _gold_count(wh) == len(truth)
    # the monthly file holds the same trades: nothing new
    again = import_archives(wh, monthly, "binance")
    assert again.files[0].loaded == 0 and again.files[0].lines == len(truth)
    # the same files again: the ledger says done, nothing is read
    repeat = import_archives(wh, daily, "binance")
    assert {f.state for f in repeat.files} == {"already imported"}
    assert len(_silver(wh)) == len(truth) and _gold_count(wh) == len(truth)
    # aggregate trades are kept, not counted as trades: their ids cover exactly the trades
    lo, hi, qty = wh.rows("SELECT min(first_trade_id), max(last_trade_id), toString(sum(toDecimal128(qty, 8))) "
                          "FROM k2.bronze_archive_binance_agg_trades")[0]
    assert (int(lo), int(hi)) == (truth[0][0], truth[-1][0])
    assert Decimal(qty) == sum(t[2] for t in truth)
    cov = coverage(wh, "binance", "BTCUSDT")
    assert [d.day for d in cov.days] == complete_days and not cov.holes
    # the first day has nothing before it and the last nothing after: the days between are proven
    assert [d.proven for d in cov.days] == [False] + [True] * (len(complete_days) - 2) + [False]
    # k2 validate: archive rows pass the silver checks and the proven days are reported
    from k2.quality.validate import run_checks

    results = {r.label: r for r in run_checks(wh)}
    assert not [r.label for r in results.values() if r.status == "FAIL"]
    assert results["history.proven_days"].detail.startswith(f"{len(complete_days) - 2} of {len(complete_days)} ")
    assert results["history.open_holes"].status == "PASS"


def test_microsecond_files_keep_every_digit_and_a_row_in_the_wrong_unit_is_rejected(clean_warehouse, tmp_path):
    wh = clean_warehouse
    lines = ["10,97000.01000000,0.00100000,97.00001000,1735689600123456,True,True\n",
             "11,97000.02000000,0.00200000,194.00004000,1735689600123457,False,True\n",
             "12,97000.03000000,0.00300000,291.00009000,1735689600124,False,True\n",  # ms among µs
             "13,97000.04000000,0.00400000,388.00016000,1735689600999999,True,True\n"]
    path = write_zip(tmp_path, "BTCUSDT-trades-2025-01-01", lines)
    report = import_archives(wh, [path], "binance")
    assert report.files[0].time_unit == "us" and report.files[0].rejected == 1
    got = _silver(wh)
    assert [(g[0], g[4]) for g in got] == [(10, 1735689600123456), (11, 1735689600123457), (13, 1735689600999999)]
    reason, origin, raw = wh.rows("SELECT reason, origin, raw FROM k2.rejects WHERE source = 'archive'")[0]
    assert origin == "BTCUSDT-trades-2025-01-01.zip:3" and "unit" in reason and raw == lines[2].strip()


def test_a_corrupt_row_in_the_middle_is_rejected_with_its_line_and_the_rest_loads(clean_warehouse, tmp_path):
    wh = clean_warehouse
    past = _history(days=2, per_day=200)
    lines = list(trade_lines(past.trades_of_day(past.days[0]), "ms"))
    bad = len(lines) // 2
    original = lines[bad]
    lines[bad] = original.replace(",", ";", 2)
    path = tmp_path / f"BTCUSDT-trades-{past.days[0]}.csv"
    path.write_text("".join(lines))
    report = import_archives(wh, [path], "binance", chunk_lines=64)
    assert report.files[0].rejected == 1 and report.files[0].loaded == len(lines) - 1
    origin, raw = wh.rows("SELECT origin, raw FROM k2.rejects WHERE source = 'archive'")[0]
    assert origin == f"{path.name}:{bad + 1}" and raw == lines[bad].strip()


class _Interrupted(Exception):
    pass


@pytest.mark.parametrize("ledger_every_s", [0.0, 3600.0])
def test_an_interrupted_import_resumes_and_keeps_each_trade_once(clean_warehouse, tmp_path, ledger_every_s):
    """Stopped after its third chunk, the import is run again. With the ledger written after every
    chunk it resumes after the third; with the ledger not written yet (it is written at most every
    2 s: ADR 0035) it starts over, and the chunks already loaded change nothing."""
    wh = clean_warehouse
    past = _history(days=2, per_day=400)
    path = write_archives(past, tmp_path / "a", ("trades",))[0]
    truth = _truth(past.trades_of_day(past.days[0]))

    def stop(name: str, lines: int, chunks: int) -> None:
        if chunks == 3:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        import_archives(wh, [path], "binance", chunk_lines=64, progress=stop, ledger_every_s=ledger_every_s)
    assert len(_silver(wh)) == 3 * 64
    report = import_archives(wh, [path], "binance", chunk_lines=64, ledger_every_s=ledger_every_s)
    f = report.files[0]
    if ledger_every_s == 0.0:
        assert (f.state, f.skipped_lines, f.lines) == ("resumed", 3 * 64, len(truth) - 3 * 64)
    else:
        assert (f.state, f.skipped_lines, f.lines) == ("imported", 0, len(truth))
    assert f.loaded == len(truth) and f.rejected == 0
    assert [g[:5] for g in _silver(wh)] == truth and _gold_count(wh) == len(truth)
    assert import_archives(wh, [path], "binance").files[0].state == "already imported"


def test_two_insert_streams_keep_each_trade_once_and_the_ledger_before_the_first_unfinished_chunk(
        clean_warehouse, tmp_path):
    """`k2 import`'s two streams (ADR 0036): chunks are inserted two at a time, a later one can
    finish first. Stopped after three commits, the ledger says no more than the lines before the
    first chunk not committed; the import run again (two streams) leaves each trade once."""
    wh = clean_warehouse
    past = _history(days=2, per_day=700)
    path = write_archives(past, tmp_path / "a", ("trades",))[0]
    truth = _truth(past.trades_of_day(past.days[0]))
    seen = []

    def stop(name: str, lines: int, chunks: int) -> None:
        seen.append((lines, chunks))
        if chunks >= 3:
            raise _Interrupted

    with pytest.raises(_Interrupted):
        import_archives(wh, [path], "binance", chunk_lines=64, progress=stop, ledger_every_s=0.0, streams=2)
    ledger = wh.rows("SELECT lines_done FROM k2.archive_files FINAL WHERE archive_file = {f:String}", {"f": path.name})
    stored = {r[0] for r in _silver(wh)}
    ids = [t[0] for t in truth]
    if ledger:  # every line the ledger calls done is in silver
        assert set(ids[:int(ledger[0][0])]) <= stored
    assert all(lines % 64 == 0 and lines <= 64 * chunks for lines, chunks in seen)
    report = import_archives(wh, [path], "binance", chunk_lines=64, streams=2)
    f = report.files[0]
    assert f.loaded == len(truth) and f.rejected == 0 and f.state in ("resumed", "imported")
    assert [g[:5] for g in _silver(wh)] == truth and _gold_count(wh) == len(truth)


def test_a_chunk_that_fails_in_one_stream_stops_the_file_in_one_line_and_a_rerun_completes_it(
        clean_warehouse, tmp_path):
    """One of the two streams fails on a chunk (here: its connection raises on the fourth chunk):
    the import stops with K2's one-line error naming the chunk, without hanging on the FIFO the
    other stream or the reader waits for; the rerun loads every trade once."""
    from k2.errors import K2Error

    wh = clean_warehouse
    past = _history(days=2, per_day=700)
    path = write_archives(past, tmp_path / "a", ("trades",))[0]
    truth = _truth(past.trades_of_day(past.days[0]))

    class FailingOnce:
        def __init__(self, inner):
            self.inner = inner

        def execute(self, sql, params=None):
            if params and params.get("first_line") == 3 * 64 + 1:
                raise RuntimeError("Code: 243. DB::Exception: Cannot reserve 1.00 MiB, not enough space\nstack")
            return self.inner.execute(sql, params)

        def close(self):
            self.inner.close()

    class Flaky:
        def __init__(self, real):
            self.real = real

        def __getattr__(self, name):
            return getattr(self.real, name)

        def bulk_session(self):
            return FailingOnce(self.real.bulk_session())

    with pytest.raises(K2Error) as err:
        import_archives(Flaky(wh), [path], "binance", chunk_lines=64, ledger_every_s=0.0, streams=2)
    message = str(err.value)
    assert "import failed at the chunk from line 193" in message and "not enough space" in message
    assert "\n" not in message
    assert len(_silver(wh)) < len(truth)
    report = import_archives(wh, [path], "binance", chunk_lines=64, streams=2)
    assert report.files[0].loaded == len(truth)
    assert [g[:5] for g in _silver(wh)] == truth and _gold_count(wh) == len(truth)


def test_a_running_pipeline_trusts_the_files_k2_import_checked_unless_they_changed(clean_warehouse, tmp_path,
                                                                                      monkeypatch):
    """`k2 import` beside `k2 run` checks (and hashes) the files, then hands them to the pipeline:
    the pipeline hashes a file again only when its size or modification time changed since."""
    import k2.history.archives as archives
    from k2.history.archives import check_files
    from k2.services.history_jobs import HistoryJobs

    wh = clean_warehouse
    past = _history(days=3, per_day=200)
    paths = write_archives(past, tmp_path / "a", ("trades",))[:2]
    checked = [f.to_json() for f in check_files(paths, "binance")]  # what the CLI sends
    hashed = []
    real = archives.sha256_of
    monkeypatch.setattr(archives, "sha256_of", lambda p: hashed.append(Path(p).name) or real(p))
    os.utime(paths[1], ns=(time.time_ns(), time.time_ns() + 5_000_000_000))  # touched since the check
    doc = HistoryJobs(wh, None).handle({"job": "import", "paths": [str(p) for p in paths], "files": checked,
                                        "exchange": "binance", "chunk_lines": 100})
    assert hashed == [paths[1].name]  # the unchanged file was not read again
    days = [past.trades_of_day(d) for d in past.days[:2]]
    assert [f["loaded"] for f in doc["files"]] == [len(t) for t in days] and all(days)
    assert [g[:5] for g in _silver(wh)] == _truth(days[0] + days[1])


def test_the_committed_lines_stop_at_the_first_chunk_not_committed():
    from k2.history.archives import _Committed

    c = _Committed(100)
    c.read(101, 50)
    c.read(151, 50)
    c.commit(151)  # the second chunk first
    assert c.now() == (100, 1)
    c.commit(101)
    assert c.now() == (200, 2)
    c.commit(201)  # committed before the feeder recorded its size
    assert c.now() == (200, 3)
    c.read(201, 7)
    assert c.now() == (207, 3)


@pytest.mark.parametrize("block", [1, 3, 16, 1 << 20])
def test_chunks_are_cut_at_line_ends_whatever_the_read_size(block):
    """The import's line cutter reads into one buffer in place: a line longer than the buffer grows
    it, CRLF stays as sent, a last line without its ending gets one, skipped lines are counted."""
    import io
    import random

    from k2.history.archives import _Lines

    rng = random.Random(block)
    lines = [b"x" * rng.choice([0, 1, 5, 40, 300]) + rng.choice([b"\n", b"\r\n"]) for _ in range(400)]
    data = b"".join(lines) + b"last,without,ending"
    expected = lines + [b"last,without,ending\n"]
    cutter = _Lines(io.BytesIO(data), block)
    at = 0
    while at < len(expected):
        n = rng.randrange(1, 30)
        out = io.BytesIO()
        skip = rng.random() < 0.2
        got = cutter.copy(n, None if skip else out)
        assert got == min(n, len(expected) - at)
        assert out.getvalue() == (b"" if skip else b"".join(expected[at:at + got]))
        at += got
        assert cutter.counted == at
    assert cutter.copy(5, io.BytesIO()) == 0


@pytest.mark.parametrize("case", ["truncated", "checksum", "klines", "wrong_kind", "unknown_symbol", "venue",
                                  "streams"])
def test_bad_archives_are_refused_in_one_line_before_anything_loads(case, k2_cli, tmp_path):
    past = _history(days=2, per_day=100)
    folder = tmp_path / "a"
    good = write_archives(past, folder, ("trades",))[0]
    data = tmp_path / "data"
    if case == "truncated":
        target = folder / "BTCUSDT-trades-2024-03-30.zip"
        target.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
        (folder / "BTCUSDT-trades-2024-03-30.zip.CHECKSUM").unlink()
        expect = "not a readable zip"
    elif case == "checksum":
        raw = bytearray(good.read_bytes())
        raw[40] ^= 0xFF
        good.write_bytes(bytes(raw))
        target, expect = good, "does not match"
    elif case == "klines":
        target = folder / "BTCUSDT-1m-2024-03-30.csv"
        target.write_text("1711756800000,1,1,1,1,1,1711756859999,1,1,1,1,0\n")
        expect = "klines"
    elif case == "wrong_kind":  # aggTrades content under a trades name
        target = folder / "BTCUSDT-trades-2024-03-29.csv"
        target.write_text("1,97000.0,0.1,5,6,1711756800000,True,True\n")
        expect = "looks like Binance aggTrades"
    elif case == "unknown_symbol":
        target = folder / "NOTACOIN-trades-2024-03-30.csv"
        target.write_text("1,97000.0,0.1,9700.0,1711756800000,True,True\n")
        expect = "NOTACOIN is not a binance symbol"
    elif case == "streams":  # good files, a setting out of range
        target, expect = good, "--streams: invalid choice: 9"
    else:  # a Kraken time-and-sales file given as Binance
        target = folder / "XBTUSD.csv"
        target.write_text("1381095255,122.00000,0.10000000\n")
        expect = "not a Binance spot archive name"
    # a good file first: a bad one anywhere in the list stops the whole import before any work
    res = k2_cli("import", str(good if case not in ("checksum", "streams") else target), str(target),
                 "--exchange", "binance", "--data-dir", str(data), *(("--streams", "9") if case == "streams" else ()))
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("k2: error:") and expect in res.stderr and len(res.stderr.strip().splitlines()) == 1
    # refused before any work: the warehouse was not even opened (only the instrument list, which
    # lives in the warehouse, can say a symbol is unknown)
    assert data.exists() == (case == "unknown_symbol"), case
    if data.exists():
        res = k2_cli("query", "SELECT count() FROM silver_trades_v2", "--format", "csv", "--data-dir", str(data))
        assert res.stdout.strip().splitlines()[-1] == "0", res.stdout


def test_kraken_time_and_sales_is_kept_for_reconciliation_only(clean_warehouse, tmp_path):
    wh = clean_warehouse
    path = tmp_path / "XBTUSD.csv"
    path.write_text("1711756800,70000.10000,0.10000000\n1711756801,70000.20000,0.20000000\n1711843200,1,x\n")
    report = import_archives(wh, [path], "kraken")
    assert report.files[0].loaded == 2 and report.files[0].rejected == 1
    assert int(wh.scalar("SELECT count() FROM k2.silver_trades_v2 WHERE exchange = 'kraken'")) == 0
    assert int(wh.scalar("SELECT count() FROM k2.bronze_archive_kraken_timesales")) == 2


# -- k2 backfill and coverage against the simulator ---------------------------------------------------
def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _rest_truth(rest: str, first_id: int, last_id: int) -> list[tuple]:
    """What the venue says happened, id by id (paced under its weight limit)."""
    out, cursor = [], first_id
    while cursor <= last_id:
        for attempt in range(50):
            try:
                page = _get(f"{rest}/api/v3/historicalTrades?symbol=BTCUSDT&fromId={cursor}&limit=1000")
                break
            except urllib.error.HTTPError as exc:
                assert exc.code == 429
                time.sleep(0.5)
        page = [t for t in page if t["id"] <= last_id]
        out += [(t["id"], Decimal(t["price"]), Decimal(t["qty"]), "SELL" if t["isBuyerMaker"] else "BUY",
                 t["time"] * 1000) for t in page]
        cursor = page[-1]["id"] + 1
    return out


def _k2(*args: str, env: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k2", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)


def _env(urls: dict, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    env.update(K2_BINANCE_WS_URL=urls["binance"]["ws"], K2_BINANCE_REST_URL=urls["binance"]["rest"],
               K2_METRICS_ADDR="127.0.0.1:0", **extra)
    return env


def _wh_rows(data: Path, sql: str, env: dict) -> list[list]:
    res = _k2("query", sql, "--format", "json", "--data-dir", str(data), env=env)
    assert res.returncode == 0, res.stderr
    return [list(json.loads(line).values()) for line in res.stdout.splitlines() if line.strip()]


def test_archive_rest_and_resume_under_rate_limits_give_each_trade_once(tmp_path):
    archive = tmp_path / "archive"
    data = tmp_path / "data"
    # a tight REST limit (2 pages a second) so the backfill meets 429s and must wait them out
    with SimulatorProcess("--exchange", "binance", "--symbols", "BTCUSDT", "--port", "0", "--history-days", "3",
                          "--history-trades-per-day", "6000", "--archive-dir", str(archive),
                          "--rest-weight-limit", "50", "--rest-window", "1") as sim:
        urls = sim.urls
        env = _env(urls)
        files = sorted(str(p) for p in archive.glob("BTCUSDT-trades-*.zip"))
        assert len(files) == 3
        res = _k2("import", *files[:2], "--exchange", "binance", "--data-dir", str(data), env=env)
        assert res.returncode == 0, res.stderr
        first_day = Path(files[0]).name.split("-trades-")[1][:10]
        since = f"{Path(files[1]).name.split('-trades-')[1][:10]}T12:00:00Z"  # overlaps the 2nd file
        # interrupt the backfill mid-way (Ctrl-C), then run the same command again: it resumes
        proc = subprocess.Popen([sys.executable, "-m", "k2", "backfill", "--exchange", "binance", "--symbols",
                                 "BTCUSDT", "--since", since, "--data-dir", str(data)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 60
        while not list((data / "history").glob("backfill-*.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and not out, out  # stopped before the end
        state = list((data / "history").glob("backfill-*.json"))
        assert state, "an interrupted backfill leaves its cursor"
        res = _k2("backfill", "--exchange", "binance", "--symbols", "BTCUSDT", "--since", since,
                  "--data-dir", str(data), env=env)
        assert res.returncode == 0, res.stderr
        assert "resumed at cursor" in res.stdout and "rate-limit answers" in res.stdout
        assert not list((data / "history").glob("backfill-*.json"))
        # the third archive overlaps the REST range completely: nothing new
        res = _k2("import", files[2], "--exchange", "binance", "--data-dir", str(data), env=env)
        assert res.returncode == 0 and " 0 rows in bronze" in res.stdout, res.stdout
        got = _wh_rows(data, "SELECT toUInt64(trade_id) AS id, toString(price), toString(quantity), toString(side), "
                       "toUnixTimestamp64Micro(timestamp) FROM silver_trades_v2 ORDER BY id", env)
        ids = [int(r[0]) for r in got]
        assert len(ids) == len(set(ids)) and ids == list(range(ids[0], ids[-1] + 1))
        truth = _rest_truth(urls["binance"]["rest"], ids[0], ids[-1])
        assert [(int(r[0]), Decimal(r[1]), Decimal(r[2]), r[3], int(r[4])) for r in got] == truth
        gold = _wh_rows(data, "SELECT sum(trade_count_agg) FROM gold_ohlcv_1m", env)
        assert int(gold[0][0]) == len(truth)
        res = _k2("coverage", "--exchange", "binance", "--format", "json", "--data-dir", str(data), env=env)
        days = json.loads(res.stdout)["days"]
        assert days[0]["day"] == first_day and all(d["proven"] for d in days[1:-1]) and len(days) == 4
        assert "rest" in days[-1]["sources"]


def test_coverage_lists_a_hole_and_backfill_fills_it(tmp_path):
    data = tmp_path / "data"
    with SimulatorProcess("--exchange", "binance", "--symbols", "BTCUSDT", "--port", "0", "--history-days", "3",
                          "--history-trades-per-day", "1500", "--archive-dir", str(tmp_path / "a")) as sim:
        urls = sim.urls
        env = _env(urls)
        files = sorted((tmp_path / "a").glob("BTCUSDT-trades-*.zip"))
        # the middle day with 25 lines missing
        with zipfile.ZipFile(files[1]) as z:
            lines = z.read(z.namelist()[0]).decode().splitlines(keepends=True)
        holed = tmp_path / "holed" / files[1].name.replace(".zip", ".csv")
        holed.parent.mkdir()
        holed.write_text("".join(lines[:100] + lines[125:]))
        res = _k2("import", str(files[0]), str(holed), str(files[2]), "--exchange", "binance",
                  "--data-dir", str(data), env=env)
        assert res.returncode == 0, res.stderr
        res = _k2("coverage", "--data-dir", str(data), env=env)
        first_missing = int(lines[100].split(",")[0])
        assert f"ids {first_missing}..{first_missing + 24} (25 trades)" in res.stdout, res.stdout
        assert "1 hole(s), 25 trade(s) missing" in res.stdout
        res = _k2("backfill", "--exchange", "binance", "--holes", "--data-dir", str(data), env=env)
        assert res.returncode == 0 and "25 trades" in res.stdout, res.stdout + res.stderr
        res = _k2("coverage", "--format", "json", "--data-dir", str(data), env=env)
        doc = json.loads(res.stdout)
        assert not doc["holes"] and doc["days"][1]["proven"] and doc["days"][1]["trades"] == len(lines)


def test_import_backfill_and_load_hand_their_work_to_a_running_k2_run(tmp_path, fixtures_dir):
    data = tmp_path / "data"
    with SimulatorProcess("--exchange", "binance", "--symbols", "BTCUSDT", "--port", "0", "--rate", "50",
                          "--history-days", "2", "--history-trades-per-day", "1500",
                          "--archive-dir", str(tmp_path / "a")) as sim:
        urls = sim.urls
        env = _env(urls)
        run = subprocess.Popen([sys.executable, "-m", "k2", "run", "--exchange", "binance", "--symbols", "BTCUSDT",
                                "--data-dir", str(data)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
        try:
            deadline = time.monotonic() + 60
            while not (data / "k2.run.json").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            files = sorted(str(p) for p in (tmp_path / "a").glob("BTCUSDT-trades-*.zip"))
            res = _k2("import", *files, "--exchange", "binance", "--data-dir", str(data), env=env)
            assert res.returncode == 0, res.stderr
            # REST from the last archived day up to now: overlaps the archive and the live trades
            day = Path(files[-1]).name.split("-trades-")[1][:10]
            res = _k2("backfill", "--exchange", "binance", "--symbols", "BTCUSDT", "--since", f"{day}T18:00:00Z",
                      "--data-dir", str(data), env=env)
            assert res.returncode == 0 and "already stored" in res.stdout, res.stderr
            res = _k2("load", str(fixtures_dir / "kraken_session.jsonl"), "--exchange", "kraken",
                      "--data-dir", str(data), env=env)
            assert res.returncode == 0 and "through the running k2" in res.stdout, res.stderr
            time.sleep(2)
        finally:
            run.send_signal(signal.SIGTERM)
            out, err = run.communicate(timeout=90)
        assert run.returncode == 0, err[-2000:]
    got = _wh_rows(data, "SELECT toUInt64(trade_id) AS id, toString(source) FROM silver_trades_v2 "
                   "WHERE exchange = 'binance' ORDER BY id", env)
    ids = [int(r[0]) for r in got]
    assert len(ids) == len(set(ids)) and ids == list(range(ids[0], ids[-1] + 1))  # once each, no hole
    assert {r[1] for r in got} >= {"archive", "rest", "ws"}
    kraken = _wh_rows(data, "SELECT count() FROM silver_trades_v2 WHERE exchange = 'kraken'", env)
    assert int(kraken[0][0]) > 0
