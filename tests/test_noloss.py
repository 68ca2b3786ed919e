"""No path loses a trade (issue 16): the spool is re-sent at the next start, gaps outlive a REST
outage and a restart, the gaps ledger keeps the latest version, and a symbol whose first trade
comes after a reconnect is backfilled from when K2 first covered it (the storm's 26-trade loss).

Real parts throughout: the embedded warehouse (chDB), `k2 run` / `k2 sink` / `k2 feed` as child
processes, the exchange simulator's WebSocket and REST on 127.0.0.1, a Kafka-protocol broker (tansu).
Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest

from k2.exchanges import get_adapter
from k2.feed.gaps import Backfiller, Gap, GapTracker, http_get, now_us
from k2.rejects import Reject
from k2.transport import spool
from k2.warehouse import open_warehouse, stored_query
from kafka_broker import Procs, wait_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _binance_rows() -> list[tuple]:
    """The trade rows of a recorded Binance session (the live parser's output)."""
    adapter, rows = get_adapter("binance"), []
    for line in (FIXTURES / "binance_session.jsonl").read_bytes().splitlines():
        parsed = adapter.parse(line, 1_784_116_800_000_000)
        if parsed.kind.value == "trades":
            rows += parsed.rows
    assert len(rows) >= 5
    return rows


def _unreachable(**extra: str) -> dict[str, str]:
    """Settings for a run whose exchanges cannot be reached (port 9: nothing listens)."""
    return {"K2_BINANCE_WS_URL": "ws://127.0.0.1:9/stream", "K2_BINANCE_REST_URL": "http://127.0.0.1:9",
            "K2_INSTRUMENTS_REFRESH": "0", "K2_RECONNECT_BASE_S": "0.2", "K2_RECONNECT_CAP_S": "0.5", **extra}


def _spool_with(data_dir: Path, rows: list[tuple], reject: Reject) -> Path:
    """What a `k2 run` leaves when the warehouse fails at its stop: its own DirectTransport,
    inserts failing for real (the session made read-only), spooling at close."""
    from k2.transport.direct import DirectTransport

    adapter = get_adapter("binance")
    wh = open_warehouse(data_dir)
    try:
        transport = DirectTransport(wh, [adapter], max_delay_s=0.01)
        transport.shutdown_retry_s = 0.5
        wh.execute("SET readonly = 1")  # every insert fails from now on
        transport.start()
        transport.submit(adapter, rows)
        transport.submit_reject(reject)
        transport.close(60)
        assert transport.stats.spooled == len(rows) + 1, transport.stats
        assert transport.stats.insert_errors > 0 and transport.stats.lost == 0
    finally:
        wh.close()
    files = spool.pending_files(data_dir)
    assert len(files) == 1 and files[0].parent == data_dir / "spool"
    return files[0]


def _bronze_ids(runner: Procs, data_dir: Path) -> list[int]:
    return sorted(int(r["trade_id"]) for r in runner.query(data_dir, "SELECT trade_id FROM k2.bronze_trades_binance"))


# -- the spool ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_rows_spooled_at_a_stop_are_written_once_by_the_next_k2_run(procs, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    rows = _binance_rows()
    raw = b'{"stream":"btcusdt@trade","data":{"e":"trade","p":\xff\xfe}}'  # not UTF-8: kept byte for byte
    _spool_with(data, rows, Reject("binance", "ws", "malformed frame: bad bytes", raw, 1_784_116_800_000_000, "c-0"))

    # the next start: the exchange is unreachable (k2 run then exits 1, saying so), the spool is written
    procs.env.update(_unreachable())
    res = procs.run("run", "--exchange", "binance", "--duration", "2", "--data-dir", str(data))
    assert res.returncode == 1 and "never connected to binance" in res.stderr, res.stderr[-2000:]
    assert _bronze_ids(procs, data) == sorted(r[3] for r in rows)
    assert procs.query(data, "SELECT count() AS n FROM k2.silver_trades_v2")[0]["n"] in (len(rows), str(len(rows)))
    stored = procs.query(data, "SELECT hex(raw) AS raw, reason FROM k2.rejects")
    assert stored == [{"raw": raw.hex().upper(), "reason": "malformed frame: bad bytes"}]
    assert spool.pending_files(data) == []

    # a second start adds nothing (the spool is gone; had it stayed, the key check would skip it)
    procs.run("run", "--exchange", "binance", "--duration", "1", "--data-dir", str(data))
    assert _bronze_ids(procs, data) == sorted(r[3] for r in rows)


@pytest.mark.slow
def test_k2_sink_and_k2_feed_resend_their_data_dirs_spools_once(kafka_broker, procs, tmp_path):  # noqa: F811
    rows = _binance_rows()
    half = len(rows) // 2
    sink_data, feed_data = tmp_path / "sink-data", tmp_path / "feed-data"
    rejects = [Reject("binance", "ws", "malformed frame: x", raw, 1_784_116_800_000_000, "c-0")
               for raw in (b"{oops", b"{oops\xff")]
    _spool_with(sink_data, rows[:half], rejects[0])  # a `k2 run` on the sink's data dir left these
    _spool_with(feed_data, rows[half:], rejects[1])  # and one on the feed's data dir these

    sink = procs.start("sink", "sink", "--kafka", kafka_broker.bootstrap, "--data-dir", str(sink_data))
    feed = procs.start("feed", "feed", "--kafka", kafka_broker.bootstrap, "--exchange", "binance",
                       "--data-dir", str(feed_data), env=_unreachable())
    try:
        wait_for(lambda: not spool.pending_files(feed_data) and not spool.pending_files(sink_data), 60,
                 "both spools to be re-sent")
        wait_for(lambda: len(_bronze_ids(procs, sink_data)) >= len(rows), 60,
                 "the sink to write every spooled trade")
    finally:
        feed.stop()
        sink.stop()
    assert _bronze_ids(procs, sink_data) == sorted(r[3] for r in rows), procs.describe()
    stored = sorted(r["raw"] for r in procs.query(sink_data, "SELECT hex(raw) AS raw FROM k2.rejects"))
    assert stored == sorted(r.raw.hex().upper() for r in rejects)  # each once, byte for byte


# -- the gaps ledger ------------------------------------------------------------------------------------
def test_ledger_versions_resolve_to_the_latest_state_whatever_order_they_are_written_in(tmp_path):
    wh = open_warehouse(tmp_path / "data")
    try:
        gap = Gap("binance", "BTCUSDT", "ids", 100, 120)
        found = gap.ledger_params()
        gap.state, gap.recovered = "filled", 21
        filled = gap.changed().ledger_params()
        assert filled["updated"] > found["updated"]
        # the thread pool of old wrote them in any order: the later version first, then the older one
        wh.execute(stored_query("gap_upsert"), filled)
        wh.execute(stored_query("gap_upsert"), found)
        wh.execute("OPTIMIZE TABLE k2.gaps FINAL")
        assert wh.rows("SELECT toString(state), trades_recovered FROM k2.gaps FINAL") == [["filled", "21"]]
    finally:
        wh.close()


def test_a_head_gaps_coverage_time_survives_the_ledger_so_a_restart_retries_the_same_gap(tmp_path):
    """A gap at a symbol's first trade after a reconnect, whose first missing id is not found yet,
    is defined by the time K2 covered the symbol from; read back by the next `k2 run` without it,
    the retry asked for a fixed window of ids and could call the gap unfillable."""
    from k2.services.store import WarehouseStore

    wh = open_warehouse(tmp_path / "data")
    try:
        head = Gap("binance", "BTCUSDT", "ids", 5_000, 5_999, since_us=1_764_000_000_123_456)
        plain = Gap("binance", "ETHUSDT", "ids", 100, 120)
        for gap in (head, plain):
            wh.execute(stored_query("gap_upsert"), gap.ledger_params())
        retry = {g.symbol: g for g in WarehouseStore(wh).gaps_to_retry(get_adapter("binance"))}
        assert retry["BTCUSDT"].since_us == 1_764_000_000_123_456 and retry["BTCUSDT"].gap_id == head.gap_id
        assert retry["ETHUSDT"].since_us is None
        assert (retry["BTCUSDT"].start, retry["BTCUSDT"].end) == (5_000, 5_999)
    finally:
        wh.close()


# -- a symbol's first trade after a reconnect (the storm's 26 missing trades) -----------------------------
def test_a_symbols_first_trade_after_a_reconnect_opens_a_gap_from_when_it_was_covered():
    binance = get_adapter("binance")
    found: list[Gap] = []
    tracker = GapTracker(binance, found.append)
    before = now_us()
    tracker.connected(["BTCUSDT", "ETHUSDT"])
    # ETHUSDT trades on the first connection; BTCUSDT has not traded yet when it drops
    row = ("trade", 1, "ETHUSDT", 500, "1.0", "1.0", 1, False, True, 1)
    tracker.observe([row])
    tracker.reconnected()
    tracker.connected(["BTCUSDT", "ETHUSDT"])
    tracker.observe([("trade", 1, "BTCUSDT", 7000, "1.0", "1.0", 1, False, True, 1),
                     ("trade", 1, "ETHUSDT", 501, "1.0", "1.0", 1, False, True, 1)])
    assert len(found) == 1, found
    gap = found[0]
    assert (gap.symbol, gap.kind, gap.end) == ("BTCUSDT", "ids", 6999)
    assert gap.since_us is not None and before <= gap.since_us <= now_us()
    tracker.observe([("trade", 1, "BTCUSDT", 7001, "1.0", "1.0", 1, False, True, 1)])
    assert len(found) == 1  # once

    kraken = get_adapter("kraken")
    found.clear()
    tracker = GapTracker(kraken, found.append)
    tracker.connected(["XBT/USD"])
    covered = tracker.covered_since["XBT/USD"]
    tracker.reconnected()  # no XBT/USD trade seen before the drop
    tracker.observe([(0, "XBT/USD", "97000.1", "0.1", f"{(covered + 5_000_000) / 1e6:.6f}", "b", "l", "", 0, 1)])
    assert [(g.kind, g.start) for g in found] == [("time", covered)]


@pytest.mark.slow
def test_a_head_gap_is_backfilled_with_exactly_the_trades_since_coverage(procs, tmp_path):  # noqa: F811
    sim, record = procs.simulator(rate=150, duration=40, exchanges="binance", extra=["--symbols", "BTCUSDT"])
    # a short run makes the market trade (the simulator trades a market once someone subscribes)
    run = procs.start("run", "run", "--exchange", "binance", "--symbols", "BTCUSDT", "--duration", "4",
                      "--data-dir", str(tmp_path / "data"))
    assert run.wait(60) == 0, run.describe()
    time.sleep(1.0)
    rest = procs.env["K2_BINANCE_REST_URL"]
    recent = json.loads(urllib.request.urlopen(f"{rest}/api/v3/trades?symbol=BTCUSDT&limit=1000", timeout=10).read())
    assert len(recent) > 300
    first_seen = recent[-50]["id"]  # the first trade after the reconnect
    since_ms = recent[-300]["time"]  # when K2 first covered the symbol
    expected = [t["id"] for t in recent if t["time"] * 1000 >= since_ms * 1000 and t["id"] < first_seen]

    got: list[tuple] = []
    gap = Gap("binance", "BTCUSDT", "ids", max(0, first_seen - 100), first_seen - 1, since_us=since_ms * 1000)
    backfiller = Backfiller(get_adapter("binance"), rest, lambda rows: got.extend(rows) or len(rows),
                            lambda g: None, pause_s=0.0, fetch=http_get)
    asyncio.run(backfiller._fill(gap, asyncio.Event()))
    assert gap.state == "filled", gap
    assert gap.start == expected[0] and sorted(r[3] for r in got) == expected
    assert gap.recovered == len(expected)


# -- gaps across a REST outage and a restart ------------------------------------------------------------
@pytest.mark.slow
def test_gaps_left_open_by_a_rest_outage_are_filled_by_the_next_start(procs, tmp_path):  # noqa: F811
    data = tmp_path / "data"
    # REST is down for the first 16 s; connections are cut every 1.5 s for 8 s (gaps by id)
    sim, record = procs.simulator(rate=120, duration=60, exchanges="binance",
                                  extra=["--rest-down", "0-16", "--drop-every", "1.5", "--faults-for", "8"])
    started = time.monotonic()
    run = procs.start("run1", "run", "--exchange", "binance", "--duration", "9", "--data-dir", str(data))
    assert run.wait(90) == 0, run.describe()
    states = {r["state"]: int(r["n"]) for r in procs.query(
        data, "SELECT toString(state) AS state, count() AS n FROM k2.gaps FINAL GROUP BY state")}
    assert states.get("open", 0) > 0 and "unfillable" not in states, states  # REST down proves nothing
    details = procs.query(data, "SELECT detail FROM k2.gaps FINAL WHERE state = 'open'")
    assert any("REST unavailable" in r["detail"] for r in details), details

    time.sleep(max(0.0, started + 17 - time.monotonic()))  # REST is back 16 s after the simulator started
    assert sim.alive(), sim.describe()
    run = procs.start("run2", "run", "--exchange", "binance", "--duration", "10", "--data-dir", str(data))
    assert run.wait(90) == 0, run.describe()
    states = {r["state"]: int(r["n"]) for r in procs.query(
        data, "SELECT toString(state) AS state, count() AS n FROM k2.gaps FINAL GROUP BY state")}
    assert set(states) == {"filled"}, states
    check = procs.run("validate", "--data-dir", str(data))
    assert "FAIL  quality.sequential_ids" not in check.stdout and check.returncode == 0, check.stdout[-3000:]
