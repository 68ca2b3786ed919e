"""The files a K2 process leaves for others, and who may read through its endpoint (issue 16):
the run file and the crash log are created safely (no symlink followed, mode 0600 whatever was
there before, per user), a stale run file does not stop the reads, and reads and status are
served on loopback only."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from k2.runfile import RUN_FILE, append_crash_log, crash_log_path, read_run_info, write_run_info
from k2.services.api import ApiHandlers
from k2.services.lifecycle import ServiceEndpoint, serves_reads


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_run_file_replaces_a_planted_symlink_and_is_0600_whatever_was_there(tmp_path):
    data, victim = tmp_path / "data", tmp_path / "victim.txt"
    data.mkdir()
    victim.write_text("precious")
    (data / RUN_FILE).symlink_to(victim)
    write_run_info(data, {"pid": os.getpid(), "addr": "127.0.0.1:1", "token": "secret"})
    assert victim.read_text() == "precious"  # not followed
    assert not (data / RUN_FILE).is_symlink() and _mode(data / RUN_FILE) == 0o600
    (data / RUN_FILE).chmod(0o644)  # an old file, readable by everyone
    write_run_info(data, {"pid": os.getpid(), "addr": "127.0.0.1:2", "token": "secret2"})
    assert _mode(data / RUN_FILE) == 0o600
    assert read_run_info(data)["token"] == "secret2"
    assert [p.name for p in data.iterdir()] == [RUN_FILE]  # no temporary file left behind


def test_a_stale_run_file_whose_pid_is_another_process_is_ignored(tmp_path, k2_cli):
    data = tmp_path / "data"
    assert k2_cli("schema", "apply", "--data-dir", data).returncode == 0  # a data dir
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        info = {"pid": sleeper.pid, "addr": "127.0.0.1:9", "token": "x"}
        write_run_info(data, info)
        assert read_run_info(data) is not None  # that process, alive
        # the k2 process that wrote it died and the pid went to another process: its start time differs
        doc = json.loads((data / RUN_FILE).read_text())
        doc["pid_started"] = str(int(doc["pid_started"]) - 1000)
        (data / RUN_FILE).write_text(json.dumps(doc))
        assert read_run_info(data) is None
        res = k2_cli("query", "SELECT 41 + 1", "--data-dir", data, "--format", "csv")
        assert res.returncode == 0 and res.stdout.splitlines()[-1] == "42", res.stderr  # reads open the data dir
    finally:
        sleeper.kill()
        sleeper.wait()


def test_the_crash_log_is_per_user_0600_and_never_follows_a_symlink(tmp_path, monkeypatch):
    monkeypatch.delenv("K2_LOG_DIR", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = crash_log_path()
    assert path == tmp_path / "state" / "k2" / "k2-error.log"
    assert not str(path).startswith("/tmp/k2-error")
    append_crash_log("Traceback one\n")
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    path.chmod(0o644)
    append_crash_log("Traceback two\n")
    assert _mode(path) == 0o600 and path.read_text() == "Traceback one\nTraceback two\n"
    path.unlink()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path.symlink_to(victim)
    try:
        append_crash_log("Traceback three\n")
        raise AssertionError("followed a symlink")
    except OSError:
        pass
    assert victim.read_text() == "precious"


def test_reads_and_status_are_served_on_loopback_only():
    for addr in ("127.0.0.1:0", "localhost:9108", "[::1]:9108", "127.0.0.2:1"):
        assert serves_reads(addr), addr
    for addr in ("0.0.0.0:9108", "10.1.2.3:9108", "[::]:9108", "k2.example.com:9108"):
        assert not serves_reads(addr), addr


def test_an_endpoint_on_loopback_serves_reads_and_writes_its_run_file(tmp_path):
    import urllib.request

    handlers = ApiHandlers(lambda: {"ok": 42}, lambda: b"", lambda: True)
    with ServiceEndpoint("127.0.0.1:0", handlers, data_dir=tmp_path, run_info={"role": "test"}) as ep:
        info = read_run_info(tmp_path)
        assert info["addr"] == ep.address and _mode(tmp_path / RUN_FILE) == 0o600
        req = urllib.request.Request(f"http://{ep.address}/api/status", headers={"X-K2-Token": info["token"]})
        assert json.loads(urllib.request.urlopen(req, timeout=5).read()) == {"ok": 42}
    assert not (tmp_path / RUN_FILE).exists()
