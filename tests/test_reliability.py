"""Reliability: crash safety of the embedded store, rebuild from bronze, fuzzed parsers.

Processes run on 127.0.0.1 and are bounded in time; fuzzing is bounded in examples.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from k2.errors import FrameError
from k2.exchanges import ALL_ADAPTERS
from k2.exchanges.base import FrameKind, Parsed
from k2.simulator.process import SimulatorProcess
from test_feed import _env, _k2, _rows, _start_run, _wait_for

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SAMPLES = FIXTURES / "samples"


# -- crash safety -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_in_a_burst_then_restart_keeps_every_trade_once(tmp_path):
    """`k2 run` killed with SIGKILL while thousands of trades per second arrive, then started
    again: the data dir opens, the gap left by the crash is backfilled from the REST API, nothing
    is counted twice, and validation passes."""
    sim = SimulatorProcess("--exchange", "binance,kraken", "--rate", "3000", "--binance-message-limit", "0")
    urls = sim.start()
    data = tmp_path / "d"
    env = _env(urls)
    try:
        first = _start_run(data, env, "--exchange", "binance,kraken")
        _wait_for(lambda: (data / "k2.run.json").exists(), 30, "k2 run to start")
        time.sleep(4)
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
        time.sleep(1)  # trades keep happening while nothing listens
        second = _start_run(data, env, "--exchange", "binance,kraken", "--duration", "8")
        out, err = second.communicate(timeout=120)
    finally:
        sim.stop()
    assert second.returncode == 0, err[-3000:]
    assert "gap detected" in err  # the crash left a hole, found from what bronze already held
    dup = _rows(data, "SELECT count() - uniqExact(exchange, symbol, trade_id) FROM silver_trades_v2")
    assert dup == [["0"]]
    report = _k2("validate", "--data-dir", str(data))
    assert report.returncode == 0, report.stdout[-3000:]
    recovered = _rows(data, "SELECT sum(trades_recovered) FROM gaps FINAL WHERE state = 'filled'")
    assert int(recovered[0][0]) > 0


# -- rebuild ------------------------------------------------------------------------------------------
def _snapshot(data: Path) -> list:
    return [
        _rows(data, "SELECT * EXCEPT (ingested_at) FROM silver_trades_v2 ORDER BY exchange, symbol, trade_id"),
        _rows(data, "SELECT * FROM ohlcv_1m ORDER BY ALL"),
        _rows(data, "SELECT * FROM ohlcv_1h ORDER BY ALL"),
        _rows(data, "SELECT * FROM ohlcv_1d_cross ORDER BY ALL"),
        _rows(data, "SELECT * FROM spreads_1m ORDER BY ALL"),  # issue 21: the spreads follow a rebuild
        _rows(data, "SELECT * FROM spreads_1s ORDER BY ALL"),
    ]


def test_rebuild_reproduces_live_silver_and_gold(tmp_path):
    data = tmp_path / "d"
    for name in ("binance_session", "kraken_session"):
        exchange = name.split("_")[0]
        assert _k2("load", str(FIXTURES / f"{name}.jsonl"), "--exchange", exchange, "--data-dir", str(data)).returncode == 0
    before = _snapshot(data)
    assert before[0] and before[1] and before[4] and before[5]
    # damage gold, then rebuild everything
    assert _k2("query", "--write", "ALTER TABLE gold_ohlcv_1m DELETE WHERE 1 SETTINGS mutations_sync = 2",
               "--data-dir", str(data)).returncode == 0
    assert _snapshot(data)[1] == []
    res = _k2("rebuild", "--data-dir", str(data), "--progress")
    assert res.returncode == 0, res.stderr
    assert "rebuild binance" in res.stderr and "done in" in res.stderr  # the progress, as plain lines when piped
    assert _snapshot(data) == before
    # a partial rebuild from a day on gives the same result again
    first_day = _rows(data, "SELECT toString(toDate(min(timestamp))) FROM silver_trades_v2")[0][0]
    res = _k2("rebuild", "--exchange", "binance", "--since", f"{first_day}T12:00:00Z", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    assert _snapshot(data) == before
    assert _k2("validate", "--data-dir", str(data)).returncode == 0


def test_rebuild_applies_a_changed_normalization(tmp_path):
    """The reason rebuild exists: fix a rule (here the instrument list), recompute silver."""
    data = tmp_path / "d"
    frame = '{"e":"trade","E":1784116800123,"s":"NEWCOINUSDT","t":7,"p":"1.5","q":"2","T":1784116800122,"m":true,"M":true}'
    (tmp_path / "f.jsonl").write_text(frame + "\n")
    offline = {**os.environ, "K2_INSTRUMENTS_REFRESH": "0"}  # never the real exchange
    assert _k2("load", str(tmp_path / "f.jsonl"), "--exchange", "binance", "--data-dir", str(data),
               env=offline).returncode == 0
    assert _rows(data, "SELECT is_valid, canonical_symbol FROM silver_trades_v2") == [[False, "NEWCOINUSDT"]]
    assert _k2("query", "--write", "INSERT INTO instruments VALUES ('binance', 'NEWCOINUSDT', 'NEWCOIN', 'USDT', 'exchange', now64(6))",
               "--data-dir", str(data)).returncode == 0
    assert _k2("rebuild", "--data-dir", str(data)).returncode == 0
    assert _rows(data, "SELECT is_valid, canonical_symbol, toString(price) FROM silver_trades_v2") == [
        [True, "NEWCOIN/USDT", "1.5"]]
    assert _rows(data, "SELECT trade_count FROM ohlcv_1m") == [["1"]]


# -- fuzzing ------------------------------------------------------------------------------------------
def _valid_frames() -> dict[str, list[bytes]]:
    """Real-looking frames per bronze table: the research samples and the committed fixtures."""
    frames: dict[str, list[bytes]] = {}
    files = list(SAMPLES.glob("*.jsonl")) + list(FIXTURES.glob("*.jsonl"))
    for adapter in ALL_ADAPTERS:
        out = []
        for f in files:
            for line in f.read_bytes().splitlines():
                try:
                    if adapter.parse(line, 1).kind is FrameKind.TRADES:
                        out.append(line)
                except FrameError:
                    pass
        frames[adapter.bronze_table] = out
    return frames


VALID = _valid_frames()


def test_every_adapter_has_trade_frames_to_fuzz():
    assert all(VALID[a.bronze_table] for a in ALL_ADAPTERS), {k: len(v) for k, v in VALID.items()}


def _mutate(frame: bytes, rnd: random.Random) -> bytes:
    choice = rnd.randrange(6)
    if choice == 0:  # truncated, possibly inside a UTF-8 sequence
        return frame[: rnd.randrange(len(frame))]
    if choice == 1:  # one byte flipped
        i = rnd.randrange(len(frame))
        return frame[:i] + bytes([frame[i] ^ (1 << rnd.randrange(8))]) + frame[i + 1:]
    if choice == 2:  # invalid UTF-8 dropped in
        i = rnd.randrange(len(frame))
        return frame[:i] + b"\xff\xfe\xc3" + frame[i:]
    if choice == 3:  # a leaf replaced by a value of another type
        doc = json.loads(frame)
        leaf = rnd.choice([None, True, -1, 1e308, "", "x" * 1000, [], {}, "1e5", "-0.5", 2 ** 70])

        def walk(node):
            if isinstance(node, dict) and node:
                key = rnd.choice(list(node))
                node[key] = leaf if rnd.random() < 0.5 or not isinstance(node[key], (dict, list)) else walk(node[key])
            elif isinstance(node, list) and node:
                i = rnd.randrange(len(node))
                node[i] = leaf if rnd.random() < 0.5 or not isinstance(node[i], (dict, list)) else walk(node[i])
            return node
        return json.dumps(walk(doc)).encode()
    if choice == 4:  # huge
        return frame[:-1] + b"," * rnd.randrange(1, 3) + b'"pad":"' + b"y" * 2_000_000 + b'"}'
    return b"[" * 50_000 + b"]" * rnd.randrange(50_000)  # absurd nesting


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), which=st.integers(0, 10_000))
def test_fuzzed_frames_parse_or_are_rejected_never_crash(seed, which):
    """Random mutations of real frames: every adapter either parses them or raises FrameError
    with a short reason; nothing else escapes (which would stop a feed loop)."""
    rnd = random.Random(seed)
    for adapter in ALL_ADAPTERS:
        frames = VALID[adapter.bronze_table]
        frame = _mutate(frames[which % len(frames)], rnd)
        try:
            parsed = adapter.parse(frame, 1)
        except FrameError as exc:
            assert 0 < len(str(exc)) <= 500
        else:
            assert isinstance(parsed, Parsed)
            for row in parsed.rows:
                assert len(row) == len(adapter.columns)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_a_parser(blob):
    for adapter in ALL_ADAPTERS:
        try:
            adapter.parse(blob, 1)
        except FrameError:
            pass


def test_fuzzed_file_loads_every_bad_frame_into_rejects(tmp_path):
    """`k2 load` of a file mixing good and mutated frames: each frame the parser refuses is a
    reject (raw bytes kept), the rest loads, the command exits 0."""
    rnd = random.Random(42)
    adapter = next(a for a in ALL_ADAPTERS if a.name == "binance")
    lines, bad = [], 0
    for frame in VALID[adapter.bronze_table] * 20:
        if rnd.random() < 0.3:
            frame = _mutate(frame, rnd).replace(b"\n", b" ").replace(b"\r", b" ")
        if not frame.strip():
            continue
        try:
            adapter.parse(frame, 1)
        except FrameError:
            bad += 1
        lines.append(frame)
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = _k2("load", str(path), "--exchange", "binance", "--data-dir", str(tmp_path / "d"),
              env={**os.environ, "K2_INSTRUMENTS_REFRESH": "0"})  # a mutated symbol must not reach Binance
    assert res.returncode == 0, res.stderr
    assert f"{bad} rejected" in res.stdout
    stored = _rows(tmp_path / "d", "SELECT count() FROM rejects WHERE source = 'file'")
    assert stored == [[str(bad)]]
    assert bad > 10


def test_an_insert_interrupted_by_a_crash_is_repaired_when_the_data_dir_opens(tmp_path):
    """Simulate the worst moment of a SIGKILL: bronze got the batch, silver and gold did not, and
    the journal still names the insert. Opening the data dir recomputes silver and gold."""
    from k2.warehouse import open_warehouse
    from k2.warehouse.journal import InflightJournal

    data = tmp_path / "d"
    assert _k2("load", str(FIXTURES / "binance_session.jsonl"), "--exchange", "binance",
               "--data-dir", str(data)).returncode == 0
    before = _snapshot(data)
    wh = open_warehouse(data)
    first_us = int(wh.scalar("SELECT toUnixTimestamp64Micro(min(timestamp)) FROM silver_trades_v2"))
    for table in ("silver_trades_v2", "gold_ohlcv_1m", "gold_ohlcv_1h"):
        wh.execute(f"ALTER TABLE k2.{table} DELETE WHERE 1 SETTINGS mutations_sync = 2")
    InflightJournal(data).begin("bronze_trades_binance", "token-of-the-killed-insert", first_us)
    wh.close()
    assert _k2("validate", "--data-dir", str(data)).returncode == 0  # opening it repaired it
    assert _snapshot(data) == before
    assert not (data / "inflight.json").exists()


def test_k2_rejects_lists_bad_frames_with_raw_text_and_filters(tmp_path):
    data = tmp_path / "d"
    assert _k2("load", str(FIXTURES / "binance_malformed.jsonl"), "--exchange", "binance",
               "--data-dir", str(data)).returncode == 0
    res = _k2("rejects", "--format", "json", "--data-dir", str(data))
    assert res.returncode == 0, res.stderr
    listed = [json.loads(line) for line in res.stdout.splitlines()]
    raw_lines = (FIXTURES / "binance_malformed.jsonl").read_bytes().splitlines()
    assert len(listed) >= 5 and all(r["exchange"] == "binance" and r["reason"] for r in listed)
    by_origin = {r["origin"]: r for r in listed}
    some = next(iter(by_origin.values()))
    line_no = int(some["origin"].rsplit(":", 1)[1])
    assert some["raw"] == raw_lines[line_no - 1].decode("utf-8", "replace")
    assert _k2("rejects", "--exchange", "kraken", "--format", "json", "--data-dir", str(data)).stdout == ""
    future = _k2("rejects", "--since", "2100-01-01", "--format", "json", "--data-dir", str(data))
    assert future.returncode == 0 and future.stdout == ""
