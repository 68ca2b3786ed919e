"""`k2 simulate` in a child process, for tests, `k2 demo` and benchmarks that want the simulator
on its own CPU (it then competes with the pipeline for nothing but the machine's cores).

    with SimulatorProcess("--exchange", "kraken", "--rate", "500", "--record", str(tmp)) as sim:
        sim.urls["kraken"]["ws"]
    # leaving the block sends SIGTERM; the child flushes its records and exits 0
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Mapping


class SimulatorProcess:
    def __init__(self, *args: str, env: Mapping[str, str] | None = None, ready_timeout: float = 20.0):
        self.args = list(args)
        if not any(a == "--port" or a.startswith("--port=") for a in self.args):
            self.args += ["--port", "0"]
        self.env = dict(env) if env is not None else None
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.urls: dict[str, dict[str, str]] = {}
        self._stderr: Any = None

    def start(self) -> dict[str, dict[str, str]]:
        """Start the child and wait for its URL line; raise RuntimeError with its stderr if none comes.
        Starting twice is a mistake (the first child would be left running): RuntimeError."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("this simulator is already running (a `with SimulatorProcess(...)` block starts it)")
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "k2", "simulate", *self.args],
                                     stdout=subprocess.PIPE, stderr=self._stderr, env=self.env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + self.ready_timeout
        line = b""
        poller = select.poll()  # not select(): a test process may hold more than 1024 descriptors
        poller.register(self.proc.stdout, select.POLLIN | select.POLLHUP)
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            ready = poller.poll(max(0.0, remaining) * 1000)
            if not ready:
                self.stop()
                raise RuntimeError(f"k2 simulate printed no URLs within {self.ready_timeout} s: {self.stderr()}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                code = self.proc.wait()
                raise RuntimeError(f"k2 simulate exited with {code}: {self.stderr()}")
            line += chunk
        self.urls = json.loads(line.split(b"\n", 1)[0])
        return self.urls

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait for a clean exit (records flushed); kill it if it does not come."""
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()
        return proc.returncode

    def stderr(self) -> str:
        """What the child wrote on stderr so far (hints, summary, errors)."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace").strip()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def __enter__(self) -> "SimulatorProcess":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
