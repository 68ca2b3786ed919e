"""deploy/: alert rules, Prometheus config, Grafana provisioning and dashboard, compose file.

promtool and docker compose are used where installed (Debian: `apt-get install prometheus
docker-compose`); without them the files are parsed and checked here: every metric an alert or a
panel names is one K2 exposes, the alerts the issue asks for exist, the compose file has its
services and the feeds' resource limits, and the dashboard's ClickHouse SQL runs on a real
(embedded) warehouse.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import yaml

from k2.config import MarketHealthSettings
from k2.monitoring import metrics
from k2.monitoring.markets import MarketWatch
from k2.monitoring.health import Condition, Health

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
PROMQL_FUNCS = {"sum", "rate", "increase", "delta", "histogram_quantile", "count", "vector", "max", "min", "avg",
                "by", "on", "and", "or", "unless", "without", "ignoring", "group_left", "group_right", "bool",
                "label_values", "offset", "abs", "time"}


def exposed_metric_names() -> set[str]:
    """Every series name K2's /metrics can carry: rendered from a stand-in pipeline with one of
    everything (a connection, a writer, a Kafka sink, a gap)."""
    conn = SimpleNamespace(exchange="kraken", connection="kraken-0", connected=True, last_message_at=1.0,
                           trades_by_symbol={"XBT/USD": 10}, last_trade_by_symbol={"XBT/USD": 1.0}, reconnects=0, connect_failures=0,
                           rejects=0, duplicates=0, symbols=["XBT/USD"], last_price_by_symbol={"XBT/USD": "97000"},
                           connected_since=0.0, frames=10, last_error="")
    writer = SimpleNamespace(written={"kraken": 1}, duplicates={"kraken": 0}, insert_errors=0, batches=1,
                             last_insert_s=0.1, rejects_written=0, rejects_by_reason={"kraken": {"other": 1}},
                             lag={"market.crypto.trades.kraken.raw[0]": 3})
    runtime = SimpleNamespace(connection_stats=lambda: [conn], healthy=lambda: True,
                              gaps=[SimpleNamespace(gap_id="g", exchange="kraken", state="open")])
    transport = SimpleNamespace(stats=writer, buffered=0, sink=SimpleNamespace(stats=writer))
    health = Health([Condition(n, True) for n in ("feed:kraken", "venues", "writes", "buffer", "disk")])
    report = MarketWatch(MarketHealthSettings(), lambda ex, sym: "BTC/USD", 0.0).evaluate(
        [conn] + [SimpleNamespace(**{**vars(conn), "exchange": ex, "connection": f"{ex}-0"})
                  for ex in ("bitfinex", "gemini")], ["kraken", "bitfinex", "gemini"], 10.0)
    pipeline = SimpleNamespace(runtime=runtime, transport=transport, exchanges=["kraken"], health=lambda: health,
                               market_report=lambda: report)
    hist = metrics.Histogram()
    hist.observe_many("kraken", [0.1])
    metrics.INGEST_LATENCY.observe_many("kraken", [0.1])
    text = metrics.render(pipeline).decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    return names | {"up"}  # Prometheus' own per-target series


def metric_names_in(expr: str) -> set[str]:
    """Identifiers in a PromQL expression that name series (not functions, labels or keywords)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))
    return {w for w in words if w not in PROMQL_FUNCS and not re.fullmatch(r"\d+[smhd]?|e", w)}


# -- alert rules ------------------------------------------------------------------------------------
def load_rules() -> list[dict]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def test_alert_rules_pass_promtool_or_parse():
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    rules = load_rules()
    assert rules and all({"alert", "expr", "labels", "annotations"} <= set(r) for r in rules)
    assert len({r["alert"] for r in rules}) == len(rules)
    for r in rules:
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]
        assert {"summary", "description"} <= set(r["annotations"]), r["alert"]


def test_alert_rules_name_real_metrics():
    names = exposed_metric_names()
    for r in load_rules():
        unknown = metric_names_in(r["expr"]) - names
        assert not unknown, f"{r['alert']}: unknown metrics {unknown}"


def test_the_alerts_the_issue_asks_for():
    rules = {r["alert"]: r for r in load_rules()}
    down = rules["K2FeedDown"]
    assert "k2_feed_connected" in down["expr"] and down["for"] == "60s"
    # issue 21: staleness relative to each symbol's own rate replaces the fixed "5 minutes" rule
    assert "K2NoTrades" not in rules and rules["K2SymbolStale"]["expr"].strip() == "k2_symbol_stale == 1"
    assert "k2_venue_healthy" in rules["K2VenueUnhealthy"]["expr"]
    assert "k2_venue_maintenance" in rules["K2VenueMaintenance"]["expr"]
    assert "k2_spread_bps" in rules["K2Dislocation"]["expr"] and rules["K2Dislocation"]["for"] == "2m"
    lat = rules["K2IngestLatencyHigh"]["expr"]
    assert "histogram_quantile(0.99" in lat and "k2_ingest_latency_seconds_bucket" in lat
    assert lat.strip().endswith("> 1")
    assert "k2_rejects_total" in rules["K2RejectsHigh"]["expr"]
    lag = rules["K2SinkLagGrowing"]["expr"]
    assert "k2_sink_lag_messages" in lag and "delta(" in lag
    # issue 16: health reflects writes -- an alert per write-side condition of k2.monitoring.health
    for alert, condition in (("K2WritesFailing", "writes"), ("K2WriterStalled", "buffer"),
                             ("K2DiskAlmostFull", "disk"), ("K2VenueNeverConnected", "venues")):
        assert f'k2_health{{condition="{condition}"}} == 0' in rules[alert]["expr"], alert
        assert rules[alert]["labels"]["severity"] == "critical", alert


def test_prometheus_config():
    path = DEPLOY / "prometheus" / "prometheus.yml"
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "config", str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
    doc = yaml.safe_load(path.read_text())
    assert doc["rule_files"] == ["alerts.yml"]
    jobs = {j["job_name"]: j for j in doc["scrape_configs"]}
    targets = {t for j in jobs.values() for sc in j["static_configs"] for t in sc["targets"]}
    from k2.exchanges import ADAPTERS

    assert {f"feed-{ex}:9108" for ex in ADAPTERS} | {"sink:9108"} <= targets


# -- grafana ----------------------------------------------------------------------------------------
def dashboard() -> dict:
    return json.loads((DEPLOY / "grafana" / "dashboards" / "k2.json").read_text())


def test_dashboard_is_generated_from_its_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_dashboard", DEPLOY / "grafana" / "make_dashboard.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.build() == dashboard(), "run deploy/grafana/make_dashboard.py after editing it"
    embedded = json.loads((DEPLOY / "grafana" / "dashboards" / "k2-embedded.json").read_text())
    assert mod.build_embedded() == embedded, "run deploy/grafana/make_dashboard.py after editing it"
    sources = {t["datasource"]["uid"] for p in embedded["panels"] for t in p.get("targets", [])}
    assert "k2-embedded" in sources and "k2-clickhouse" not in sources


def test_dashboard_datasources_and_promql():
    board = dashboard()
    provisioned = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "datasources" / "k2.yml").read_text())
    uids = {d["uid"]: d["type"] for d in provisioned["datasources"]}
    assert uids == {"k2-prometheus": "prometheus", "k2-clickhouse": "grafana-clickhouse-datasource",
                    "k2-embedded": "grafana-clickhouse-datasource"}
    names = exposed_metric_names()
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert {p["type"] for p in panels} >= {"candlestick", "timeseries", "stat"}
    for p in panels:
        for t in p["targets"]:
            assert uids[t["datasource"]["uid"]] == t["datasource"]["type"], p["title"]
            if "expr" in t:
                unknown = metric_names_in(t["expr"]) - names
                assert not unknown, f"{p['title']}: unknown metrics {unknown}"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    dash_prov = yaml.safe_load((DEPLOY / "grafana" / "provisioning" / "dashboards" / "k2.yml").read_text())
    assert dash_prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def _grafana_sql(sql: str, interval: str) -> str:
    """The ClickHouse plugin's macros and the dashboard's variables, expanded as Grafana would."""
    sql = re.sub(r"\$__timeFilter\((\w+)\)",
                 r"\1 >= now() - INTERVAL 3650 DAY AND \1 <= now() + INTERVAL 3650 DAY", sql)
    sql = re.sub(r"\$__timeInterval\((\w+)\)", r"toStartOfInterval(\1, INTERVAL 60 second)", sql)
    sql = sql.replace("$__interval_s", "60").replace("${interval}", interval).replace("${symbol}", "BTC/USD")
    assert "$" not in sql, sql
    return sql


def test_dashboard_clickhouse_queries_run(clean_warehouse, load_frames, fixtures_dir):
    for ex in ("binance", "kraken"):
        load_frames(clean_warehouse, ex, fixtures_dir / f"{ex}_session.jsonl")
    board = dashboard()
    queries = [t["rawSql"] for p in board["panels"] if p["type"] != "row" for t in p["targets"] if "rawSql" in t]
    queries += [v["query"] for v in board["templating"]["list"]
                if v.get("datasource", {}).get("uid") == "k2-clickhouse"]
    assert len(queries) >= 5
    candles = None
    for sql in queries:
        for interval in ("1m", "1d"):
            rows = clean_warehouse.rows(_grafana_sql(sql, interval))
            if "ohlcv_1m_cross" in _grafana_sql(sql, interval) and "open" in sql:
                candles = rows
    assert candles, "the candlestick query returns the fixture's BTC/USD candles"


# -- compose ----------------------------------------------------------------------------------------
COMPOSE_ENV = {"CLICKHOUSE_PASSWORD": "x", "GRAFANA_CLICKHOUSE_PASSWORD": "y", "GRAFANA_ADMIN_PASSWORD": "z"}


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    if shutil.which("docker-compose"):
        return [shutil.which("docker-compose")]
    return None


def test_compose_file():
    path = DEPLOY / "docker-compose.yml"
    cli = _compose_cli()
    if cli:  # docker compose validates offline, no engine needed
        env = {**os.environ, **COMPOSE_ENV}
        r = subprocess.run([*cli, "-f", str(path), "config", "-q"], capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run([*cli, "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60,
                           env={k: v for k, v in env.items() if k != "CLICKHOUSE_PASSWORD"})
        assert r.returncode != 0 and "CLICKHOUSE_PASSWORD" in r.stdout + r.stderr  # no default password
    doc = yaml.safe_load(path.read_text())
    services = doc["services"]
    from k2.exchanges import ADAPTERS

    feeds = {f"feed-{ex}" for ex in ADAPTERS}  # one feed service per exchange K2 supports
    assert {"redpanda", "clickhouse", "sink", "prometheus", "grafana"} | feeds <= set(services)
    for name in feeds:
        limits = services[name]["deploy"]["resources"]["limits"]
        assert (str(limits["cpus"]), limits["memory"]) == ("0.5", "512M")
        assert services[name]["command"] == ["feed", "--exchange", name.removeprefix("feed-")]
    assert services["sink"]["command"] == ["sink"]
    for s in services.values():
        for port in s.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), port  # nothing published beyond the host
    sink_env = services["sink"]["environment"]
    assert sink_env["K2_WAREHOUSE"].startswith("clickhouse://k2@clickhouse:8123/")  # password kept out of the URL
    for rel in ("prometheus/prometheus.yml", "prometheus/alerts.yml", "clickhouse/users.d/k2-users.xml",
                "grafana/provisioning", "grafana/dashboards", "Dockerfile"):
        assert (DEPLOY / rel).exists(), rel


def test_dockerfile():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r'^ENTRYPOINT \["k2"\]', text, re.M)
    assert ".[kafka,server]" in text and "USER k2" in text and "/healthz" in text
