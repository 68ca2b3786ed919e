"""py-spy helpers: record a command or a running pid as collapsed stacks, and summarize them per
thread (share of samples, top functions by own time and by inclusive time)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from _common import PY


def py_spy() -> str:
    return str(Path(PY).with_name("py-spy"))


def profile_command(cmd: Sequence[str], env: dict[str, str], out: Path, rate: int = 100) -> dict[str, Any]:
    """Run `cmd` under `py-spy record` (idle samples dropped, native frames off); summarize."""
    p = subprocess.run([py_spy(), "record", "-f", "raw", "-r", str(rate), "-o", str(out), "--threads", "--", *cmd],
                       capture_output=True, text=True, env=env, timeout=1800)
    if not out.exists():
        return {"error": f"py-spy failed: {p.stderr[-800:]}"}
    return summarize_raw(out)


def profile_pid(pid: int, seconds: float, out: Path, rate: int = 100) -> subprocess.Popen:
    return subprocess.Popen([py_spy(), "record", "-f", "raw", "-r", str(rate), "-o", str(out), "--threads",
                             "-d", str(max(1, int(seconds))), "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _short(frame: str) -> str:
    # "BinanceAdapter._row (k2/exchanges/binance.py:153)" -> drop the line number for grouping
    if " (" in frame and frame.endswith(")"):
        name, where = frame.rsplit(" (", 1)
        where = where[:-1]
        if ":" in where:
            where = where.rsplit(":", 1)[0]
        where = where.split("site-packages/")[-1]
        return f"{name} ({where})"
    return frame


def summarize_raw(path: Path, top: int = 12) -> dict[str, Any]:
    """Per thread: samples, top own-time and inclusive-time functions (line numbers folded)."""
    threads: Counter = Counter()
    own: dict[str, Counter] = {}
    incl: dict[str, Counter] = {}
    for line in Path(path).read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            stack, n_s = line.rsplit(" ", 1)
            n = int(n_s)
        except ValueError:
            continue
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[-1].strip() if frames[0].startswith("thread") else "main"
        body = [_short(f) for f in (frames[1:] if frames[0].startswith("thread") else frames)]
        if not body:
            continue
        threads[thread] += n
        own.setdefault(thread, Counter())[body[-1]] += n
        inc = incl.setdefault(thread, Counter())
        for f in set(body):
            inc[f] += n
    total = sum(threads.values()) or 1
    out = {"samples": total, "threads": []}
    for thread, n in threads.most_common():
        if n < total * 0.02:
            continue
        out["threads"].append({
            "thread": thread, "samples": n, "share": round(n / total, 3),
            "own": [(f, round(c / n, 3)) for f, c in own[thread].most_common(top)],
            "inclusive": [(f, round(c / n, 3)) for f, c in incl[thread].most_common(top * 2)
                          if not f.startswith(("<module>", "main (", "run (asyncio", "Runner.run", "BaseEventLoop.",
                                               "Handle._run", "Thread._bootstrap", "Thread.run"))][:top],
        })
    return out
