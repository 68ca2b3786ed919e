"""A full disk on demand for a K2 process, without root: an LD_PRELOAD library (enospc.c) makes
every write under one directory fail with ENOSPC, and statvfs() report no free space, while a flag
file exists. `DiskFull(dir).env(env)` prepares a child's environment; `fill()` / `free()` switch.

    disk = DiskFull(tmp / "data", workdir=tmp)
    proc = subprocess.Popen([...k2 run...], env=disk.env(env))
    disk.fill(); ...; disk.free()

Why this and not a small filesystem: mounting one (tmpfs, a loop device) needs root or user
namespaces that CI machines often refuse; the library needs a C compiler only, and ClickHouse meets
the same errors a full disk gives it (NOT_ENOUGH_SPACE from its reservation, ENOSPC from write()).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "enospc.c"
SITE = HERE / "site"


def library() -> Path:
    """The compiled fault library (built once per source version, in the temp dir)."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    out = Path(tempfile.gettempdir()) / f"k2-enospc-{os.getuid()}-{digest}.so"
    if not out.exists():
        cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
        if cc is None:
            raise RuntimeError("the disk-full fault needs a C compiler (cc, gcc or clang)")
        tmp = out.with_name(out.name + f".{os.getpid()}.tmp")
        subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(tmp), str(SOURCE), "-ldl"], check=True,
                       capture_output=True, timeout=120)
        os.replace(tmp, out)
    return out


class DiskFull:
    def __init__(self, directory: Path, workdir: Path):
        self.directory = Path(directory).resolve()
        self.flag = Path(workdir) / "disk-full.flag"
        self.fills = 0

    def env(self, env: dict[str, str]) -> dict[str, str]:
        path = os.pathsep.join(p for p in (str(SITE), env.get("PYTHONPATH", "")) if p)
        return {**env, "LD_PRELOAD": str(library()), "K2_FAULT_ENOSPC_FLAG": str(self.flag),
                "K2_FAULT_ENOSPC_DIR": str(self.directory), "PYTHONPATH": path}

    def fill(self, report_no_room: bool = True) -> None:
        """From now on: writes under the directory fail with ENOSPC and statvfs says 0 bytes free.
        `report_no_room=False`: writes fail while statvfs still reports room (a disk filled by
        someone else between a check and a write: ClickHouse then writes parts that are broken)."""
        if report_no_room:
            Path(str(self.flag) + ".statvfs").touch()  # no room reported first, then writes fail
        self.flag.touch()
        self.fills += 1

    def free(self) -> None:
        for p in (self.flag, Path(str(self.flag) + ".statvfs")):
            try:
                p.unlink()
            except FileNotFoundError:
                pass

    @property
    def full(self) -> bool:
        return self.flag.exists()
