"""Give back the library pages that only startup needed.

Opening the embedded warehouse touches about 200 MB of chDB's 500 MB shared library (registering
every function, format and engine ClickHouse has) plus tens of MB of pyarrow's. Those pages are
clean and file-backed: the kernel would drop them under memory pressure anyway, but until then
they count in the process's RSS, and a container's limit is judged on it. After the warehouse is
open and before trades flow, K2 unmaps them from the process; the code a running pipeline really
uses comes back on first use (about 110 MB), so RSS settles at the working set instead of at
everything startup touched.

It uses `madvise(MADV_DONTNEED)` on read-only and executable private mappings of shared objects
whose pages all still equal the file (smaps `Anonymous: 0 kB`; a relocated read-only segment holds
private copies and is skipped): this process stops mapping them, the kernel's page cache keeps
them, and a page the pipeline touches again is mapped back from the cache without any disk read.
Nothing is written or lost, and it works when other processes map the same library (MADV_PAGEOUT
would skip shared pages). Anywhere this is not available (another OS, a sandbox without madvise or
/proc) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys
import time

log = logging.getLogger("k2.memory")

MADV_DONTNEED = 4  # linux/mman.h


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


def _library_mappings(smaps_text: str) -> list[tuple[int, int]]:
    """(start, end) of every read-only or executable, private, file-backed mapping of a shared
    object (`/path/libfoo.so`, `/path/mod.cpython-311-x86_64-linux-gnu.so.1`) without private
    (anonymous) pages, from /proc/self/smaps."""
    out = []
    current: tuple[int, int] | None = None
    for line in smaps_text.splitlines():
        first = line.split(None, 1)[0] if line.strip() else ""
        if "-" in first and not first.endswith(":"):  # a mapping's header line
            current = None
            parts = line.split(None, 5)
            if len(parts) < 6:
                continue
            perms, path = parts[1], parts[5].strip()
            if "w" in perms or not perms.endswith("p") or not path.startswith("/") or ".so" not in path:
                continue
            lo, _, hi = parts[0].partition("-")
            current = (int(lo, 16), int(hi, 16))
        elif first == "Anonymous:" and current is not None:
            if line.split()[1] == "0":
                out.append(current)
            current = None
    return out


def release_startup_pages() -> float:
    """Unmap the clean library pages touched so far. Returns how many MB of RSS were given
    back (0.0 when the platform cannot)."""
    if not sys.platform.startswith("linux"):
        return 0.0
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        with open("/proc/self/smaps") as f:
            mappings = _library_mappings(f.read())
    except OSError:
        return 0.0
    before = rss_mb()
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    for lo, hi in mappings:
        if libc.madvise(lo, hi - lo, MADV_DONTNEED) != 0:
            return 0.0  # refused (a sandbox): nothing else to try
    after = rss_mb()
    released = max(0.0, (before or 0.0) - (after or 0.0))
    log.debug("released %.0f MB of library pages only startup used (RSS %.0f -> %.0f MB)",
             released, before or 0.0, after or 0.0)
    return released


class _NoPandas:
    """An import finder that refuses pandas (see `keep_pandas_out`)."""

    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"{name} is kept out of this k2 process (k2.warehouse.memory)", name=name)
        return None


def keep_pandas_out() -> bool:
    """Make `import pandas` fail in this process, unless it is already imported. K2 never uses
    pandas, but pyarrow imports it (when installed: chDB depends on it) on the first array built
    from Python objects, to check whether they are DataFrames: 33 MB of anonymous memory and 17 MB
    of library pages in every long-running writer. pyarrow and chDB's `Python()` table function
    work without it. Returns whether pandas is kept out."""
    if "pandas" in sys.modules:
        return False
    if not any(isinstance(f, _NoPandas) for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas())
    return True


def lean_writer_process() -> None:
    """Memory settings for the long-running embedded writers (`k2 run`, `k2 sink`), made before
    they build their first batch: no pandas (above), and Arrow allocating from the C library's
    malloc instead of its bundled mimalloc, which kept 25-50 MB of freed pages resident for the
    writer's short-lived batches (at 50k trades/s: peak RSS -25 MB, mean anonymous memory -28 MB
    in three A/B pairs; batches are built as fast). Arrow's C++ side reads its default pool from
    the environment once, when pyarrow loads; if it is loaded already, at least pyarrow's own
    conversions are moved."""
    keep_pandas_out()
    if "pyarrow" not in sys.modules:
        os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
        return
    try:
        import pyarrow as pa

        pa.set_memory_pool(pa.system_memory_pool())
    except Exception:  # an unusual pyarrow build: its default pool is fine too
        log.debug("pyarrow system memory pool not available", exc_info=True)


#: chDB's jemalloc options for a bulk writer (`k2 load`), applied over the ones chDB was built
#: with (`percpu_arena:percpu,dirty_decay_ms:5000,...`): one arena for every thread instead of one
#: per CPU, so the memory a merge thread freed serves the next insert instead of waiting in another
#: CPU's arena. 1M-trade load, same minutes: peak RSS 458-460 MB instead of 517, CPU 7.0-7.7 s
#: instead of 8.3-8.7 (ADR 0029, third round). Returning freed pages at once as well
#: (`dirty_decay_ms:0`) took another 40 MB at 1M but 37 % more CPU at 10M: not used.
BULK_JEMALLOC_CONF = "narenas:1,percpu_arena:disabled"
#: two insert streams' (`k2 import`, whose chunks are not followed by a purge of the engine's freed
#: pages: the next chunks faulted them back in; `k2 load --streams 2`): freed pages go back after
#: 0.2 s instead of 5 (ADR 0036). 10M lines imported, three alternating runs each: peak RSS 375-387
#: MB against 388-410, +1-2 CPU-s; 1M frames loaded, five: 390 MB against 397, the same rate.
TWO_STREAMS_JEMALLOC_CONF = BULK_JEMALLOC_CONF + ",dirty_decay_ms:200,muzzy_decay_ms:0"


def bulk_writer_allocator(conf: str = BULK_JEMALLOC_CONF) -> bool:
    """Give chDB's jemalloc a bulk writer's options (`BULK_JEMALLOC_CONF`, `TWO_STREAMS_JEMALLOC_CONF`)
    through the variable it reads once, when the library loads (`JE_MALLOC_CONF`: chDB's jemalloc
    has the `je_` prefix). Options the user set there come after ours, so theirs win. Returns
    whether ours will apply: not when chDB is loaded already."""
    if "chdb" in sys.modules:
        return False
    user = os.environ.get("JE_MALLOC_CONF", "")
    os.environ["JE_MALLOC_CONF"] = f"{conf},{user}" if user else conf
    return True


def trim_c_heap() -> None:
    """Give the C library's free heap pages back to the OS (glibc `malloc_trim`; elsewhere
    nothing). Arrow builds a bulk load's batches with it (the system pool, `lean_writer_process`),
    and glibc keeps what they freed inside its arenas: 3 A/B pairs of a 1M-trade `k2 load`, peak
    RSS 535 vs 566 MB median, CPU the same (ADR 0029)."""
    global _malloc_trim
    if _malloc_trim is None:
        try:
            _malloc_trim = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):  # not glibc
            _malloc_trim = False
    if _malloc_trim:
        _malloc_trim(0)


_malloc_trim = None


class FreedMemoryRelease:
    """After writes, hand the memory the embedded engine has freed back to the OS, at most once
    every `interval_s` (`EmbeddedWarehouse.release_freed_memory`, ~10 ms each: about 1 % of a core
    at one per second). After a burst of large batches RSS comes back down within a second
    instead of staying at the burst's high-water. Does nothing for a ClickHouse server.

    `library_pages`: also unmap the clean library pages the writes touched again (the insert and
    merge code of chDB: ~100-140 MB come back during a bulk write after startup's were given back;
    `release_startup_pages`). The bulk writers use it: a page needed again is mapped back from the
    page cache (a minor fault), which cost `k2 import` about 3 % more CPU for ~35 MB (ADR 0029)."""

    def __init__(self, wh, interval_s: float = 1.0, library_pages: bool = False, engine: bool = True):
        # engine=False: only the library pages (k2 import's parallel inserts: a purge of the
        # engine's freed pages after every chunk made the next chunks fault them back, ADR 0036)
        self._release = getattr(wh, "release_freed_memory", None) if engine else None
        self.interval_s = interval_s
        # only where the process gave back startup's pages (K2_RELEASE_STARTUP_PAGES, open_warehouse)
        self.library_pages = library_pages and getattr(wh, "releases_library_pages", False)
        self._at = time.monotonic()

    def after_write(self) -> None:
        if (self._release is None and not self.library_pages) or time.monotonic() - self._at < self.interval_s:
            return
        self._at = time.monotonic()
        try:
            if self._release is not None:
                self._release()
        except Exception:  # the memory stays with the allocator a while longer; nothing is lost
            log.debug("releasing freed memory failed", exc_info=True)
        if self.library_pages:
            release_startup_pages()
