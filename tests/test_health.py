"""Health reflects writes (issue 16): /healthz, `k2 status`, the k2_health metric and the exit
status of `k2 run` say when writes fail -- whatever the cause -- and when a venue never connected.

The conditions themselves (k2.monitoring.health) are checked on plain facts; the end-to-end tests
run `k2 simulate` and `k2 run` on 127.0.0.1 with a full disk made on demand (tests/faults: writes
under the data dir fail with ENOSPC, statvfs reports no room), bounded in time.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from faults.diskfull import DiskFull
from k2.monitoring.health import Condition, Health, disk_condition, feed_conditions, storage_condition, write_conditions
from kafka_broker import Procs, procs, wait_for  # noqa: F401 - fixtures

NOW = 1_800_000_000.0


def _conn(name: str, connected: bool = True, age: float | None = 1.0, ever: bool = True, error: str = ""):
    return SimpleNamespace(exchange=name.split("-")[0], connection=name, connected=connected,
                           last_message_at=None if age is None else NOW - age, last_error=error,
                           ever_connected=ever)


# -- the conditions -----------------------------------------------------------------------------------
def test_feed_conditions_name_the_connection_and_why():
    ok = feed_conditions([_conn("binance-0"), _conn("kraken-0")], ["binance", "kraken"], NOW)
    assert Health(ok).ok and {c.name for c in ok} == {"feed:binance", "feed:kraken", "venues"}
    bad = Health(feed_conditions([_conn("binance-0", connected=False, error="refused"), _conn("kraken-0", age=90)],
                                 ["binance", "kraken"], NOW))
    assert not bad.ok
    reasons = {c.name: c.reason for c in bad.failing}
    assert reasons == {"feed:binance": "binance-0 down: refused", "feed:kraken": "kraken-0 silent for 90 s"}
    never = Health(feed_conditions([_conn("binance-0", connected=False, ever=False), _conn("kraken-0")],
                                   ["binance", "kraken"], NOW))
    assert {c.name for c in never.failing} == {"feed:binance", "venues"}
    assert "never connected: binance" in never.summary()


def test_write_conditions_turn_red_on_a_failing_insert_or_a_stalled_buffer():
    fine = SimpleNamespace(failing_since=None, last_write_at=NOW - 1)
    assert Health(write_conditions(fine, buffered=500, started_at=NOW - 100, now=NOW)).ok
    failing = SimpleNamespace(failing_since=NOW - 12, failures_in_a_row=4, last_error="Cannot reserve 1.00 MiB",
                              last_write_at=NOW - 13)
    h = Health(write_conditions(failing, buffered=10, started_at=NOW - 100, now=NOW))
    assert [c.name for c in h.failing] == ["writes"]
    assert h.failing[0].reason == "inserts failing for 12 s (4 attempts): Cannot reserve 1.00 MiB"
    stalled = SimpleNamespace(failing_since=None, last_write_at=NOW - 45)
    h = Health(write_conditions(stalled, buffered=1234, started_at=NOW - 100, now=NOW))
    assert [(c.name, c.reason) for c in h.failing] == [("buffer", "1,234 rows waiting, nothing written for 45 s")]
    # nothing waiting: a quiet market is not a stalled writer
    assert Health(write_conditions(stalled, buffered=0, started_at=NOW - 100, now=NOW)).ok


def test_disk_and_storage_conditions(tmp_path):
    assert disk_condition(tmp_path, reserve=1).ok
    full = disk_condition(tmp_path, reserve=2**62)
    assert not full.ok and "MB free on the filesystem of" in full.reason
    assert storage_condition(SimpleNamespace(damage=[], deferred=[])).ok
    bad = storage_condition(SimpleNamespace(damage=[], deferred=["the repair of damaged parts (needs free space)"]))
    assert not bad.ok and "k2 repair" in bad.reason
    assert Health([Condition("a", True), bad]).as_dict()["conditions"]["storage"]["ok"] is False


# -- end to end -----------------------------------------------------------------------------------------
def _healthz(base: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _base(data: Path) -> str | None:
    try:
        return "http://" + json.loads((data / "k2.run.json").read_text())["addr"]
    except (OSError, ValueError, KeyError):
        return None


def _metric(base: str, condition: str) -> float | None:
    text = urllib.request.urlopen(base + "/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(f'k2_health{{condition="{condition}"}} '):
            return float(line.split()[-1])
    return None


@pytest.mark.slow
def test_a_venue_that_never_connects_makes_status_and_health_red_and_k2_run_exit_1(procs, tmp_path):  # noqa: F811
    procs.simulator(rate=50, duration=60, exchanges="kraken")
    procs.env.update(K2_BINANCE_WS_URL="ws://127.0.0.1:9/stream", K2_BINANCE_REST_URL="http://127.0.0.1:9",
                     K2_RECONNECT_BASE_S="0.2", K2_RECONNECT_CAP_S="0.5")
    data = tmp_path / "data"
    run = procs.start("run", "run", "--exchange", "binance,kraken", "--duration", "12", "--data-dir", str(data))
    base = wait_for(lambda: _base(data), 60, "the run file")
    code, body = wait_for(lambda: (lambda r: r if r[1]["conditions"].get("feed:kraken", {}).get("ok") else None)(
        _healthz(base)), 30, "kraken to connect")
    assert code == 503 and body["healthy"] is False
    assert body["conditions"]["venues"] == {"ok": False, "reason": "never connected: binance"}
    status = procs.run("status", "--data-dir", str(data))
    assert status.returncode == 1 and "UNHEALTHY venues: never connected: binance" in status.stdout, status.stdout
    assert _metric(base, "venues") == 0.0 and _metric(base, "feed:kraken") == 1.0
    assert run.wait(60) == 1, run.describe()
    assert "k2: error: never connected to binance" in run.stderr()


@pytest.mark.slow
def test_a_full_disk_turns_health_red_pauses_writes_and_loses_nothing(procs, tmp_path):  # noqa: F811
    sim, record = procs.simulator(rate=150, duration=90, exchanges="binance")
    data = tmp_path / "data"
    disk = DiskFull(data, tmp_path)
    procs.env.update(disk.env(procs.env), XDG_STATE_HOME=str(tmp_path / "state"))
    run = procs.start("run", "run", "--exchange", "binance", "--data-dir", str(data))
    try:
        base = wait_for(lambda: _base(data), 60, "the run file")
        wait_for(lambda: _healthz(base)[0] == 200, 30, "a healthy start")

        disk.fill()
        code, body = wait_for(lambda: (lambda r: r if r[0] == 503 and not r[1]["conditions"]["disk"]["ok"]
                                       and not r[1]["conditions"]["writes"]["ok"] else None)(_healthz(base)),
                              30, "/healthz 503 with the disk full")
        assert "disk full" in body["conditions"]["writes"]["reason"]
        status = procs.run("status", "--data-dir", str(data))
        assert status.returncode == 1 and "UNHEALTHY writes: inserts failing" in status.stdout, status.stdout
        assert _metric(base, "writes") == 0.0 and _metric(base, "disk") == 0.0
        time.sleep(3)  # trades keep arriving: held in memory, the feed paused when the buffer is full

        disk.free()
        wait_for(lambda: _healthz(base)[0] == 200, 60, "/healthz 200 once the disk has room again")
        assert procs.run("status", "--data-dir", str(data)).returncode == 0
        time.sleep(2)
    finally:
        disk.free()
        code = run.stop()
    assert code == 0, run.describe()
    check = procs.run("validate", "--data-dir", str(data))  # every Binance id from first to last stored
    assert check.returncode == 0, check.stdout[-3000:]
    assert "PASS  quality.sequential_ids" in check.stdout


@pytest.mark.slow
def test_part_files_that_failed_to_write_stop_the_writer_and_the_next_start_repairs(procs, tmp_path):  # noqa: F811
    """The disk fills between ClickHouse's check and its write: the INSERT succeeds with parts whose
    files are short. The writer notices (ClickHouse's write-failure counter), stops writing, keeps
    the rows (spooled at the stop), and the next start repairs and re-sends: nothing lost, nothing
    twice."""
    sim, record = procs.simulator(rate=150, duration=90, exchanges="binance")
    data = tmp_path / "data"
    disk = DiskFull(data / "chdb", tmp_path)  # ClickHouse's files only: the journal note was written first
    env = disk.env(procs.env)
    run = procs.start("run1", "run", "--exchange", "binance", "--data-dir", str(data),
                      env={**env, "XDG_STATE_HOME": str(tmp_path / "state")})
    try:
        base = wait_for(lambda: _base(data), 60, "the run file")
        wait_for(lambda: _healthz(base)[0] == 200, 30, "a healthy start")
        disk.fill(report_no_room=False)
        time.sleep(1.5)
        disk.free()  # too late: the parts written meanwhile are broken
        code, body = wait_for(lambda: (lambda r: r if not r[1]["conditions"]["writes"]["ok"] else None)(_healthz(base)),
                              30, "writes red")
        assert "parts may be broken" in body["conditions"]["writes"]["reason"], body
        time.sleep(2)
    finally:
        disk.free()
        first = run.stop()
    assert first == 1 and "could not be written before the stop" in run.stderr(), run.describe()

    run = procs.start("run2", "run", "--exchange", "binance", "--duration", "8", "--data-dir", str(data),
                      env={**procs.env, "XDG_STATE_HOME": str(tmp_path / "state")})
    assert run.wait(120) == 0, run.describe()
    check = procs.run("validate", "--data-dir", str(data))
    assert check.returncode == 0, check.stdout[-3000:]
    for line in ("PASS  quality.sequential_ids", "PASS  storage.damaged_parts", "PASS  silver.complete"):
        assert line in check.stdout, check.stdout[-3000:]
