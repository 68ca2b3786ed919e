"""The read endpoint of a running `k2 run` (simulator -> k2 run, both child processes on 127.0.0.1):
reads through it cannot stop or change the writer (issue 16), and ClickHouse's own clients read
the embedded store through it (issue 19): clickhouse-connect, the Grafana dashboard's queries,
curl-style HTTP, the Python API.

`k2 run` gets small read limits (3 s, 256 MB, 16 connections idle-closed after 2 s, 3 reads at
once) so each limit is reached quickly. Every wait has a deadline; processes are stopped in a
`finally`.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import psutil
import pytest

from k2.simulator.process import SimulatorProcess

pytestmark = pytest.mark.slow

READ_LIMITS = {"K2_READ_TIMEOUT_S": "3", "K2_READ_MAX_MEMORY_MB": "256", "K2_READ_MAX_CONNECTIONS": "16",
               "K2_READ_IDLE_TIMEOUT_S": "2", "K2_READ_MAX_CONCURRENT": "3", "K2_READ_QUEUE_TIMEOUT_S": "5"}


def _wait(what: str, predicate, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"k2 run exited ({proc.returncode}) while waiting for {what}")
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


class Live:
    def __init__(self, tmp: Path, env: dict, proc: subprocess.Popen, info: dict):
        self.tmp, self.env, self.proc, self.info = tmp, env, proc, info
        self.data_dir = tmp / "data"
        host, port = info["addr"].rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.base = f"http://{info['addr']}"

    def k2(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {k: v for k, v in self.env.items() if not k.startswith("K2_READ_")}
        return subprocess.run([sys.executable, "-m", "k2", *args], env=env, cwd=self.tmp, capture_output=True,
                              text=True, timeout=timeout)

    def scalar(self, sql: str) -> str:
        r = self.k2("query", sql, "--format", "csv")  # a header row, then the value
        assert r.returncode == 0, r.stderr
        return r.stdout.strip().splitlines()[-1]

    def silver_count(self) -> int:
        return int(self.scalar("SELECT count() FROM silver_trades_v2"))

    def written(self) -> int:
        r = self.k2("status", "--format", "json")
        return sum(json.loads(r.stdout).get("writer", {}).get("written", {}).values())

    def http(self, path: str, data: bytes | None = None, headers: dict | None = None):
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("live")
    sim = SimulatorProcess("--exchange", "binance,kraken", "--rate", "200", "--no-bursts")
    urls = sim.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    for name, u in urls.items():
        env[f"K2_{name.upper()}_WS_URL"] = u["ws"]
        env[f"K2_{name.upper()}_REST_URL"] = u["rest"]
    env.update(K2_METRICS_ADDR="127.0.0.1:0", K2_LOG_DIR=str(tmp), K2_DATA_DIR=str(tmp / "data"), **READ_LIMITS)
    proc = subprocess.Popen([sys.executable, "-m", "k2", "run"], cwd=tmp, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        run_file = tmp / "data" / "k2.run.json"
        info = _wait("k2.run.json", lambda: run_file.exists() and json.loads(run_file.read_text() or "{}"), 60, proc)
        live = Live(tmp, env, proc, info)
        _wait("trades in silver from both exchanges",
              lambda: live.scalar("SELECT uniqExact(exchange) FROM silver_trades_v2") == "2", 60, proc)
        yield live
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        sim.stop()


# -- issue 16: a read cannot stop or change the writer ------------------------------------------------------
@pytest.mark.parametrize("sql", [
    "TRUNCATE TABLE k2.silver_trades_v2",
    "DROP TABLE k2.gaps",
    "INSERT INTO k2.rejects (exchange, reason) VALUES ('binance', 'forged')",
    "ALTER TABLE k2.silver_trades_v2 DELETE WHERE 1",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
    "KILL QUERY WHERE 1 SYNC",
])
def test_k2_query_cannot_change_data_or_reach_outside(live, sql):
    before = live.silver_count()
    r = live.k2("query", sql)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.startswith("k2: error: ") and r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert live.silver_count() >= before > 0
    tables = live.k2("query", "SHOW TABLES", "--format", "csv").stdout
    assert "gaps" in tables and "silver_trades_v2" in tables


def test_into_outfile_writes_no_file(live):
    target = live.tmp / "stolen.tsv"
    r = live.k2("query", f"SELECT * FROM k2.silver_trades_v2 INTO OUTFILE '{target}'")
    assert r.returncode == 2 and "INTO OUTFILE" in r.stderr
    assert not target.exists()


def test_set_readonly_cannot_stop_the_writer(live):
    r = live.k2("query", "SET readonly = 1")
    assert r.returncode == 2, r.stderr
    r = live.k2("query", "--write", "SET readonly = 1")  # even the writing session: it ends with the statement
    assert r.returncode == 0, r.stderr
    before = live.written()
    _wait("the writer writing after SET readonly", lambda: live.written() > before + 100, 30, live.proc)
    st = json.loads(live.k2("status", "--format", "json").stdout)
    assert st["writer"]["insert_errors"] == 0


def test_a_slow_read_times_out_and_ingest_goes_on(live):
    before = live.written()
    t0 = time.monotonic()
    r = live.k2("query", "SELECT count() FROM numbers(1000000000000)", timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 2 and "timed out after 3 s" in r.stderr, r.stderr
    assert took < 30
    assert live.written() > before  # the writer wrote while the read ran


def test_a_huge_read_is_refused_and_memory_stays_bounded(live):
    proc = psutil.Process(live.proc.pid)
    rss_before = proc.memory_info().rss
    r = live.k2("query", "SELECT groupArray(number) FROM numbers(200000000)", timeout=60)
    assert r.returncode == 2 and "too large" in r.stderr and "K2_READ_MAX_MEMORY_MB" in r.stderr, r.stderr
    assert proc.memory_info().rss < rss_before + 400 * 2**20


def test_idle_connections_are_bounded_and_closed(live):
    proc = psutil.Process(live.proc.pid)
    threads_before = proc.num_threads()
    socks = []
    try:
        for _ in range(60):
            socks.append(socket.create_connection((live.host, live.port), timeout=5))
        time.sleep(0.5)
        assert proc.num_threads() <= threads_before + 16 + 2
        # past the ceiling: answered 503 at once and closed; the others are open and idle
        refused, idle = 0, []
        for s in socks:
            s.settimeout(0.05)
            try:
                data = s.recv(200)
            except socket.timeout:
                idle.append(s)
                continue
            refused += data.startswith(b"HTTP/1.1 503")
        assert len(idle) <= 16 and refused == 60 - len(idle), (len(idle), refused)
        # the idle ones are closed by the server after K2_READ_IDLE_TIMEOUT_S = 2
        for s in idle:
            s.settimeout(10)
            assert s.recv(100) == b""
        _wait("threads given back", lambda: proc.num_threads() <= threads_before + 2, 10)
    finally:
        for s in socks:
            s.close()
    status, _, body = live.http("/ping")
    assert status == 200 and body == b"Ok.\n"


# -- issue 19: ClickHouse's clients read the embedded store ---------------------------------------------------
@pytest.fixture(scope="module")
def client(live):
    clickhouse_connect = pytest.importorskip("clickhouse_connect")
    return clickhouse_connect.get_client(host=live.host, port=live.port, username="default", password="",
                                         database="k2")


def test_clickhouse_connect_query_arrow_and_df_are_exact(live, client):
    cutoff = client.query("SELECT max(timestamp) - INTERVAL 2 SECOND FROM silver_trades_v2").result_rows[0][0]
    where = "WHERE timestamp <= {cut:DateTime64(6, 'UTC')}"
    params = {"cut": cutoff}
    rows = client.query(f"SELECT exchange, trade_id, price, quantity FROM silver_trades_v2 {where} "
                        "ORDER BY exchange, trade_id", parameters=params).result_rows
    table = client.query_arrow(f"SELECT exchange, trade_id, price, quantity, timestamp FROM silver_trades_v2 {where} "
                               "ORDER BY exchange, trade_id", parameters=params)
    df = client.query_df(f"SELECT exchange, trade_id, price, quantity FROM silver_trades_v2 {where} "
                         "ORDER BY exchange, trade_id", parameters=params)
    assert len(rows) == table.num_rows == len(df) > 100
    assert str(table.schema.field("price").type) == "decimal128(38, 18)"
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert all(isinstance(r[2], Decimal) for r in rows[:10])
    # the same rows as `k2 query --format json` (exact decimal strings), whichever client
    cli = live.k2("query", "SELECT exchange, trade_id, price, quantity FROM silver_trades_v2 WHERE timestamp <= "
                  f"'{cutoff:%Y-%m-%d %H:%M:%S.%f}' ORDER BY exchange, trade_id", "--format", "json")
    expected = [(d["exchange"], d["trade_id"], Decimal(d["price"]), Decimal(d["quantity"]))
                for d in map(json.loads, cli.stdout.splitlines())]
    assert [tuple(r) for r in rows] == expected
    assert list(zip(table["exchange"].to_pylist(), table["trade_id"].to_pylist(), table["price"].to_pylist(),
                    table["quantity"].to_pylist())) == expected
    assert list(df.itertuples(index=False, name=None)) == expected


def test_clickhouse_connect_errors_are_clickhouse_errors(client):
    from clickhouse_connect.driver.exceptions import DatabaseError

    with pytest.raises(DatabaseError) as info:
        client.command("DROP TABLE k2.gaps")
    assert "164" in str(info.value) and "READONLY" in str(info.value)
    with pytest.raises(DatabaseError) as info:
        client.query("SELECT nosuchcolumn FROM silver_trades_v2")
    assert "UNKNOWN_IDENTIFIER" in str(info.value)
    assert client.query("SELECT count() FROM gaps").result_rows[0][0] >= 0  # the client goes on


def test_http_interface_as_clients_use_it(live):
    status, headers, body = live.http("/?query=" + urllib.request.quote("SELECT 1 AS one FORMAT JSONEachRow"))
    assert status == 200 and body == b'{"one":1}\n'
    assert headers["X-ClickHouse-Format"] == "JSONEachRow" and headers["X-ClickHouse-Timezone"] == "UTC"
    assert json.loads(headers["X-ClickHouse-Summary"])["read_rows"] is not None and headers["X-ClickHouse-Query-Id"]
    status, headers, body = live.http("/?default_format=CSVWithNames&param_ex=kraken&database=k2",
                                      b"SELECT count() > 0 AS any FROM silver_trades_v2 WHERE exchange = {ex:String}")
    assert status == 200 and body == b'"any"\n1\n'
    status, headers, body = live.http("/?query=SELECT+number+FROM+system.numbers+LIMIT+5000&enable_http_compression=1",
                                      headers={"Accept-Encoding": "gzip"})
    assert headers.get("Content-Encoding") == "gzip"
    assert gzip.decompress(body).decode().split() == [str(i) for i in range(5000)]
    status, headers, body = live.http("/", gzip.compress(b"SELECT 42"), {"Content-Encoding": "gzip"})
    assert (status, body) == (200, b"42\n")
    status, headers, body = live.http("/?query=SELEC+1")
    assert status == 400 and body.startswith(b"Code: 62. DB::Exception: Syntax error")
    assert headers["X-ClickHouse-Exception-Code"] == "62"
    status, headers, body = live.http("/", b"DROP TABLE k2.gaps")
    assert status == 403 and headers["X-ClickHouse-Exception-Code"] == "164" and b"(READONLY)" in body
    status, _, body = live.http("/?query=SELECT+1&password=wrong")
    assert status == 401 and b"AUTHENTICATION_FAILED" in body


def test_the_grafana_dashboard_reads_the_embedded_store(live, client):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_deploy import DEPLOY, _grafana_sql

    board = json.loads((DEPLOY / "grafana" / "dashboards" / "k2-embedded.json").read_text())
    queries = [t["rawSql"] for p in board["panels"] if p["type"] != "row" for t in p["targets"] if "rawSql" in t]
    queries += [v["query"] for v in board["templating"]["list"] if v.get("datasource", {}).get("uid") == "k2-embedded"]
    assert len(queries) >= 6
    answered = {}
    for sql in queries:
        for interval in ("1m", "1d"):
            text = _grafana_sql(sql, interval).replace("'BTC/USD'", "'BTC/USDT'")
            answered[text] = client.query(text).result_rows
    assert any(rows for text, rows in answered.items() if "ohlcv_1m_cross" in text), "candles for BTC/USDT"
    assert any(rows for text, rows in answered.items() if "silver_trades_v2" in text), "trades/s"


def test_python_api_reads_through_the_running_pipeline(live):
    import k2

    db = k2.connect(live.data_dir)
    candles = db.ohlcv("BTC/USDT", "1m", exchange="binance")
    assert candles.num_rows >= 1 and str(candles.schema.field("close").type) == "decimal128(38, 18)"
    cli = live.k2("ohlcv", "BTC/USDT", "--interval", "1m", "--exchange", "binance", "--format", "json")
    first = json.loads(cli.stdout.splitlines()[0])
    row = candles.slice(0, 1).to_pylist()[0]
    assert row["open"] == Decimal(first["open"]) and row["trade_count"] >= 1
    assert row["time"].strftime("%Y-%m-%dT%H:%M:%SZ") == first["bucket"]
    trades = db.trades("BTC/USDT", exchange="binance", format="pandas")
    assert len(trades) > 10 and str(trades["time"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(k2.QueryError) as info:
        db.query("TRUNCATE TABLE k2.silver_trades_v2")
    assert info.value.code == 164
    from k2.read.api import _HeldEngine

    assert _HeldEngine.current is None  # this process never opened the data dir: the pipeline answered


def test_export_reads_through_the_running_pipeline(live):
    """`k2 export` while `k2 run` holds the data dir: the rows come through its endpoint (pyarrow
    writes the files), every row up to --until is in them, each partition has its manifest, and
    the writer keeps writing meanwhile."""
    import datetime as dt

    import pyarrow.dataset as ds

    def settled() -> str | None:  # a time some seconds back, with trades of both exchanges before it
        t = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        n = live.scalar(f"SELECT uniqExact(exchange) FROM silver_trades_v2 WHERE timestamp < parseDateTime64BestEffort('{t}', 6)")
        return t if n == "2" else None

    until = _wait("trades of both exchanges older than 3 s", settled, 60, live.proc)
    before = live.written()
    out = live.tmp / "lake"
    r = live.k2("export", "--out", str(out), "--layer", "silver", "--until", until, timeout=300)
    assert r.returncode == 0, r.stderr
    want = int(live.scalar(f"SELECT count() FROM silver_trades_v2 WHERE timestamp < parseDateTime64BestEffort('{until}', 6)"))
    assert want > 0 and "exported" in r.stdout, (want, r.stdout, r.stderr)
    got = ds.dataset(out / "silver" / "trades", partitioning="hive").to_table()
    assert got.num_rows == want > 0
    assert set(got["exchange"].to_pylist()) == {"binance", "kraken"}
    parts = list((out / "silver" / "trades").rglob("data.parquet"))
    assert parts and all((p.parent / "_k2_export.json").is_file() for p in parts)
    again = live.k2("export", "--out", str(out), "--layer", "silver", "--until", until, timeout=300)
    assert again.returncode == 0 and f"{len(parts)} of {len(parts)} partitions already up to date" in again.stdout
    _wait("the writer to keep writing", lambda: live.written() > before, 30, live.proc)
