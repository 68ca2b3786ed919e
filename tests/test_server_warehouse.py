"""The ClickHouse server backend without a server: URL parsing and password redaction, the Arrow
plumbing, and the SQL it sends, run for real on chDB through a stand-in for clickhouse-connect's
client (input() and external tables become Python() table functions over the same Arrow bytes).

With K2_TEST_CLICKHOUSE_URL set, the whole warehouse suite also runs on that server (conftest.py).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from fixtures import k2db
from k2.errors import K2Error
from k2.warehouse import server
from k2.warehouse.server import ServerWarehouse, parse_url

SECRET = "s3cr:et@/pw%"
SECRET_URL = "clickhouse://k2:s3cr%3Aet%40%2Fpw%25@ch.internal:8123/k2"


# -- URL ------------------------------------------------------------------------------------------
def test_url_parts_and_defaults():
    u = parse_url(SECRET_URL, env={})
    assert (u.host, u.port, u.username, u.password, u.database, u.secure) == \
        ("ch.internal", 8123, "k2", SECRET, "k2", False)
    u = parse_url("clickhouses://ch.example.com", env={})
    assert (u.port, u.username, u.password, u.database, u.secure, u.verify) == (8443, "default", "", "k2", True, True)
    u = parse_url("http://[::1]:18123/k2_test?verify=false&secure=1", env={})
    assert (u.host, u.port, u.database, u.secure, u.verify) == ("::1", 18123, "k2_test", True, False)
    assert u.display == "clickhouses://default@[::1]:18123/k2_test"


def test_password_from_env_or_file(tmp_path):
    assert parse_url("clickhouse://k2@h/k2", env={"K2_WAREHOUSE_PASSWORD": "pw1"}).password == "pw1"
    f = tmp_path / "pw"
    f.write_text("pw2\n")
    assert parse_url("clickhouse://k2@h/k2", env={"K2_WAREHOUSE_PASSWORD_FILE": str(f)}).password == "pw2"
    assert parse_url("clickhouse://k2:pw0@h/k2", env={"K2_WAREHOUSE_PASSWORD": "pw1"}).password == "pw0"
    with pytest.raises(K2Error, match="cannot read K2_WAREHOUSE_PASSWORD_FILE"):
        parse_url("clickhouse://k2@h/k2", env={"K2_WAREHOUSE_PASSWORD_FILE": str(tmp_path / "missing")})


@pytest.mark.parametrize("url, message", [
    ("postgres://k2:hunter2@h/k2", "scheme must be"),
    ("clickhouse://k2:hunter2@/k2", "has no host"),
    ("clickhouse://k2:hunter2@h:99999/k2", "not valid"),
    ("clickhouse://k2:hunter2@h/k2;drop", "database name"),
    ("clickhouse://k2:hunter2@h/k2?sslmode=require", "unknown or invalid option"),
])
def test_bad_urls_are_one_line_errors_without_the_password(url, message):
    with pytest.raises(K2Error, match=message) as info:
        parse_url(url, env={})
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)
    assert "k2:***@" in str(info.value)


def test_redaction():
    u = parse_url(SECRET_URL, env={})
    assert u.display == "clickhouse://k2:***@ch.internal:8123/k2"
    assert SECRET not in repr(u) and "s3cr" not in repr(u)
    assert server.redact_url("see clickhouse://a:b@h:1/x and https://c:d@e/") == \
        "see clickhouse://a:***@h:1/x and https://c:***@e/"
    assert server.scrub(f"auth failed for {SECRET}", SECRET) == "auth failed for ***"


def test_connection_failure_is_redacted():
    # nothing listens on port 9 of 127.0.0.1: a quick refusal
    with pytest.raises(K2Error) as info:
        ServerWarehouse("clickhouse://k2:hunter2@127.0.0.1:9/k2", connect_timeout=2)
    text = str(info.value)
    assert text.startswith("cannot connect to the ClickHouse server at clickhouse://k2:***@127.0.0.1:9/k2")
    assert "hunter2" not in text and "\n" not in text


def test_cli_error_does_not_print_the_password(k2_main):
    rc, out, err = k2_main("query", "SELECT 1", "--warehouse", "clickhouse://k2:hunter2@127.0.0.1:9/k2")
    assert rc != 0 and "hunter2" not in out + err and "***" in err, err


# -- Arrow plumbing ---------------------------------------------------------------------------------
def test_structure_types_and_nullability():
    batch = pa.table({
        "s": pa.array(["a"]), "b": pa.array([b"\xff"], pa.binary()), "i": pa.array([1], pa.int64()),
        "u": pa.array([1], pa.uint64()), "p": pa.array([1], pa.int32()), "o": pa.array([1], pa.uint16()),
        "f": pa.array([True]), "n": pa.array([None], pa.bool_()),
    })
    assert server.structure(batch) == ("`s` String, `b` String, `i` Int64, `u` UInt64, `p` Int32, `o` UInt16, "
                                       "`f` Bool, `n` Nullable(Bool)")
    assert pa.ipc.open_stream(server.arrow_stream(batch)).read_all().equals(batch)


def test_database_mapping_for_another_database():
    wh = ServerWarehouse("clickhouse://u@h/k2_test", client=object(), env={})
    sql = ("CREATE DATABASE IF NOT EXISTS k2; CREATE TABLE k2.t AS k2.u; "
           "SELECT * FROM system.tables WHERE database = 'k2' AND name = 'k2.run.json'")
    assert wh._sql(sql) == ("CREATE DATABASE IF NOT EXISTS k2_test; CREATE TABLE k2_test.t AS k2_test.u; "
                            "SELECT * FROM system.tables WHERE database = 'k2_test' AND name = 'k2.run.json'")
    assert ServerWarehouse("clickhouse://u@h/k2", client=object(), env={})._sql(sql) == sql


def test_insert_sql_shape():
    wh = ServerWarehouse("clickhouse://u@h/k2", client=object(), env={})
    batch = pa.table({"a": [1], "b": ["x"]})
    sql = wh.insert_sql("t", batch, ["a", "{source:String}"], ["a", "source"], where="a > 0", token="tok")
    assert sql == ("INSERT INTO k2.t (a, source) SETTINGS insert_deduplicate = 1, "
                   "deduplicate_blocks_in_dependent_materialized_views = 1, "
                   "insert_deduplication_token = {token:String} SELECT a, {source:String} "
                   "FROM input('`a` Int64, `b` String') WHERE a > 0 FORMAT ArrowStream")


# -- the SQL, run on chDB through a stand-in client -------------------------------------------------
class ChdbStandIn:
    """clickhouse-connect's client API (command, raw_query, database, close) on an embedded
    warehouse's chDB session. It checks what a server would get — every parameter bound on the
    server side (clickhouse-connect must not format values into the SQL), the ArrowStream body and
    its input() structure, the external table's format and structure — then runs the statement
    with input()/the external table replaced by Python() over the decoded Arrow batch."""

    def __init__(self, embedded):
        self.embedded = embedded
        self.database = None
        self.calls: list[str] = []

    @staticmethod
    def _check_binding(sql: str, parameters) -> None:
        from clickhouse_connect.driver.binding import bind_query

        if not parameters:
            return
        final, binds = bind_query(sql, parameters)
        assert final == sql.rstrip(";"), "clickhouse-connect rewrote the SQL"
        assert set(binds) == {f"param_{k}" for k in parameters}, binds

    def _run(self, sql: str, fmt: str, parameters, batch=None) -> bytes:
        with self.embedded._lock:  # noqa: SLF001 (the test reaches into the session on purpose)
            res = self.embedded._session.query(sql, fmt, params=parameters or None)  # batch: Python(batch)
        del batch
        return res.bytes() if hasattr(res, "bytes") else b""

    def command(self, cmd: str, parameters=None, data=None, settings=None):
        self.calls.append(cmd)
        self._check_binding(cmd, parameters)
        batch = None
        if data is not None:
            batch = pa.ipc.open_stream(data).read_all()
            m = re.search(r"input\('((?:[^'\\]|\\.)*)'\)", cmd)
            assert m and m.group(1).replace("\\'", "'") == server.structure(batch)
            assert cmd.endswith(" FORMAT ArrowStream")
            cmd = cmd[:m.start()] + "Python(batch)" + cmd[m.end():-len(" FORMAT ArrowStream")]
        return self._run(cmd, "CSV", parameters, batch)

    def raw_query(self, query: str, parameters=None, settings=None, fmt=None, external_data=None):
        self.calls.append(query)
        if settings:  # a server takes them per request; the stand-in's session takes them per query
            query = query.rstrip().rstrip(";") + "\nSETTINGS " + ", ".join(
                f"{k} = {v if isinstance(v, (int, float)) else repr(str(v))}" for k, v in settings.items())
        self._check_binding(query, parameters)
        batch = None
        if external_data is not None:
            (f,) = external_data.files
            batch = pa.ipc.open_stream(f.data).read_all()
            assert f.fmt == "ArrowStream" and f.structure == server.structure(batch)
            query = re.sub(rf"\bFROM {f.name}\b", "FROM Python(batch)", query)
        return self._run(query, fmt or "TabSeparated", parameters, batch)

    def close(self):
        pass


@pytest.fixture
def via_server(clean_warehouse):
    """(ServerWarehouse on the stand-in client, the embedded warehouse underneath)."""
    if clean_warehouse.backend != "embedded":
        pytest.skip("the stand-in runs on the embedded warehouse")  # the server param tests the real thing
    wh = ServerWarehouse("clickhouse://k2:pw@stand-in:8123/k2", client=ChdbStandIn(clean_warehouse), env={})
    wh.execute("USE k2")
    return wh, clean_warehouse


def test_loads_through_the_server_path_equal_embedded_loads(via_server, load_frames, fixtures_dir):
    srv, emb = via_server
    tables = ("bronze_trades_binance", "bronze_trades_kraken", "silver_trades_v2", "gold_ohlcv_1m", "gold_ohlcv_1h",
              "rejects")

    def state():
        return {t: k2db.snapshot(emb, t) for t in tables}

    def load_all(wh):
        reports = [load_frames(wh, ex, fixtures_dir / f"{ex}_{kind}.jsonl")
                   for ex in ("binance", "kraken") for kind in ("session", "malformed")]
        return [(r.rejects, getattr(r, "written", None)) for r in reports]

    r1 = load_all(srv)
    via = state()
    assert via["silver_trades_v2"] and via["rejects"]
    assert load_all(srv) and state()["silver_trades_v2"] == via["silver_trades_v2"]  # reload: key probe skips all
    k2db.truncate_all(emb)
    r2 = load_all(emb)
    direct = state()
    ignore = {"batch_id", "ingested_at", "ingestion_timestamp", "received_at"}  # per load, not per path

    def strip(rows, table):
        cols = [r[0] for r in emb.rows(
            "SELECT name FROM system.columns WHERE database = 'k2' AND table = {t:String} "
            "AND default_kind != 'ALIAS' ORDER BY position", {"t": table})]
        keep = [i for i, c in enumerate(cols) if c not in ignore]
        return sorted(tuple(str(r[i]) for i in keep) for r in rows)

    for t in tables:
        assert strip(via[t], t) == strip(direct[t], t), t
    assert r1 == r2
    assert srv.scalar("SELECT count() FROM silver_trades_v2") == emb.scalar("SELECT count() FROM silver_trades_v2")


def test_reads_and_parameters_through_the_server_path(via_server, load_frames, fixtures_dir):
    from k2.read import queries as reads

    srv, emb = via_server
    load_frames(srv, "kraken", fixtures_dir / "kraken_session.jsonl")
    for fmt in ("csv", "json"):
        assert reads.ohlcv(srv, "BTC/USD", "1m", "kraken", fmt=fmt) == reads.ohlcv(emb, "BTC/USD", "1m", "kraken",
                                                                                   fmt=fmt)
    assert srv.rows("SELECT name FROM system.tables WHERE database = 'k2' AND name LIKE {p:String} ORDER BY name",
                    {"p": "%gold_ohlcv_1m%"})[0] == ["gold_ohlcv_1m"]


def test_key_probe_counts_distinct_keys_locally(via_server):
    srv, _ = via_server
    probe = pa.table({"symbol": ["BTCUSDT", "BTCUSDT", "ETHUSDT"], "trade_id": pa.array([1, 1, 2], pa.uint64())})
    stored, distinct = srv.existing_keys("bronze_trades_binance", ("symbol", "trade_id"), probe)
    assert (stored, distinct) == ([], 2)


def test_query_errors_are_one_line_and_redacted(via_server):
    srv, _ = via_server
    srv._secrets = ("pw",)
    with pytest.raises(server.ServerQueryError) as info:
        srv.query("SELECT no_such_column_pw FROM k2.silver_trades_v2")
    assert "\n" not in str(info.value) and "no_such_column_***" in str(info.value)


def test_every_bronze_table_has_an_input_structure():
    from k2.exchanges import ALL_ADAPTERS
    from k2.warehouse.bronze import BronzeWriter

    for adapter in ALL_ADAPTERS:
        schema = BronzeWriter(None, adapter)._schema  # noqa: SLF001
        text = server.structure(schema.empty_table())
        assert text.count("`") == 2 * len(adapter.columns) and "Nullable" not in text, adapter.name


def test_embedded_only_schema_files_are_skipped_on_a_server(via_server):
    """`*.embedded.sql` (the merge policy) runs on the embedded engine only: a server's version may
    not know the setting, and its merges do not compete with the feed."""
    from k2.warehouse import schema

    srv, emb = via_server
    embedded_only = [stmt for name, stmt in schema.statements() if name.endswith(".embedded.sql")]
    assert embedded_only
    setting = "SELECT engine_full FROM system.tables WHERE database = 'k2' AND name = 'silver_trades_v2'"
    assert "merge_selector_base = 20" in emb.scalar(setting)
    emb.execute("ALTER TABLE k2.silver_trades_v2 RESET SETTING merge_selector_base")
    assert schema.apply(srv) == len(schema.statements()) - len(embedded_only)
    assert "merge_selector_base" not in emb.scalar(setting)
    assert schema.apply(emb) == len(schema.statements())
    assert "merge_selector_base = 20" in emb.scalar(setting)
