"""Give back the library pages that only startup needed.

Opening the embedded warehouse touches about 200 MB of chDB's 500 MB shared library (registering
every function, format and engine ClickHouse has) plus tens of MB of pyarrow's. Those pages are
clean and file-backed: the kernel would drop them under memory pressure anyway, but until then
they count in the process's RSS, and a container's limit is judged on it. After the warehouse is
open and before trades flow, K2 asks the kernel to page them out (`madvise(MADV_PAGEOUT)`, Linux
5.4+); the code a running pipeline really uses is read back on first use (tens of MB), so RSS
settles at the working set instead of at everything startup touched.

Only read-only and executable mappings of shared objects are advised: they are never dirty, so
nothing is written anywhere and nothing can be lost. Anywhere this is not available (another OS,
an older kernel, a sandbox without madvise) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("k2.memory")

MADV_PAGEOUT = 21  # linux/mman.h


def rss_mb() -> float | None:
    """Resident set size of this process in MB (Linux), None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _library_mappings(maps_text: str) -> list[tuple[int, int]]:
    """(start, end) of every read-only or executable, private, file-backed mapping of a shared
    object (`/path/libfoo.so`, `/path/mod.cpython-311-x86_64-linux-gnu.so.1`)."""
    out = []
    for line in maps_text.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6:
            continue
        span, perms, path = parts[0], parts[1], parts[5].strip()
        if "w" in perms or not perms.endswith("p") or not path.startswith("/") or ".so" not in path:
            continue
        lo, _, hi = span.partition("-")
        out.append((int(lo, 16), int(hi, 16)))
    return out


def release_startup_pages() -> float:
    """Page out the clean library pages touched so far. Returns how many MB of RSS were given
    back (0.0 when the platform cannot)."""
    if not sys.platform.startswith("linux"):
        return 0.0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        with open("/proc/self/maps") as f:
            mappings = _library_mappings(f.read())
    except OSError:
        return 0.0
    before = rss_mb()
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for lo, hi in mappings:
        if libc.madvise(lo, hi - lo, MADV_PAGEOUT) != 0:
            return 0.0  # EINVAL: a kernel without MADV_PAGEOUT; nothing else to try
    after = rss_mb()
    released = max(0.0, (before or 0.0) - (after or 0.0))
    log.info("released %.0f MB of library pages only startup used (RSS %.0f -> %.0f MB)",
             released, before or 0.0, after or 0.0)
    return released
