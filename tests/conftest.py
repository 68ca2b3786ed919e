"""Shared fixtures for the K2 test suite.

chDB runs one embedded ClickHouse per process and it can be bound to one data directory at a
time, so a warehouse is shared per test module (`warehouse`, module scope, closed when the module
ends) and tests that need an empty one ask for `clean_warehouse`, which truncates every data table
(bronze, silver, gold, rejects; the instruments stay). Tests that run `k2` in this process must not
hold a warehouse open on the same data dir: they close theirs first (see test_validate.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterable

import pytest

from fixtures import k2db
from kafka_broker import kafka_broker, procs  # noqa: F401 - fixtures of the Kafka tests, shared by every module
from fixtures.make_frames import write_lines

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
#: frames from the exchanges' documentation (copied into the repository: the suite stands alone)
SAMPLES = FIXTURES / "samples"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    if not SAMPLES.is_dir():
        pytest.fail(f"sample frames not found at {SAMPLES}")
    return SAMPLES


# -- warehouses -----------------------------------------------------------------------------------
#: a ClickHouse server to run every warehouse test against as well (e.g.
#: clickhouse://default:@127.0.0.1:8123/k2_test; use a database of its own: tests truncate it)
SERVER_URL = os.environ.get("K2_TEST_CLICKHOUSE_URL", "")


def pytest_generate_tests(metafunc):
    """With K2_TEST_CLICKHOUSE_URL set, every test using a warehouse runs on both backends."""
    if SERVER_URL and "warehouse_backend" in metafunc.fixturenames:
        metafunc.parametrize("warehouse_backend", ["embedded", "server"], indirect=True, scope="module")


@pytest.fixture(scope="module")
def warehouse_backend(request) -> str:
    return getattr(request, "param", "embedded")


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory, warehouse_backend):
    """A warehouse (schema applied) shared by the tests of one module: embedded chDB, or the
    ClickHouse server of K2_TEST_CLICKHOUSE_URL (emptied first) for the `server` parameter."""
    from k2.warehouse import open_warehouse

    if warehouse_backend == "server":
        wh = open_warehouse(None, url=SERVER_URL)
        k2db.truncate_all(wh)
    else:
        wh = open_warehouse(tmp_path_factory.mktemp("k2data"))
    yield wh
    wh.close()


@pytest.fixture
def clean_warehouse(warehouse):
    """The module's warehouse with every data table emptied."""
    k2db.truncate_all(warehouse)
    return warehouse


@pytest.fixture
def load_frames(tmp_path) -> Callable:
    """load_frames(wh, exchange, frames_or_path, name=..., batch_size=...) -> LoadReport.
    Frames (bytes) are written one per line to a file first, as `k2 load` reads them."""
    from k2.exchanges import get_adapter
    from k2.history.load import load_file

    def load(wh, exchange: str, frames: Iterable[bytes] | Path, name: str = "frames.jsonl", **kw):
        path = frames if isinstance(frames, Path) else write_lines(tmp_path / name, frames)
        return load_file(wh, get_adapter(exchange), path, **kw)

    return load


# -- the command line -----------------------------------------------------------------------------
def _k2_command() -> list[str]:
    script = Path(sys.executable).with_name("k2")
    return [str(script)] if script.exists() else [sys.executable, "-m", "k2"]


@pytest.fixture(scope="session")
def k2_cli(tmp_path_factory) -> Callable[..., subprocess.CompletedProcess]:
    """k2_cli(*args, cwd=..., env=...) runs the installed `k2` console script in a subprocess, with no
    K2_* settings inherited, a default data dir, the crash log in a temporary directory and no
    instrument-list fetches (tests never reach a real exchange); `env` adds or overrides settings."""
    home = tmp_path_factory.mktemp("k2cli")
    base = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    base.update(K2_DATA_DIR=str(home / "k2data-default"), K2_LOG_DIR=str(home), K2_INSTRUMENTS_REFRESH="0")

    def run(*args: str | Path, cwd: Path = home, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([*_k2_command(), *map(str, args)], cwd=cwd, env={**base, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    return run


@pytest.fixture
def k2_main(capsys, monkeypatch, tmp_path) -> Callable[..., tuple[int, str, str]]:
    """k2_main(*args) -> (exit status, stdout, stderr) of k2.cli.main run in this process. The
    process must not hold the data dir open itself (chDB allows one user per directory)."""
    from k2.cli import main

    for key in [k for k in os.environ if k.startswith("K2_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("K2_LOG_DIR", str(tmp_path))
    monkeypatch.setenv("K2_INSTRUMENTS_REFRESH", "0")  # tests never reach a real exchange
    monkeypatch.chdir(tmp_path)

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


# -- a few days of history (Python API, export, examples) -------------------------------------------
HISTORY_START = 1784073600  # 2026-07-15 00:00:00 UTC


def write_history_frames(folder: Path) -> dict[str, Path]:
    """Three UTC days of trades as the exchanges send them: Binance BTCUSDT and ETHUSDT every
    minute, Kraken XBT/USD every 90 s with 10-decimal prices; deterministic."""
    from fixtures.make_frames import KTrade, binance_trade, kraken_time, kraken_trades

    binance, kraken = [], []
    for i in range(3 * 1440):
        t_ms = (HISTORY_START + 60 * i) * 1000 + 123
        for k, (sym, base) in enumerate((("BTCUSDT", 97000), ("ETHUSDT", 3500))):
            price = f"{base + (i * 7919 + k) % 1000 / 100:.8f}"
            qty = f"0.{(i * 104729 + k) % 99999991 + 1:08d}"
            binance.append(binance_trade(sym, 1_000_000 + 2 * i + k, price, qty, t_ms + k, i % 3 == 0))
    for j in range(3 * 960):
        us = (HISTORY_START + 90 * j) * 1_000_000 + 250_001
        price = f"{97000 + (j * 31) % 5000 / 1000:.10f}"
        kraken.append(kraken_trades(119930881, "XBT/USD", [KTrade(price, f"{(j % 97 + 1) / 1000:.8f}", kraken_time(us),
                                                                 "b" if j % 2 else "s")]))
    paths = {}
    for name, frames in (("binance", binance), ("kraken", kraken)):
        path = folder / f"history_{name}.jsonl"
        write_lines(path, frames)
        paths[name] = path
    return paths


@pytest.fixture(scope="session")
def history_dir(tmp_path_factory, k2_cli) -> Path:
    """A data dir holding `write_history_frames` (loaded with `k2 load`); tests only read it."""
    folder = tmp_path_factory.mktemp("history")
    data = folder / "k2data"
    for name, path in write_history_frames(folder).items():
        r = k2_cli("load", path, "--exchange", name, "--data-dir", data)
        assert r.returncode == 0, r.stderr
    return data
