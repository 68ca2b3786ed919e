"""Reads are true or say why not: `--limit N` is the newest N (as ccxt and freqtrade mean it),
`--oldest` the other end, `--limit 0` everything; an answer cut short says so on stderr, and when
the cut comes from the default limit (the user asked for everything) the exit status says so too
(3). The rejects list gives each frame's bytes exactly, as text or base64.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fixtures import make_frames as mf
from k2.read import queries

#: Binance trades 1..40, one a minute from 2026-07-15 12:00 UTC: 40 one-minute candles
T0 = 1784116800000


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from k2.exchanges import get_adapter
    from k2.history.load import load_file
    from k2.warehouse import open_warehouse

    d = tmp_path_factory.mktemp("limits") / "k2data"
    path = mf.write_lines(d.parent / "b.jsonl", [
        mf.binance_trade("BTCUSDT", i, f"{97000 + i}.5", "0.1", T0 + (i - 1) * 60_000, i % 2 == 0) for i in range(1, 41)])
    junk = mf.write_lines(d.parent / "j.jsonl", [mf.binance_trade("BTCUSDT", 41, "97041.5", "0.1", T0 + 40 * 60_000, True)]
                          + [b'{"e":"trade","junk":%d,"raw":"\xff\xfe"}' % i for i in range(12)])
    wh = open_warehouse(d)
    load_file(wh, get_adapter("binance"), path)
    load_file(wh, get_adapter("binance"), junk)
    wh.close()
    return d


def json_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_limit_is_the_newest_n_in_time_order(data_dir, k2_main):
    rc, out, err = k2_main("trades", "BTC/USDT", "--limit", "3", "--format", "json", "--data-dir", data_dir)
    assert rc == 0
    assert [r["trade_id"] for r in json_rows(out)] == ["39", "40", "41"]
    assert err.strip() == ("k2: note: showing the newest 3 of 41 trades (--limit 3); --limit 0 shows all, "
                           "--since/--until narrow the range")
    rc, out, _ = k2_main("ohlcv", "BTC/USDT", "--interval", "1m", "--exchange", "binance", "--limit", "2",
                         "--format", "json", "--data-dir", data_dir)
    assert rc == 0 and [r["bucket"] for r in json_rows(out)] == ["2026-07-15T12:39:00Z", "2026-07-15T12:40:00Z"]


def test_oldest_takes_the_other_end(data_dir, k2_main):
    rc, out, err = k2_main("trades", "BTC/USDT", "--limit", "2", "--oldest", "--format", "json", "--data-dir", data_dir)
    assert rc == 0 and [r["trade_id"] for r in json_rows(out)] == ["1", "2"]
    assert "showing the oldest 2 of 41 trades" in err


def test_limit_zero_is_everything_and_a_whole_answer_is_quiet(data_dir, k2_main):
    rc, out, err = k2_main("trades", "BTC/USDT", "--limit", "0", "--format", "csv", "--data-dir", data_dir)
    assert rc == 0 and err == "" and len(out.splitlines()) == 42  # header + 41
    rc, out, err = k2_main("trades", "BTC/USDT", "--limit", "41", "--format", "csv", "--data-dir", data_dir)
    assert rc == 0 and err == "" and len(out.splitlines()) == 42


def test_a_cut_at_the_default_limit_is_a_warning_and_exit_3(data_dir, k2_main, monkeypatch):
    """What `k2 trades` did at 1,000,000 rows and `k2 chart` at 1,000 candles, without a word."""
    monkeypatch.setitem(queries.DEFAULT_LIMITS, "trades", 5)
    monkeypatch.setitem(queries.DEFAULT_LIMITS, "ohlcv", 4)
    rc, out, err = k2_main("trades", "BTC/USDT", "--format", "json", "--data-dir", data_dir)
    assert rc == 3 and [r["trade_id"] for r in json_rows(out)] == ["37", "38", "39", "40", "41"]
    assert err.strip() == ("k2: warning: showing the newest 5 of 41 trades (the default --limit 5); --limit 0 shows "
                           "all, --since/--until narrow the range")
    rc, out, err = k2_main("ohlcv", "BTC/USDT", "--interval", "1m", "--format", "csv", "--data-dir", data_dir)
    assert rc == 3 and len(out.splitlines()) == 5 and "newest 4 of 41 candles" in err
    # a range that fits is whole: no warning
    rc, out, err = k2_main("trades", "BTC/USDT", "--since", "2026-07-15T12:38:00Z", "--data-dir", data_dir)
    assert rc == 0 and err == ""


def test_gaps_and_rejects_say_when_their_list_is_cut(data_dir, k2_main, monkeypatch):
    monkeypatch.setitem(queries.DEFAULT_LIMITS, "rejects", 10)
    rc, out, err = k2_main("rejects", "--format", "json", "--data-dir", data_dir)
    assert rc == 3 and len(json_rows(out)) == 10 and "newest 10 of 12 rejects" in err
    rc, out, err = k2_main("rejects", "--limit", "0", "--format", "json", "--data-dir", data_dir)
    assert rc == 0 and len(json_rows(out)) == 12 and err == ""
    rc, out, err = k2_main("gaps", "--limit", "0", "--data-dir", data_dir)
    assert rc == 0 and out == "" and err.strip() == "(no rows)"


def test_rejects_give_the_exact_bytes(data_dir, k2_main):
    """Invalid UTF-8 came back with replacement characters; now base64 of the bytes, marked so."""
    rc, out, _ = k2_main("rejects", "--limit", "0", "--format", "json", "--data-dir", data_dir)
    rows = json_rows(out)
    assert {r["raw_encoding"] for r in rows} == {"base64"}
    got = sorted(base64.b64decode(r["raw"]) for r in rows)
    assert got == sorted(b'{"e":"trade","junk":%d,"raw":"\xff\xfe"}' % i for i in range(12))


def test_chart_says_when_it_drew_the_newest_candles_only(data_dir, k2_main, tmp_path):
    out_file = tmp_path / "c.html"
    rc, out, err = k2_main("chart", "BTC/USDT", "--interval", "1m", "--exchange", "binance", "--max-candles", "10",
                           "--out", out_file, "--data-dir", data_dir)
    assert rc == 0 and "10 candles" in out
    assert "drew the newest 10 of 41 candles (--max-candles 10)" in err
    page = out_file.read_text()
    assert "<tr><td>2026-07-15 12:40</td>" in page and "<tr><td>2026-07-15 12:30</td>" not in page
    rc, out, err = k2_main("chart", "BTC/USDT", "--interval", "1m", "--exchange", "binance", "--max-candles", "0",
                           "--out", out_file, "--data-dir", data_dir)
    assert rc == 0 and "41 candles" in out and err == ""


# -- a data dir this process cannot write --------------------------------------------------------------
def _read_only(data: Path, argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run k2 with `data` read-only: chmod for a normal user; a read-only bind mount in a private
    mount namespace for root (whom permissions do not stop)."""
    k2 = str(Path(sys.executable).with_name("k2"))
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in [data, *data.rglob("*")] if not p.is_symlink()}
        for p in modes:
            p.chmod(modes[p] & ~0o222)
        try:
            return subprocess.run([k2, *argv], capture_output=True, text=True, env=env, timeout=120)
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
    if not shutil.which("unshare"):
        pytest.fail("running as root without unshare: no way to make a directory read-only here")
    script = (f'mount --bind "{data}" "{data}" && mount -o remount,bind,ro "{data}" && exec "$0" "$@"')
    return subprocess.run(["unshare", "--mount", "sh", "-c", script, k2, *argv], capture_output=True, text=True,
                          env=env, timeout=120)


def _tree(data: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(data)): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in data.rglob("*")}


def test_a_read_only_data_dir_can_be_read_and_is_not_written(tmp_path, k2_cli, fixtures_dir):
    data = tmp_path / "d"
    assert k2_cli("load", fixtures_dir / "kraken_session.jsonl", "--exchange", "kraken",
                  "--data-dir", data).returncode == 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    env.update(K2_LOG_DIR=str(tmp_path), K2_INSTRUMENTS_REFRESH="0")
    before = _tree(data)
    r = _read_only(data, ["ohlcv", "BTC/USD", "--interval", "1m", "--format", "csv", "--data-dir", str(data)], env)
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3, r.stderr  # header + two candles
    r = _read_only(data, ["validate", "--data-dir", str(data)], env)
    assert r.returncode == 0 and "RESULT: PASS" in r.stdout, r.stdout + r.stderr
    r = _read_only(data, ["load", str(fixtures_dir / "kraken_session.jsonl"), "--exchange", "kraken",
                          "--data-dir", str(data)], env)
    assert r.returncode == 2 and r.stderr.strip() == (f"k2: error: data dir {data} is read-only: this command "
                                                      "writes to it (reads work)"), r.stderr
    assert _tree(data) == before
