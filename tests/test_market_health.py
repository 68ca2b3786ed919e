"""Exchange health per venue and per symbol, and live spreads (issue 21, ADR 0026).

The rules (k2.monitoring.markets) are checked on plain facts: staleness relative to each
symbol's own trade rate (a quiet pair is not stale where a busy one is), warming up, divergence
from the other venues' median, the venues' status endpoints (each real format, parsed back from
what the simulator serves), reconnects. End to end, `k2 simulate` drifts a venue, puts one in
announced maintenance and stops one pair while another trades slowly all along; `k2 run`'s
metrics, /healthz and `k2 health` show each signal and state appear and clear, with no false
alarm on the quiet pair, and `k2 spreads` finds the dislocation in its 1 s windows.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import SimpleNamespace

import pytest

from k2.config import MarketHealthSettings
from k2.exchanges.status import STATUS_ENDPOINTS, VenueStatus
from k2.feed.venue_status import StatusReading
from k2.monitoring.markets import MarketWatch
from k2.simulator.process import SimulatorProcess
from k2.simulator.status import status_answer


NOW = 1_800_000_000.0
CANONICAL = {"BTCUSDT": "BTC/USDT", "BTC-USDT": "BTC/USDT", "RAREUSDT": "RARE/USDT", "XBT/USD": "BTC/USD"}


def conn(exchange: str, trades: dict[str, tuple[int, float, str]], connected: bool = True, reconnects: int = 0,
         frames: int = 1000, rejects: int = 0, at: float = NOW):
    """trades: symbol -> (count, seconds before `at` of its last trade, last price)."""
    return SimpleNamespace(
        exchange=exchange, connection=f"{exchange}-0", symbols=list(trades), connected=connected,
        connected_since=NOW - 7200, last_message_at=at - 0.1, last_error="", reconnects=reconnects,
        frames=frames, rejects=rejects,
        trades_by_symbol={s: n for s, (n, _, _) in trades.items()},
        last_trade_by_symbol={s: at - age for s, (_, age, _) in trades.items()},
        last_price_by_symbol={s: p for s, (_, _, p) in trades.items()})


def watch(started_ago: float = 3600.0) -> MarketWatch:
    return MarketWatch(MarketHealthSettings(), lambda ex, sym: CANONICAL.get(sym), NOW - started_ago)


def states(report) -> dict[tuple[str, str], str]:
    return {(s.exchange, s.symbol): s.state for s in report.symbols}


def test_staleness_is_relative_to_the_symbols_own_rate():
    w = watch()
    # an hour: BTC traded 36,000 times (10/s), RARE 6 times (every 10 minutes)
    quiet_busy = [conn("binance", {"BTCUSDT": (36_000, 0.2, "97000"), "RAREUSDT": (6, 240.0, "1.5")})]
    r = w.evaluate(quiet_busy, ["binance"], NOW)
    assert states(r) == {("binance", "BTCUSDT"): "ok", ("binance", "RAREUSDT"): "ok"}  # 4 min: not stale
    rare = next(s for s in r.symbols if s.symbol == "RAREUSDT")
    assert rare.typical_interval_s == pytest.approx(600, rel=0.01) and rare.stale_after_s == pytest.approx(6000, rel=0.01)
    assert r.healthy and all(c.ok for c in r.conditions())
    # BTC silent for 8 s: stale (10/s -> threshold max(5 s, 10 x 0.1 s)); the venue turns red
    r = w.evaluate([conn("binance", {"BTCUSDT": (36_000, 8.0, "97000"), "RAREUSDT": (6, 250.0, "1.5")}, at=NOW + 8)],
                   ["binance"], NOW + 8)
    assert states(r)[("binance", "BTCUSDT")] == "stale" and states(r)[("binance", "RAREUSDT")] == "ok"
    assert r.venues["binance"].state == "stale" and not r.healthy
    (cond,) = r.conditions()
    assert cond.name == "feed:binance" and not cond.ok and "BTCUSDT" in cond.reason and "no trade for" in cond.reason
    # trades again: clear
    r = w.evaluate([conn("binance", {"BTCUSDT": (36_100, 0.1, "97000"), "RAREUSDT": (6, 260.0, "1.5")}, at=NOW + 18)],
                   ["binance"], NOW + 18)
    assert r.venues["binance"].state == "ok" and r.healthy


def test_a_new_symbol_is_warming_up_not_stale():
    r = watch(started_ago=30).evaluate([conn("kraken", {"XBT/USD": (3, 25.0, "97000")})], ["kraken"], NOW)
    assert states(r) == {("kraken", "XBT/USD"): "warming"} and r.healthy


def test_price_divergence_from_the_other_venues_median():
    w = watch()
    stats = [conn("binance", {"BTCUSDT": (5000, 0.1, "100000")}), conn("okx", {"BTC-USDT": (5000, 0.1, "101500")}),
             conn("bybit", {"BTCUSDT": (5000, 0.1, "100010")})]
    r = w.evaluate(stats, ["binance", "okx", "bybit"], NOW)
    okx = next(s for s in r.symbols if s.exchange == "okx")
    assert okx.state == "diverging" and okx.divergence_bps == pytest.approx((101500 / 100005 - 1) * 1e4)
    assert r.venues["okx"].state == "degraded" and "price divergence" in r.venues["okx"].reasons[0]
    assert r.healthy  # a price apart is a signal, not K2 failing: /healthz stays green
    spread = {(p.venue_a, p.venue_b): p.bps for p in r.spreads}
    assert spread[("binance", "okx")] == pytest.approx(150.0)
    assert spread[("binance", "bybit")] == pytest.approx(1.0)
    # an old price is left out of spreads and consensus
    stats[1] = conn("okx", {"BTC-USDT": (5000, 120.0, "101500")})
    r = w.evaluate(stats, ["binance", "okx", "bybit"], NOW + 1)
    assert {(p.venue_a, p.venue_b) for p in r.spreads} == {("binance", "bybit")}


def test_maintenance_scheduled_reconnects_and_rejects():
    w = watch()
    stats = [conn("kraken", {"XBT/USD": (5000, 0.1, "97000")}), conn("okx", {"BTC-USDT": (5000, 0.1, "97000")})]
    status = {"kraken": StatusReading(VenueStatus("maintenance", "status maintenance"), "", NOW),
              "okx": StatusReading(VenueStatus("scheduled", "upgrade from 2027-01-01T00:00:00Z"), "", NOW)}
    r = w.evaluate(stats, ["kraken", "okx"], NOW, venue_status=status)
    assert r.venues["kraken"].state == "maintenance" and r.venues["kraken"].venue_status == "maintenance"
    assert r.venues["okx"].state == "degraded" and "scheduled" in r.venues["okx"].reasons[0]
    assert [c.name for c in r.conditions() if not c.ok] == ["feed:kraken"]
    # an unreadable status endpoint is "unknown", never "online"
    r = w.evaluate(stats, ["kraken"], NOW + 1, venue_status={"kraken": StatusReading(None, "HTTPError 503", NOW)})
    assert r.venues["kraken"].venue_status == "unknown" and r.venues["kraken"].state == "ok"
    # reconnects within 15 minutes, rejects since the last evaluation
    w.evaluate([conn("okx", {"BTC-USDT": (5000, 0.1, "97000")}, reconnects=1, at=NOW + 2)], ["okx"], NOW + 2)
    r = w.evaluate([conn("okx", {"BTC-USDT": (5100, 0.1, "97000")}, reconnects=5, frames=2000, rejects=50,
                         at=NOW + 60)], ["okx"], NOW + 60)
    reasons = " | ".join(r.venues["okx"].reasons)
    assert "5 reconnects in the last 15 min" in reasons and "50 of 1000 frames rejected" in reasons
    gaps = [SimpleNamespace(exchange="okx", state="unfillable"),
            SimpleNamespace(exchange="okx", state="open", detected_us=int((NOW - 1200) * 1e6)),
            SimpleNamespace(exchange="okx", state="open", detected_us=int((NOW + 55) * 1e6))]  # recent: fine
    r = w.evaluate([conn("okx", {"BTC-USDT": (5200, 0.1, "97000")}, reconnects=5, frames=3000, rejects=50,
                         at=NOW + 60.5)], ["okx"], NOW + 60.5, gaps=gaps)
    reasons = " | ".join(r.venues["okx"].reasons)
    assert "1 trade gaps could not be backfilled" in reasons and "1 trade gaps waiting for backfill" in reasons
    assert r.venues["okx"].state == "degraded" and r.healthy
    down = w.evaluate([conn("okx", {"BTC-USDT": (5100, 0.1, "97000")}, connected=False, at=NOW + 61)], ["okx"],
                      NOW + 61)
    assert down.venues["okx"].state == "down" and not down.healthy


@pytest.mark.parametrize("exchange", sorted(STATUS_ENDPOINTS))
def test_the_venues_status_formats_parse_back(exchange):
    _path, parse = STATUS_ENDPOINTS[exchange]
    expect = {"none": "online", "ongoing": "maintenance", "completed": "online",
              "scheduled": "online" if exchange in ("binance", "bitfinex") else "scheduled"}
    for phase, state in expect.items():
        code, body = status_answer(exchange, phase, 1_800_000_000_000, 1_800_000_600_000)
        assert code == 200
        assert parse(json.dumps(body).encode()).state == state, (phase, body)
    with pytest.raises(ValueError):
        parse(b"<html>503</html>")


# -- end to end -----------------------------------------------------------------------------------------
DRIFT_AT, CLEAR_AT = 30.0, 46.0


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _metric(text: str, name: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def _k2(env: dict, tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k2", *args], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.slow
def test_signals_and_states_appear_and_clear(tmp_path):
    window = f"@{DRIFT_AT:g}-{CLEAR_AT:g}"
    with SimulatorProcess("--exchange", "binance,okx,bybit,kraken", "--rate", "200", "--no-bursts",
                          "--symbols", "BTC/USDT,ETH/USDT,SOL/USDT,BTC/USD",
                          "--drift", f"okx:150{window}", "--maintenance", f"kraken{window}",
                          "--slow", f"ETH/USDT:0{window}", "--slow", "SOL/USDT:0.01",
                          "--duration", "120") as sim:
        started = time.monotonic()
        env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
        for name, u in sim.urls.items():
            env[f"K2_{name.upper()}_WS_URL"] = u["ws"]
            env[f"K2_{name.upper()}_REST_URL"] = u["rest"]
        env.update(K2_METRICS_ADDR="127.0.0.1:0", K2_LOG_DIR=str(tmp_path), K2_DATA_DIR=str(tmp_path / "data"),
                   K2_EXCHANGES="binance,okx,bybit,kraken", K2_SYMBOLS="BTC/USDT,ETH/USDT,SOL/USDT,BTC/USD",
                   K2_HEALTH_STATUS_POLL_S="0.5", K2_HEALTH_STALE_MIN_S="2", K2_RECONNECT_BASE_S="0.2")
        proc = subprocess.Popen([sys.executable, "-m", "k2", "run"], cwd=tmp_path, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        seen: dict[str, float] = {}
        quiet_states: set[str] = set()
        try:
            run_file = tmp_path / "data" / "k2.run.json"
            while not (run_file.exists() and run_file.read_text().strip()):
                assert proc.poll() is None and time.monotonic() - started < DRIFT_AT, "k2 run did not start in time"
                time.sleep(0.2)
            base = "http://" + json.loads(run_file.read_text())["addr"]

            def sample() -> tuple[float, str, int]:
                _, metrics = _get(base + "/metrics")
                code, _ = _get(base + "/healthz")
                elapsed = time.monotonic() - started
                for key, v in _metric(metrics, "k2_symbol_stale").items():
                    if "SOL" in key:
                        quiet_states.add(f"stale={v:g}")
                return elapsed, metrics, code

            # before the faults: every venue ok, nothing apart by more than 50 bp
            while True:
                elapsed, metrics, code = sample()
                venues = _metric(metrics, "k2_venue_healthy")
                if len(venues) == 4 and all(venues.values()) and code == 200 and \
                        len(_metric(metrics, "k2_spread_bps")) >= 6:
                    break
                assert elapsed < DRIFT_AT - 2, f"not healthy before the faults: {venues} {code}"
                time.sleep(0.3)
            assert max(abs(v) for v in _metric(metrics, "k2_spread_bps").values()) < 50
            h = _k2(env, tmp_path, "health")
            assert h.returncode == 0 and "HEALTHY" in h.stdout, h.stdout + h.stderr

            # the faults: each signal and state appears
            while len(seen) < 5:
                elapsed, metrics, code = sample()
                spreads = {k: v for k, v in _metric(metrics, "k2_spread_bps").items()
                           if 'venue_b="okx"' in k and "BTC/USDT" in k}  # (ETH stopped, SOL is quiet)
                if spreads and min(spreads.values()) > 100:
                    seen.setdefault("dislocation", elapsed)
                if _metric(metrics, "k2_venue_maintenance").get('exchange="kraken"') == 1 and code == 503:
                    seen.setdefault("maintenance", elapsed)
                div = _metric(metrics, "k2_price_divergence_bps").get('exchange="okx",symbol="BTC-USDT"', 0)
                if _metric(metrics, "k2_venue_state").get('exchange="okx",state="degraded"') == 1 and div > 100:
                    seen.setdefault("divergence", elapsed)
                stale = _metric(metrics, "k2_symbol_stale")
                if any(v == 1 for k, v in stale.items() if "ETH" in k and "kraken" not in k):
                    seen.setdefault("stale", elapsed)
                if "maintenance" in seen and "health" not in seen:
                    h = _k2(env, tmp_path, "health")
                    if h.returncode == 1 and re.search(r"kraken\s+MAINTENANCE\s+maintenance", h.stdout):
                        seen["health"] = elapsed
                assert elapsed < CLEAR_AT, f"by the end of the fault window only {sorted(seen)} appeared"
                time.sleep(0.3)
            assert all(DRIFT_AT - 0.5 <= t for t in seen.values()), seen
            # k2 spreads finds the dislocation in its 1 s windows, through the running pipeline
            s = _k2(env, tmp_path, "spreads", "BTC/USDT", "--interval", "1s", "--venues", "binance,okx",
                    "--min-bps", "100", "--min-windows", "2", "--since", "2m", "--format", "json")
            assert s.returncode == 0, s.stderr
            rows = [json.loads(line) for line in s.stdout.splitlines()]
            assert rows and all(140 < float(r["last_spread_bps"]) < 160 for r in rows), rows[:3]

            # after the window: everything clears
            while True:
                elapsed, metrics, code = sample()
                venues = _metric(metrics, "k2_venue_state")
                spreads = _metric(metrics, "k2_spread_bps")
                if code == 200 and all(venues.get(f'exchange="{ex}",state="ok"') == 1
                                       for ex in ("binance", "okx", "bybit", "kraken")) \
                        and spreads and max(abs(v) for v in spreads.values()) < 50 \
                        and not any(_metric(metrics, "k2_symbol_stale").values()):
                    break
                assert elapsed < CLEAR_AT + 30, f"did not clear: {venues} {code}"
                time.sleep(0.3)
            h = _k2(env, tmp_path, "health", "--format", "json")
            assert h.returncode == 0 and json.loads(h.stdout)["healthy"] is True, h.stdout
            # the quiet pair traded all along and was never called stale
            assert quiet_states == {"stale=0"}, quiet_states
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()


@pytest.mark.parametrize("args, message", [
    (("--drift", "okx"), "--drift: 'okx' is not VENUE:BPS[@A-B]"),
    (("--drift", "okx:lots"), "is not VENUE:BPS"),
    (("--drift", "okx:50@30-10"), "the window must be A-B with 0 <= A < B"),
    (("--drift", "nowhere:50"), "nowhere"),
    (("--maintenance", "coinbase@5-10"), "coinbase publishes no status endpoint"),
    (("--slow", "BTCUSDT:0.5"), "is not a canonical symbol"),
    (("--slow", "BTC/USD:2"), "the factor must be between 0 and 1"),
])
def test_simulator_market_flags_refuse_bad_values(args, message):
    r = subprocess.run([sys.executable, "-m", "k2", "simulate", "--duration", "1", *args], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r
    assert r.stderr.startswith("k2: error: ") and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
