"""Giving back the library pages only startup used (k2.warehouse.memory), on a real embedded warehouse."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from k2.warehouse.memory import _library_mappings

SMAPS = """\
7f0000000000-7f0000100000 r--p 00000000 08:01 123 /venv/chdb/_chdb.abi3.so
Rss:                1024 kB
Anonymous:             0 kB
7f0000100000-7f0000900000 r-xp 00100000 08:01 123 /venv/chdb/_chdb.abi3.so
Rss:                8192 kB
Anonymous:             0 kB
7f0000900000-7f0000980000 r--p 00900000 08:01 123 /venv/chdb/_chdb.abi3.so
Rss:                 512 kB
Anonymous:           512 kB
7f0000980000-7f0000a00000 rw-p 00980000 08:01 123 /venv/chdb/_chdb.abi3.so
Anonymous:           128 kB
7f0000a00000-7f0000b00000 rw-p 00000000 00:00 0
Anonymous:            64 kB
7f0000b00000-7f0000c00000 r--p 00000000 08:01 124 /usr/lib/locale/C.utf8/LC_CTYPE
Anonymous:             0 kB
7f0000c00000-7f0000d00000 r-xs 00000000 08:01 125 /dev/shm/shared.so
Anonymous:             0 kB
7f0000d00000-7f0000e00000 r-xp 00000000 08:01 126 /usr/lib/x86_64-linux-gnu/libssl.so.3
Rss:                  64 kB
Anonymous:             0 kB
7ffc00000000-7ffc00021000 rw-p 00000000 00:00 0                          [stack]
Anonymous:           132 kB
"""


def test_only_clean_private_library_mappings_are_chosen():
    # relocated read-only data (private copies), writable data, anonymous memory, non-library
    # files and shared mappings are left alone
    assert _library_mappings(SMAPS) == [(0x7f0000000000, 0x7f0000100000), (0x7f0000100000, 0x7f0000900000),
                                        (0x7f0000d00000, 0x7f0000e00000)]


PROBE = """
import json, sys, tempfile
from k2.warehouse.memory import release_startup_pages, rss_mb
from k2.warehouse import open_warehouse
wh = open_warehouse(tempfile.mkdtemp())
before = rss_mb()
released = release_startup_pages()
after = rss_mb()
# the warehouse still works: the pages it needs are read back on use
n = wh.rows("SELECT count() FROM k2.silver_trades_v2")[0][0]
print(json.dumps({"before": before, "released": released, "after": after, "rows": n}))
"""


def test_opening_the_warehouse_then_releasing_gives_back_most_of_chdb():
    import chdb  # noqa: F401 - this process maps the same library too: the release must not care

    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["released"] > 100, r  # chDB's startup touches ~200 MB of its library
    assert r["after"] < r["before"] - 100, r
    assert int(r["rows"]) == 0, r


LEAN_PROBE = """
import json, sys, time
from pathlib import Path
import tempfile
from k2.warehouse import open_warehouse
release = sys.argv[1] == "1"
wh = open_warehouse(Path(tempfile.mkdtemp()), release_startup_pages=release)
hwm_open = [int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
from k2.exchanges import get_adapter
from k2.warehouse.bronze import BronzeWriter
adapter = get_adapter("binance")
frame = (b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1768435200001,"s":"BTCUSDT","t":7,'
         b'"p":"97000.01","q":"0.1","T":1768435200000,"m":true,"M":true}}')
written = BronzeWriter(wh, adapter).write(adapter.parse(frame, 1768435200002000).rows, source="ws")
import pyarrow as pa
print(json.dumps({"hwm_open": hwm_open, "written": written, "pandas": "pandas" in sys.modules,
                  "pool": pa.default_memory_pool().backend_name,
                  "silver": wh.scalar("SELECT count() FROM k2.silver_trades_v2")}))
"""


def test_a_long_running_writer_opens_leaner_and_still_writes():
    """What `k2 run` / `k2 sink` do (release_startup_pages): library pages given back after each
    step of opening, so the peak is not all of them at once; no pandas (pyarrow would import it
    for nothing); pyarrow on the system allocator. A trade still goes through to silver."""
    runs = {}
    for release in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", LEAN_PROBE, release], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[release] = json.loads(out.stdout.strip().splitlines()[-1])
    lean, plain = runs["1"], runs["0"]
    assert lean["written"] == plain["written"] == 1 and int(lean["silver"]) == int(plain["silver"]) == 1
    assert lean["pandas"] is False and lean["pool"] == "system", lean
    assert lean["hwm_open"] < plain["hwm_open"] - 60, runs  # ~270 vs ~390 MB on the bench machine


PURGE_PROBE = """
import json, tempfile
from pathlib import Path
from k2.warehouse import open_warehouse
from k2.exchanges import get_adapter
from k2.warehouse.bronze import BronzeWriter
adapter = get_adapter("binance")
wh = open_warehouse(Path(tempfile.mkdtemp()), release_startup_pages=True)
def anon():
    return [int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("RssAnon:")][0]
rows = [("trade", 1768435200001 + i, "BTCUSDT", 1 + i, "97000.01", "0.1", 1768435200000 + i, bool(i % 2), True,
         1768435200002000 + i * 1000) for i in range(60_000)]
written = BronzeWriter(wh, adapter).write(rows, source="ws")
del rows
before = anon()
wh.release_freed_memory()
print(json.dumps({"written": written, "before": before, "after": anon(),
                  "silver": wh.scalar("SELECT count() FROM k2.silver_trades_v2")}))
"""


def test_the_engine_gives_back_what_a_large_insert_freed():
    """chDB's allocator keeps freed pages for reuse; the writers hand them back (about once a
    second, k2.warehouse.memory.FreedMemoryRelease) so RSS does not stay at the largest batch's high-water."""
    out = subprocess.run([sys.executable, "-c", PURGE_PROBE], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["written"] == 60_000 and int(r["silver"]) == 60_000, r
    assert r["after"] < r["before"] - 10, r  # ~60 MB given back on the bench machine


BULK_PROBE = """
import json, sys, tempfile
from pathlib import Path
from k2.warehouse import open_warehouse
from k2.warehouse.memory import FreedMemoryRelease
from k2.exchanges import get_adapter
from k2.warehouse.bronze import BronzeWriter
adapter = get_adapter("binance")
wh = open_warehouse(Path(tempfile.mkdtemp()), release_startup_pages=sys.argv[1] == "1")
def clean():  # file-backed resident pages (private or shared with another process mapping chDB)
    f = {l.split(":")[0]: int(l.split()[1]) for l in open("/proc/self/smaps_rollup") if l.endswith("kB\\n")}
    return (f["Rss"] - f["Anonymous"]) // 1024
rows = [("trade", 1768435200001 + i, "BTCUSDT", 1 + i, "97000.01", "0.1", 1768435200000 + i, bool(i % 2), True,
         1768435200002000 + i * 1000) for i in range(20_000)]
written = BronzeWriter(wh, adapter).write(rows, source="file")
before = clean()
FreedMemoryRelease(wh, interval_s=0.0, library_pages=True).after_write()
print(json.dumps({"written": written, "before": before, "after": clean(),
                  "silver": wh.scalar("SELECT count() FROM k2.silver_trades_v2")}))
"""


def test_a_bulk_writer_gives_back_the_library_pages_its_writes_touched_again():
    """`k2 import` after every chunk (FreedMemoryRelease(library_pages=True)): the insert code's
    pages that came back since startup's were released go back again; a process that kept
    startup's pages (K2_RELEASE_STARTUP_PAGES=0) keeps these too."""
    runs = {}
    for release in ("0", "1"):
        out = subprocess.run([sys.executable, "-c", BULK_PROBE, release], capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr[-2000:]
        runs[release] = r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["written"] == 20_000 and int(r["silver"]) == 20_000, r
    assert runs["1"]["after"] < runs["1"]["before"] - 10, runs  # the insert path's pages: ~25 MB here
    assert runs["0"]["after"] > runs["0"]["before"] - 5, runs  # the setting is honored


TRIM_PROBE = """
import ctypes, json
from k2.warehouse.memory import trim_c_heap
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = (ctypes.c_void_p,)
def anon():
    return [int(l.split()[1]) // 1024 for l in open("/proc/self/status") if l.startswith("RssAnon:")][0]
blocks = [libc.malloc(2048) for _ in range(60_000)]  # ~120 MB below the mmap threshold: heap pages
for b in blocks:
    ctypes.memset(b, 1, 2048)
keep = blocks[-1]  # the heap's top stays in use: freeing alone gives nothing back
for b in blocks[:-1]:
    libc.free(b)
before = anon()
trim_c_heap()
print(json.dumps({"before": before, "after": anon()}))
"""


def test_trimming_the_c_heap_gives_back_what_was_freed_inside_it():
    """`k2 load` trims glibc's heap after each batch (k2.warehouse.memory.trim_c_heap): Arrow's
    batches come from it, and freed pages below a live block stay resident until trimmed."""
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["before"] > 100 and r["after"] < r["before"] - 80, r



ALLOCATOR_PROBE = """
import json, sys
from k2.warehouse.memory import bulk_writer_allocator
applied = None
if sys.argv[1] == "call":
    applied = bulk_writer_allocator()
elif sys.argv[1] == "load":  # the whole command, in this process, on a small frame file
    from k2.cli import main
    assert main(["load", sys.argv[3], "--exchange", "binance", "--data-dir", sys.argv[2]]) == 0
import chdb
stats = chdb.query("SELECT * FROM system.jemalloc_stats", "TSVRaw").data().splitlines()
opts = dict(l.strip().split(": ", 1) for l in stats if l.strip().startswith(("opt.narenas:", "opt.percpu_arena:",
                                                                          "opt.dirty_decay_ms:")))
print(json.dumps({"applied": applied, **opts}))
"""


def _allocator(mode: str, tmp_path, user_conf: str | None = None, frames: str = "") -> dict:
    env = {k: v for k, v in os.environ.items() if k != "JE_MALLOC_CONF"}
    if user_conf is not None:
        env["JE_MALLOC_CONF"] = user_conf
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE, mode, str(tmp_path / mode), frames],
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_bulk_writer_gives_chdbs_allocator_one_arena(tmp_path):
    """bulk_writer_allocator (k2 load, ADR 0029 third round): chDB's jemalloc runs with one arena
    instead of one per CPU, read from chDB's own statistics; options the user set win."""
    default = _allocator("none", tmp_path)
    assert default["opt.percpu_arena"] == '"percpu"', default  # chDB's build: an arena per CPU
    bulk = _allocator("call", tmp_path)
    assert bulk["applied"] is True, bulk
    assert bulk["opt.narenas"] == "1" and bulk["opt.percpu_arena"] == '"disabled"', bulk
    assert bulk["opt.dirty_decay_ms"] == default["opt.dirty_decay_ms"], bulk  # the rest stays chDB's
    user = _allocator("call", tmp_path, user_conf="narenas:3,dirty_decay_ms:1234")
    assert user["opt.narenas"] == "3" and user["opt.dirty_decay_ms"].startswith("1234 "), user
    assert user["opt.percpu_arena"] == '"disabled"', user


def test_k2_load_sets_the_bulk_allocator_before_chdb_loads(tmp_path):
    """`k2 load` (embedded, K2_RELEASE_STARTUP_PAGES on) sets it before anything loads chDB."""
    frames = tmp_path / "frames.jsonl"
    frames.write_text("".join(
        '{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,"p":"97000.01","q":"0.1","T":%d,"m":true,"M":true}\n'
        % (1768435200001 + i, 1 + i, 1768435200000 + i) for i in range(100)))
    r = _allocator("load", tmp_path, frames=str(frames))
    assert r["opt.narenas"] == "1" and r["opt.percpu_arena"] == '"disabled"', r


def test_backfill_reconcile_and_rebuild_give_back_the_pages_only_opening_touched(tmp_path):
    """`k2 backfill`, `k2 reconcile` and `k2 rebuild` open the warehouse as the other writers do
    (K2_RELEASE_STARTUP_PAGES, on by default): the same commands on the same data with it off peak
    higher (VmHWM sampled while each runs). The work is the same either way: same rows, same result."""
    bench = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, bench)  # run_measured: VmHWM sampled while the child runs, as the benchmarks measure
    try:
        from _common import run_measured
    finally:
        sys.path.remove(bench)
    from k2.simulator.process import SimulatorProcess

    now = time.time()  # the simulator's past day, whole (a mismatch would say so: reconcile exits 1)
    day, today = (time.strftime("%Y-%m-%d", time.gmtime(t)) for t in (now - 86400, now))
    window = ["--since", f"{day}T00:00:00Z", "--until", f"{today}T00:00:00Z"]
    commands = {"backfill": ["backfill", "--exchange", "binance", "--symbols", "BTCUSDT", *window],
                "reconcile": ["reconcile", "--exchange", "binance", "--symbols", "BTCUSDT", *window],
                "rebuild": ["rebuild"]}
    peaks: dict[str, dict[str, float]] = {name: {} for name in commands}
    said: dict[str, dict[str, str]] = {name: {} for name in commands}
    with SimulatorProcess("--exchange", "binance", "--symbols", "BTCUSDT", "--history-days", "1",
                          "--history-trades-per-day", "20000") as sim:
        for release in ("1", "0"):
            env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
            env.update(K2_BINANCE_REST_URL=sim.urls["binance"]["rest"], K2_LOG_LEVEL="WARNING",
                       K2_RELEASE_STARTUP_PAGES=release)
            data = tmp_path / f"data-{release}"
            for name, args in commands.items():
                r = run_measured([sys.executable, "-m", "k2", *args, "--data-dir", str(data)], 300, env)
                assert r["rc"] == 0, (name, r["stdout"][-1000:], r["stderr"][-2000:])
                peaks[name][release] = r["maxrss_mb"]
                said[name][release] = r["stdout"].strip().splitlines()[0] if r["stdout"].strip() else ""
    for name in commands:
        assert said[name]["1"].split(";")[0] == said[name]["0"].split(";")[0], said  # the same work
        assert peaks[name]["1"] < peaks[name]["0"] - 20, peaks  # bench machine: 143, 36, 73 MB less
