"""`<data dir>/k2.run.json`: which process holds an embedded data dir, and where it serves reads.

chDB lets one process open a data dir. The service holding it (k2 run, k2 sink) writes its pid,
loopback address and read token here (mode 0600) and removes the file when it stops; the read
commands look here first and ask that process instead of opening the directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

RUN_FILE = "k2.run.json"


def write_run_info(data_dir: Path, info: dict[str, Any]) -> None:
    path = Path(data_dir) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)


def read_run_info(data_dir: Path) -> dict[str, Any] | None:
    """The running service's endpoint, or None when nothing (alive) runs on this data dir."""
    path = Path(data_dir) / RUN_FILE
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def remove_run_info(data_dir: Path) -> None:
    try:
        (Path(data_dir) / RUN_FILE).unlink()
    except FileNotFoundError:
        pass
