"""Reading a data dir K2 may not write (a read-only mount, another user's files, an archive).

chDB must write where it opens (its lock file, temporary files, the deduplication logs it opens
for append when a table loads), so it cannot open such a directory in place. It opens a mirror
instead: a temporary directory holding a copy of the small files (database and table metadata,
format and deduplication logs) and a symbolic link to every data part, which ClickHouse only
reads. The mirror costs kilobytes, whatever the size of the store; it is removed on close.
Nothing is written to the data dir, so no schema is applied and no interrupted insert repaired
(a pending one is reported: the answers may then miss part of its batch).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def is_writable(data_dir: Path) -> bool:
    """Can this process create files in the data dir (and in its chDB folder, when there is one)?"""
    d = Path(data_dir)
    chdb = d / "chdb"
    return all(os.access(p, os.W_OK | os.X_OK) for p in (d, chdb) if p.exists())


def make_mirror(chdb_dir: Path) -> Path:
    """A writable chDB directory mirroring `chdb_dir` (see the module docstring). Returns its path;
    the caller removes its parent (`remove_mirror`) when done."""
    root = Path(tempfile.mkdtemp(prefix="k2-readonly-"))
    target = root / "chdb"
    target.mkdir()
    for name in ("metadata", "data"):
        if (chdb_dir / name).is_dir():
            shutil.copytree(chdb_dir / name, target / name, symlinks=True)
    if (chdb_dir / "store").is_dir():
        _mirror_store(chdb_dir / "store", target / "store")
    (target / "tmp").mkdir(exist_ok=True)
    return target


def _mirror_store(src: Path, dst: Path) -> None:
    dst.mkdir(exist_ok=True)
    for entry in os.scandir(src):
        path = Path(entry.path)
        if entry.is_symlink():
            os.symlink(os.readlink(path), dst / entry.name)
        elif entry.is_dir():
            if (path / "checksums.txt").exists():  # a data part: read in place
                os.symlink(path.resolve(), dst / entry.name)
            else:
                _mirror_store(path, dst / entry.name)
        else:
            shutil.copy2(path, dst / entry.name)


def remove_mirror(target: Path) -> None:
    shutil.rmtree(Path(target).parent, ignore_errors=True)
