"""Prometheus metrics and /healthz of a running `k2 run` on the exchange simulator, plus the pure
pieces (reject classes, the latency histogram, exchange times) without a pipeline.

The end-to-end test runs `k2 simulate` and `k2 run` as child processes on 127.0.0.1 and is bounded
in time: every wait has a deadline.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from k2.monitoring import metrics
from k2.simulator.process import SimulatorProcess

REQUIRED = {
    "k2_trades_received_total": {"exchange", "symbol"},
    "k2_trades_written_total": {"exchange"},
    "k2_feed_connected": {"exchange", "connection"},
    "k2_reconnects_total": {"exchange"},
    "k2_last_trade_age_seconds": {"exchange", "symbol"},
    "k2_ingest_latency_seconds_bucket": {"exchange", "le"},
    "k2_ingest_latency_seconds_count": {"exchange"},
    "k2_ingest_latency_seconds_sum": {"exchange"},
    "k2_rejects_total": {"exchange", "reason"},
    "k2_gaps_total": {"exchange", "state"},
}
_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_exposition(text: str) -> dict[str, dict[frozenset, float]]:
    """name -> {frozenset(label items): value}; fails on any line that is not valid text format."""
    out: dict[str, dict[frozenset, float]] = {}
    types: dict[str, str] = {}
    for line in text.splitlines():
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
            assert name not in types, f"TYPE twice for {name}"
            types[name] = kind
            continue
        if line.startswith("#"):
            assert line.startswith("# HELP "), line
            continue
        m = _LINE.match(line)
        assert m, f"not a sample line: {line!r}"
        name, labels, value = m.groups()
        items = frozenset(_LABEL.findall(labels or ""))
        assert len(items) == len(_LABEL.findall(labels or "")), f"repeated label: {line!r}"
        out.setdefault(name, {})[items] = float(value.replace("+Inf", "inf"))
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in types or base in types, f"sample without TYPE: {name}"
    return out


def values(parsed: dict, name: str, **match: str) -> list[float]:
    return [v for labels, v in parsed.get(name, {}).items() if all((k, val) in labels for k, val in match.items())]


def total(parsed: dict, name: str, **match: str) -> float:
    return sum(values(parsed, name, **match))


# -- pure pieces ------------------------------------------------------------------------------------
@pytest.mark.parametrize("reason, cls", [
    ("malformed frame: truncated JSON", "malformed_frame"),
    ("empty message (no value)", "malformed_frame"),
    ("price is not a decimal string: 'abc'", "invalid_field"),
    ("time is not a seconds.microseconds string: '1.2.3'", "invalid_field"),
    ("side/ord_type not buy|sell / limit|market: 'x' 'y'", "invalid_field"),
    ("not a valid trade: event 'trade', symbol '', trade id 1", "invalid_trade"),
    ("parser error: KeyError('p')", "parser_error"),
    ("something new", "other"),
])
def test_reject_reasons_fall_into_stable_classes(reason, cls):
    assert metrics.reject_class(reason) == cls
    assert cls in metrics.REJECT_CLASSES


@pytest.mark.parametrize("how", ["python", "numpy"])
def test_histogram_buckets_are_cumulative_and_le_inclusive(how):
    """The same buckets whether observed one by one (pure Python, what `k2 feed` could use) or a
    batch at a time in numpy (the writers: k2.monitoring.latency.observe)."""
    from k2.monitoring import latency

    h = metrics.Histogram((0.1, 1.0))
    observed = [0.05, 0.1, 0.5, 1.0, 7.0, -0.2]  # -0.2: clock skew counts as 0
    if how == "python":
        h.observe_many("x", observed)
    else:
        latency.observe(h, "x", observed)
    e = metrics.Exposition()
    e.histogram("t_seconds", "test", h, "exchange")
    parsed = parse_exposition(e.render().decode())
    assert values(parsed, "t_seconds_bucket", le="0.1") == [3]
    assert values(parsed, "t_seconds_bucket", le="1.0") == [5]
    assert values(parsed, "t_seconds_bucket", le="+Inf") == [6]
    assert values(parsed, "t_seconds_count") == [6]
    assert values(parsed, "t_seconds_sum")[0] == pytest.approx(8.65)
    assert h.quantile("x", 0.5) == 0.1 and h.quantile("x", 0.6) == 1.0
    assert h.quantile("x", 0.99) == math.inf and h.quantile("y", 0.5) is None


def test_exchange_times_of_every_adapter(fixtures_dir):
    from k2.exchanges import ALL_ADAPTERS, get_adapter
    from k2.exchanges.base import FrameKind
    from k2.monitoring import latency

    assert all(getattr(a, "exchange_time", None) for a in ALL_ADAPTERS), "every adapter names its trade time"
    for name in ("binance", "kraken"):
        adapter = get_adapter(name)
        rows = []
        for line in (fixtures_dir / f"{name}_session.jsonl").read_bytes().splitlines():
            parsed = adapter.parse(line, 1_800_000_000_000_000)
            if parsed.kind is FrameKind.TRADES:
                rows += parsed.rows
        times = latency.exchange_times_s(adapter, rows)
        assert len(times) == len(rows) > 0
        assert all(1.4e9 < t < 2.2e9 for t in times)
    v2 = get_adapter("kraken", "v2")
    row = [None] * len(v2.columns)
    row[v2.columns.index("timestamp")] = "2026-07-15T12:00:00.412398Z"
    assert latency.exchange_times_s(v2, [tuple(row)])[0] == pytest.approx(1784116800.412398, abs=1e-6)


def test_sink_lag_family_splits_topic_and_partition():
    class Stats:
        lag = {"market.crypto.trades.kraken.raw[2]": 17, "market.crypto.trades.binance.raw[0]": 0}

    e = metrics.Exposition()
    metrics.sink_lag_family(e, Stats())
    parsed = parse_exposition(e.render().decode())
    assert values(parsed, "k2_sink_lag_messages", topic="market.crypto.trades.kraken.raw", partition="2") == [17]


def test_label_values_are_escaped():
    e = metrics.Exposition()
    e.family("k2_x", "gauge", "x", [({"symbol": 'a"b\\c\nd'}, 1)])
    assert 'k2_x{symbol="a\\"b\\\\c\\nd"} 1' in e.render().decode()
    parse_exposition(e.render().decode())


# -- end to end -------------------------------------------------------------------------------------
def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _wait(what: str, predicate, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"k2 run exited ({proc.returncode}) while waiting for {what}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


@pytest.fixture
def running(tmp_path):
    """The simulator (both exchanges, some malformed frames) and `k2 run` against it; yields
    (simulator, k2 run process, base URL)."""
    sim = SimulatorProcess("--exchange", "binance,kraken", "--rate", "150", "--malformed-ratio", "0.02",
                           "--no-bursts")
    urls = sim.start()
    config = tmp_path / "k2.toml"
    # a short silence watchdog, so a frozen exchange is noticed within the test's time
    config.write_text("[exchanges.binance]\nstale_after_s = 2.0\n\n[exchanges.kraken]\nstale_after_s = 2.0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    for name, u in urls.items():
        env[f"K2_{name.upper()}_WS_URL"] = u["ws"]
        env[f"K2_{name.upper()}_REST_URL"] = u["rest"]
    env.update(K2_METRICS_ADDR="127.0.0.1:0", K2_CONFIG=str(config), K2_RECONNECT_BASE_S="0.2",
               K2_RECONNECT_CAP_S="0.5", K2_LOG_DIR=str(tmp_path), K2_DATA_DIR=str(tmp_path / "data"))
    proc = subprocess.Popen([sys.executable, "-m", "k2", "run"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        run_file = tmp_path / "data" / "k2.run.json"
        info = _wait("k2.run.json", lambda: run_file.exists() and json.loads(run_file.read_text() or "{}"),
                     60, proc)
        yield sim, proc, f"http://{info['addr']}"
    finally:
        if sim.proc is not None and sim.proc.poll() is None:
            os.kill(sim.proc.pid, signal.SIGCONT)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
        sim.stop()


@pytest.mark.slow
def test_metrics_and_healthz_of_a_running_pipeline(running):
    sim, proc, base = running

    def scrape() -> dict:
        status, body = _get(base + "/metrics")
        assert status == 200
        return parse_exposition(body)

    def flowing():
        m = scrape()
        ok = all(total(m, "k2_trades_written_total", exchange=ex) > 0 and
                 total(m, "k2_ingest_latency_seconds_count", exchange=ex) > 0 and
                 total(m, "k2_rejects_total", exchange=ex) > 0 for ex in ("binance", "kraken"))
        return m if ok else None

    first = _wait("trades, latency and rejects for both exchanges", flowing, 45, proc)
    for name, labels in REQUIRED.items():
        assert first.get(name), f"{name} missing"
        for items in first[name]:
            assert {k for k, _ in items} == labels, (name, items)
    assert set(values(first, "k2_feed_connected")) == {1.0}
    assert {v for k, v in first["k2_rejects_total"].items()} and all(
        dict(k)["reason"] in metrics.REJECT_CLASSES for k in first["k2_rejects_total"])
    assert values(first, "k2_sink_lag_messages") == []  # direct transport: no Kafka
    assert max(values(first, "k2_last_trade_age_seconds")) < 30
    buckets = sorted((float(dict(k)["le"].replace("+Inf", "inf")), v)
                     for k, v in first["k2_ingest_latency_seconds_bucket"].items() if ("exchange", "kraken") in k)
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1][1] == total(first, "k2_ingest_latency_seconds_count", exchange="kraken")
    assert _get(base + "/healthz")[0] == 200
    assert values(first, "k2_up") == [1.0]

    # counters move
    def moved():
        m = scrape()
        return m if all(total(m, "k2_trades_written_total", exchange=ex) > total(first, "k2_trades_written_total",
                                                                                 exchange=ex)
                        and total(m, "k2_trades_received_total", exchange=ex) >
                        total(first, "k2_trades_received_total", exchange=ex)
                        and total(m, "k2_ingest_latency_seconds_count", exchange=ex) >
                        total(first, "k2_ingest_latency_seconds_count", exchange=ex)
                        for ex in ("binance", "kraken")) else None

    _wait("counters to move", moved, 20, proc)

    # the exchanges freeze (process stopped, sockets open): the silence watchdog drops the feeds
    os.kill(sim.proc.pid, signal.SIGSTOP)
    _wait("/healthz 503 after the exchanges froze", lambda: _get(base + "/healthz")[0] == 503, 20, proc)
    frozen = scrape()
    assert 0.0 in values(frozen, "k2_feed_connected")
    assert values(frozen, "k2_up") == [0.0]

    # they come back: reconnected, healthy again, reconnects counted
    os.kill(sim.proc.pid, signal.SIGCONT)
    _wait("/healthz 200 after the exchanges came back", lambda: _get(base + "/healthz")[0] == 200, 30, proc)
    assert total(scrape(), "k2_reconnects_total") > 0

    # the exchanges go away for good
    sim.stop()
    _wait("/healthz 503 after the simulator stopped", lambda: _get(base + "/healthz")[0] == 503, 20, proc)

    if shutil.which("promtool"):  # the exposition passes Prometheus' own linter (where installed)
        body = _get(base + "/metrics")[1]
        lint = subprocess.run(["promtool", "check", "metrics"], input=body, capture_output=True, text=True,
                              timeout=30)
        assert "error" not in (lint.stdout + lint.stderr).lower(), lint.stdout + lint.stderr

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "trades received" in out
