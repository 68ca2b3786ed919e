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


# -- a process that only reads, holding the data dir between calls (the Python API) ------------------
#: `<data dir>/k2.reader.json`: a reading process (k2.connect() in a notebook) holds the engine
READER_FILE = "k2.reader.json"
#: `<data dir>/k2.release`: another process wants the data dir; the reader closes its engine
RELEASE_FILE = "k2.release"


def write_reader_info(data_dir: Path) -> None:
    path = Path(data_dir) / READER_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid()}, f)


def read_reader_info(data_dir: Path) -> dict[str, Any] | None:
    """The reading process holding this data dir, or None (none, or it is gone)."""
    try:
        info = json.loads((Path(data_dir) / READER_FILE).read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def remove_reader_info(data_dir: Path) -> None:
    for name in (READER_FILE, RELEASE_FILE):
        try:
            (Path(data_dir) / name).unlink()
        except FileNotFoundError:
            pass


def request_release(data_dir: Path) -> None:
    try:
        (Path(data_dir) / RELEASE_FILE).write_text(str(os.getpid()))
    except OSError:
        pass


def release_requested(data_dir: Path) -> bool:
    return (Path(data_dir) / RELEASE_FILE).exists()
