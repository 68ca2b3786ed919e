"""The read door (k2.warehouse.reads) on a real warehouse: a read cannot change data, reach files,
URLs or processes, stop the writer or change its session, and is bounded in time and memory.

Each attack is real SQL run by chDB in this process, next to the writer's own session; the test
then checks the effect on the data and on the writer, not only the error. (The same door behind a
running `k2 run` and its HTTP endpoint: tests/test_read_endpoint.py.)
"""

from __future__ import annotations

import os
import threading
import time

import pyarrow as pa
import pytest

from k2.config import ReadSettings
from k2.errors import QueryError
from k2.warehouse.reads import inspect_ast, read_settings

LIMITS = ReadSettings(timeout_s=2, max_memory_mb=200, max_concurrent=2, queue_timeout_s=0.5)


@pytest.fixture(scope="module")
def door(warehouse):
    if warehouse.backend != "embedded":
        pytest.skip("the embedded engine's door; the server's is exercised with K2_TEST_CLICKHOUSE_URL elsewhere")
    warehouse.execute("INSERT INTO k2.rejects (exchange, source, reason, raw, received_at) "
                      "VALUES ('binance', 'ws', 'test', 'raw frame', now64(6))")
    return warehouse.reads(LIMITS)


def refused(door, sql: str, params=None) -> QueryError:
    with pytest.raises(QueryError) as info:
        with door.stream(sql, "TabSeparated", params) as s:
            s.read_all()
    return info.value


def rejects_count(warehouse) -> int:
    return int(warehouse.scalar("SELECT count() FROM k2.rejects"))


@pytest.mark.parametrize("sql, code", [
    ("TRUNCATE TABLE k2.rejects", 164),
    ("DROP TABLE k2.rejects", 164),
    ("INSERT INTO k2.rejects (exchange, reason) VALUES ('x', 'y')", 164),
    ("ALTER TABLE k2.rejects DELETE WHERE 1", 164),
    ("CREATE TABLE k2.evil (a Int8) ENGINE = Memory", 164),
    ("OPTIMIZE TABLE k2.rejects FINAL", 164),
    ("SYSTEM STOP MERGES", 164),
    ("KILL QUERY WHERE 1", 164),
    ("SET readonly = 0", 164),
    ("SELECT 1; DROP TABLE k2.rejects", 62),
])
def test_writes_and_session_changes_are_refused_and_change_nothing(door, warehouse, sql, code):
    before = rejects_count(warehouse)
    err = refused(door, sql)
    assert err.code == code, err
    assert "\n" not in str(err)
    assert rejects_count(warehouse) == before
    assert "rejects" in {r[0] for r in warehouse.rows("SHOW TABLES FROM k2")}


@pytest.mark.parametrize("sql", [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/hostname')",
    "SELECT length(FILE('/etc/hostname'))",
    "DESCRIBE TABLE file('/etc/passwd')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "SELECT * FROM executable('id', 'LineAsString', 'x String')",
    "SELECT * FROM remote('127.0.0.1:9', system.one)",
    "SELECT * FROM s3('http://127.0.0.1:9/bucket/key.csv', 'CSV')",
    "SELECT * FROM filesystem('/etc')",
    "SELECT * FROM python(door)",
    "SELECT * FROM numbers(1) WHERE 1 IN (SELECT 1 FROM file('/etc/passwd', 'LineAsString'))",
])
def test_nothing_outside_the_warehouse_is_reachable(door, sql):
    err = refused(door, sql)
    assert err.code in (164, 497), err


def test_into_outfile_is_refused_and_writes_no_file(door, tmp_path):
    target = tmp_path / "out.tsv"
    err = refused(door, f"SELECT 1 INTO OUTFILE '{target}'")
    assert err.code == 358
    assert not target.exists()


def test_a_settings_clause_cannot_raise_a_limit(door):
    err = refused(door, "SELECT count() FROM numbers(10) SETTINGS max_execution_time = 3600")
    assert err.code == 164 and "max_execution_time" in str(err)


def test_a_slow_read_is_stopped_by_its_time_limit_while_the_writer_writes(door, warehouse):
    before = rejects_count(warehouse)
    done = {}

    def slow():
        t0 = time.monotonic()
        try:
            refused(door, "SELECT count() FROM numbers(1000000000000)")
        except BaseException as exc:  # pragma: no cover - reported below
            done["error"] = exc
        done["seconds"] = time.monotonic() - t0

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(0.3)
    t0 = time.monotonic()
    warehouse.execute("INSERT INTO k2.rejects (exchange, source, reason, raw, received_at) "
                      "VALUES ('kraken', 'ws', 'during a slow read', 'x', now64(6))")
    insert_s = time.monotonic() - t0
    thread.join(60)
    assert "error" not in done, done
    assert done["seconds"] < 30, done  # stopped by the 2 s limit, not by the end of numbers()
    assert insert_s < done["seconds"], "the writer waited for the read"
    assert rejects_count(warehouse) == before + 1


def test_a_read_that_needs_too_much_memory_is_stopped_with_a_clear_error(door):
    err = refused(door, "SELECT groupArray(number) FROM numbers(200000000)")
    assert err.code == 241
    assert "K2_READ_MAX_MEMORY_MB" in str(err) and "200 MB" in str(err)


def test_reads_beyond_the_slots_wait_then_fail_clearly(door):
    held = [door.stream("SELECT number FROM numbers(10)", "TabSeparated") for _ in range(LIMITS.max_concurrent)]
    try:
        err = refused(door, "SELECT 1")
        assert err.code == 202 and "K2_READ_MAX_CONCURRENT" in str(err)
    finally:
        for s in held:
            s.close()
    with door.stream("SELECT 1", "TabSeparated") as s:  # slots given back
        assert s.read_all() == b"1\n"


def test_the_writers_session_is_untouched_by_reads(door, warehouse):
    refused(door, "SET readonly = 1")
    with door.stream("SELECT getSetting('readonly'), getSetting('max_execution_time')", "TabSeparated") as s:
        assert s.read_all() == b"1\t2\n"  # the read's own session
    assert warehouse.rows("SELECT getSetting('readonly'), getSetting('max_execution_time')") == [[0, 0]]
    warehouse.execute("INSERT INTO k2.rejects (exchange, source, reason, raw, received_at) "
                      "VALUES ('binance', 'ws', 'after the reads', 'x', now64(6))")


def _thread_nices() -> dict[str, int]:
    """The nice value of each thread of this process (field 19 of /proc/<pid>/task/<tid>/stat)."""
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = open(f"/proc/self/task/{tid}/stat").read()
        except OSError:
            continue
        out[tid] = int(stat.rsplit(")", 1)[1].split()[16])
    return out


def _may_renice() -> bool:
    caps = next(line for line in open("/proc/self/status") if line.startswith("CapEff:"))
    return bool(int(caps.split()[1], 16) >> 23 & 1)  # CAP_SYS_NICE


def test_a_reads_threads_yield_the_cpu_to_the_writer_and_give_it_back(warehouse):
    """Beside a writer, a read runs its threads at `nice` (K2_READ_NICE), so a heavy read on a busy
    machine slows itself, not ingest; afterwards no thread of the engine's pool stays niced (the writer's inserts
    run on the same pool). ClickHouse applies it only with CAP_SYS_NICE, else leaves it alone."""
    patient = warehouse.reads(ReadSettings(timeout_s=120, nice=19))  # a niced read on a busy machine is slow

    def nice_setting() -> bytes:
        with patient.stream("SELECT getSetting('os_thread_priority')", "TabSeparated") as s:
            return s.read_all()

    if not warehouse.has_written:  # nothing writes into this engine yet: a read keeps its CPU
        assert nice_setting() == b"0\n"
        table = pa.table({"reason": ["a writer's batch makes this process a writer"]})
        warehouse.insert_rows("rejects", table, ["'binance'", "'ws'", "reason", "'x'", "now64(6)"],
                              ["exchange", "source", "reason", "raw", "received_at"], token="nice-test")
    assert warehouse.has_written
    assert nice_setting() == b"19\n"
    seen: set[int] = set()
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.update(_thread_nices().values())
            time.sleep(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with patient.stream("SELECT count() FROM numbers(30000000) WHERE NOT ignore(sipHash64(number))",
                         "TabSeparated") as s:
            assert s.read_all() == b"30000000\n"
    finally:
        done.set()
        sampler.join()
    assert (19 in seen) == _may_renice()
    assert 19 not in _thread_nices().values()  # nothing left niced (the engine runs a few threads at -20)
    warehouse.execute("INSERT INTO k2.rejects (exchange, source, reason, raw, received_at) "
                      "VALUES ('binance', 'ws', 'after a niced read', 'x', now64(6))")


def test_reading_statements_answer_in_any_format(door):
    with door.stream("SELECT number AS n FROM numbers(3) FORMAT JSONEachRow", "TabSeparated") as s:
        assert s.format == "JSONEachRow"
        assert s.read_all() == b'{"n":"0"}\n{"n":"1"}\n{"n":"2"}\n'
    with door.stream("SHOW TABLES FROM k2 LIKE 'silver%'", "TabSeparated") as s:
        assert b"silver_trades_v2" in s.read_all()
    with door.stream("SELECT {x:UInt64} * 2", "TabSeparated", {"x": 21}) as s:
        assert s.read_all() == b"42\n"
    table = door.arrow("SELECT toDecimal128('1.000000000000000001', 18) AS d, now64(6) AS t WHERE 0")
    assert str(table.schema.field("d").type) == "decimal128(38, 18)" and table.num_rows == 0
    assert str(table.schema.field("t").type) == "timestamp[us, tz=UTC]"


def test_write_session_is_explicit_and_separate(door, warehouse):
    door.write("CREATE TABLE IF NOT EXISTS k2.user_notes (note String) ENGINE = MergeTree ORDER BY note")
    door.write("INSERT INTO k2.user_notes VALUES ('mine')")
    door.write("SET readonly = 1")  # ends with its own session
    assert warehouse.rows("SELECT note FROM k2.user_notes") == [["mine"]]
    warehouse.execute("INSERT INTO k2.user_notes VALUES ('writer still writes')")
    with pytest.raises(QueryError) as info:
        door.write("SELECT 1; SELECT 2")
    assert info.value.code == 62
    warehouse.execute("DROP TABLE k2.user_notes")


# -- the pieces, without an engine ------------------------------------------------------------------------
def test_read_settings_put_limits_before_readonly_and_refuse_changes():
    s = read_settings(ReadSettings(timeout_s=5, max_memory_mb=100, max_threads=2),
                      {"output_format_json_quote_64bit_integers": 0, "max_execution_time": 3, "readonly": 1})
    assert list(s)[-1] == "readonly" and s["readonly"] == 1
    assert s["max_execution_time"] == 3 and s["max_memory_usage"] == 100 * 1024 * 1024
    assert s["output_format_json_quote_64bit_integers"] == "0"
    for higher in ({"max_execution_time": 100}, {"max_memory_usage": 0}):  # K2's ceiling stays
        s = read_settings(ReadSettings(timeout_s=5, max_memory_mb=100), higher)
        assert s["max_execution_time"] == 5 and s["max_memory_usage"] == 100 * 1024 * 1024
    for bad in ({"readonly": 0}, {"allow_ddl": 1}, {"output_format_csv_delimiter": "a&b=c"}):
        with pytest.raises(QueryError):
            read_settings(ReadSettings(timeout_s=5), bad)


def test_the_ast_check_reads_clickhouses_tree():
    select = "SelectWithUnionQuery (children 2)\n ExpressionList (children 1)\n  SelectQuery (children 1)\n" \
             "   ExpressionList (children 1)\n    Literal UInt64_1\n Identifier JSON\n"
    assert inspect_ast(select).fmt == "JSON"
    with pytest.raises(QueryError):
        inspect_ast("SelectWithUnionQuery (children 2)\n ExpressionList (children 1)\n Literal \\'x\\'\n")
    with pytest.raises(QueryError):
        inspect_ast("KillQueryQuery Literal_UInt64_1 ASYNC (children 1)\n Literal UInt64_1\n")
