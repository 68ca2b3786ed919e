"""The files a K2 process leaves for others: the run file, the reader file and the crash log.

`<data dir>/k2.run.json` says which process holds an embedded data dir and where it serves reads.
chDB lets one process open a data dir. The service holding it (k2 run, k2 sink) writes its pid,
the pid's start time, its loopback address and read token here and removes the file when it stops;
the read commands look here first and ask that process instead of opening the directory.

Both files hold what another local user must not read (the token) or could plant (a symlink to a
file of the victim's), so they are written the careful way: a new file created with O_EXCL and
O_NOFOLLOW, mode 0600 whatever was there before, then renamed over the old name (a rename
replaces a symlink, never follows it). A run file whose process is gone, or whose pid now belongs
to another process (pids are reused), is stale: it is ignored, and reads open the data dir.
The crash log (`k2-error.log`, a traceback per unexpected error) is per user: `K2_LOG_DIR`, else
`$XDG_STATE_HOME/k2`, else `~/.local/state/k2` -- never a path in /tmp shared by every user.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

RUN_FILE = "k2.run.json"
CRASH_LOG = "k2-error.log"


# -- writing files safely -----------------------------------------------------------------------------
def write_private(path: Path, text: str) -> None:
    """Replace `path` with a new file holding `text`, mode 0600, never following a symlink."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _proc_start_time(pid: int) -> str | None:
    """The start time of `pid` (clock ticks since boot, /proc/<pid>/stat field 22), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


# -- the run file ---------------------------------------------------------------------------------------
def write_run_info(data_dir: Path, info: dict[str, Any]) -> None:
    path = Path(data_dir) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    pid = int(info.get("pid", os.getpid()))
    write_private(path, json.dumps({**info, "pid_started": _proc_start_time(pid)}))


def read_run_info(data_dir: Path) -> dict[str, Any] | None:
    """The running service's endpoint, or None when nothing (alive) runs on this data dir: no file,
    a file of another user, a process that is gone, or a pid reused by another process."""
    return _live_process_file(Path(data_dir) / RUN_FILE)


def _live_process_file(path: Path) -> dict[str, Any] | None:
    """The JSON of a file naming a process of this user that is still running, else None: no
    file, a symlink or a file of another user, a process that is gone, or a reused pid."""
    try:
        st = path.lstat()
        if not path.is_file() or path.is_symlink() or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            return None
        info = json.loads(path.read_text())
        pid = int(info["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    started = info.get("pid_started")
    if started is not None and _proc_start_time(pid) not in (None, started):
        return None  # the pid belongs to another process now: a stale file
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
    write_private(Path(data_dir) / READER_FILE, json.dumps({"pid": os.getpid(),
                                                             "pid_started": _proc_start_time(os.getpid())}))


def read_reader_info(data_dir: Path) -> dict[str, Any] | None:
    """The reading process holding this data dir, or None (none, gone, or a stale file)."""
    return _live_process_file(Path(data_dir) / READER_FILE)


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


# -- the crash log -----------------------------------------------------------------------------------------
def crash_log_path() -> Path:
    base = os.environ.get("K2_LOG_DIR") or os.environ.get("XDG_STATE_HOME")
    folder = Path(base) if os.environ.get("K2_LOG_DIR") else (
        Path(base) / "k2" if base else Path.home() / ".local" / "state" / "k2")
    return folder / CRASH_LOG


def append_crash_log(text: str) -> Path:
    """Append `text` to the user's crash log (created 0600, never through a symlink). Raises OSError."""
    path = crash_log_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW, 0o600)
    try:
        st = os.fstat(fd)
        if hasattr(os, "getuid") and st.st_uid != os.getuid():
            raise PermissionError(f"{path} belongs to another user")
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8", "replace"))
    finally:
        os.close(fd)
    return path
