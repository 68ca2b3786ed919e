"""`k2 load`, the input side: compressed files and stdin, paths that are not regular files, a file
of another venue or kind refused before anything is written, and recordings of pairs the
built-in instrument list does not know.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import subprocess
import threading

import pytest
import zstandard

from k2.simulator.process import SimulatorProcess

COUNT = "SELECT count() FROM silver_trades_v2"


def rows(k2_cli, data, sql: str) -> list[str]:
    r = k2_cli("query", sql, "--format", "csv", "--data-dir", data)
    assert r.returncode == 0, r.stderr
    return r.stdout.splitlines()[1:]


@pytest.mark.parametrize("kind, pack", [
    ("gzip", gzip.compress), ("zstd", lambda b: zstandard.ZstdCompressor().compress(b)),
    ("bz2", bz2.compress), ("xz", lzma.compress),
])
def test_compressed_files_load_like_plain_ones(tmp_path, k2_cli, fixtures_dir, kind, pack):
    """A .gz used to "succeed" (exit 0) with every line rejected."""
    path = tmp_path / "capture.bin"  # recognised by its bytes, not its name
    path.write_bytes(pack((fixtures_dir / "kraken_session.jsonl").read_bytes()))
    r = k2_cli("load", path, "--exchange", "kraken", "--data-dir", tmp_path / "d")
    assert r.returncode == 0, r.stderr
    assert f"({kind}): 19 frames, 11 trades (11 new, 0 already stored), 0 rejected" in r.stdout
    assert rows(k2_cli, tmp_path / "d", COUNT) == ["11"]


def test_stdin_and_a_fifo(tmp_path, fixtures_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
    env.update(K2_INSTRUMENTS_REFRESH="0", K2_LOG_DIR=str(tmp_path))
    k2 = [os.path.join(os.path.dirname(os.sys.executable), "k2")]
    data = fixtures_dir / "binance_session.jsonl"
    r = subprocess.run([*k2, "load", "-", "--exchange", "binance", "--data-dir", str(tmp_path / "d")],
                       input=zstandard.ZstdCompressor().compress(data.read_bytes()), capture_output=True, env=env,
                       timeout=120)
    assert r.returncode == 0 and b"stdin (zstd): 13 frames, 9 trades (9 new" in r.stdout, r.stderr
    fifo = tmp_path / "frames.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes((fixtures_dir / "kraken_session.jsonl").read_bytes()))
    writer.start()
    try:
        r = subprocess.run([*k2, "load", str(fifo), "--exchange", "kraken", "--data-dir", str(tmp_path / "d")],
                           capture_output=True, text=True, env=env, timeout=120)
    finally:
        writer.join(timeout=30)
    assert r.returncode == 0 and "11 trades (11 new" in r.stdout, r.stderr  # it was "no such file"


@pytest.mark.parametrize("what", ["empty", "devnull", "directory", "missing"])
def test_paths_that_hold_no_frames_are_one_line(tmp_path, k2_cli, what):
    path = {"empty": tmp_path / "empty.jsonl", "devnull": "/dev/null", "directory": tmp_path,
            "missing": tmp_path / "nope.jsonl"}[what]
    if what == "empty":
        path.write_bytes(b"\n\n")
    r = k2_cli("load", path, "--exchange", "binance", "--data-dir", tmp_path / "d")
    message = {"empty": "holds no frames", "devnull": "/dev/null holds no frames (it is empty)",
               "directory": "is a directory", "missing": "no such file"}[what]
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and message in r.stderr, r.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("fixture, flags, hint", [
    ("kraken_session.jsonl", ["--exchange", "binance"], "they are kraken trades: try --exchange kraken"),
    ("binance_session.jsonl", ["--exchange", "kraken"], "they are binance trades: try --exchange binance"),
    ("kraken_v2_session.jsonl", ["--exchange", "kraken"], "try --exchange kraken --api v2"),
    ("coinbase_advanced_session.jsonl", ["--exchange", "coinbase"], "try --exchange coinbase --api advanced"),
    ("okx_session.jsonl", ["--exchange", "gemini"], "they are okx trades: try --exchange okx"),
])
def test_a_file_of_another_venue_is_refused_before_anything_is_written(tmp_path, k2_cli, fixtures_dir, fixture,
                                                                         flags, hint):
    """It used to succeed (exit 0) with every frame rejected, filling the rejects table."""
    r = k2_cli("load", fixtures_dir / fixture, *flags, "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and r.stdout == "", r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and "does not hold" in lines[0] and "no trade in" in lines[0] and hint in lines[0], lines
    assert not (tmp_path / "d").exists()


def test_binary_data_is_refused(tmp_path, k2_cli):
    path = tmp_path / "x.parquet"
    path.write_bytes(b"PAR1\x00\x15\x04" + os.urandom(2000) + b"\n\x00\x01")
    r = k2_cli("load", path, "--exchange", "binance", "--data-dir", tmp_path / "d")
    assert r.returncode == 2 and "does not hold binance frames" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_a_file_with_frames_but_no_trades_fails(tmp_path, k2_cli):
    path = tmp_path / "beats.jsonl"
    path.write_text('{"event":"heartbeat"}\n{"event":"systemStatus","status":"online","version":"1.9"}\n')
    r = k2_cli("load", path, "--exchange", "kraken", "--data-dir", tmp_path / "d")
    assert r.returncode == 1 and "k2: error: no trades in" in r.stderr and "2 frames" in r.stdout, r.stderr


def test_the_same_rejected_lines_of_two_venues_are_both_kept(tmp_path):
    """The rejects' deduplication token named only the file line and bytes: the same lines
    rejected by a second venue were silently dropped as a repeated insert."""
    from k2.rejects import Reject
    from k2.warehouse import open_warehouse
    from k2.warehouse.bronze import write_rejects

    wh = open_warehouse(tmp_path / "d")
    try:
        for exchange in ("binance", "kraken", "binance"):  # the third is a true repeat: a no-op
            write_rejects(wh, [Reject(exchange, "file", "malformed frame", b"garbage %d" % i, 1, f"f.jsonl:{i}")
                               for i in range(3)])
        stored = dict(wh.rows("SELECT exchange, count() FROM k2.rejects GROUP BY exchange"))
    finally:
        wh.close()
    assert stored == {"binance": "3", "kraken": "3"}


# -- pairs the instruments table does not know ------------------------------------------------------------
ETHBTC = b'{"e":"trade","E":1784116800123,"s":"ETHBTC","t":7,"p":"0.0351","q":"2","T":1784116800122,"m":true,"M":true}'


def _forget_ethbtc(k2_cli, data):
    """A data dir whose instruments table lacks ETHBTC: a pair as unknown as any rare listing."""
    assert k2_cli("query", "SELECT 1", "--data-dir", data).returncode == 0  # creates the store
    sql = "ALTER TABLE instruments DELETE WHERE exchange = 'binance' AND native_symbol = 'ETHBTC' SETTINGS mutations_sync = 2"
    r = k2_cli("query", sql, "--write", "--data-dir", data)  # a deliberate write: the read door refuses it
    assert r.returncode == 0, r.stderr


def test_the_exchange_instrument_list_places_an_unknown_pair(tmp_path, k2_cli):
    data, path = tmp_path / "d", tmp_path / "f.jsonl"
    path.write_bytes(ETHBTC + b"\n")
    data.mkdir()
    _forget_ethbtc(k2_cli, data)
    with SimulatorProcess("--exchange", "binance", "--rate", "1") as sim:
        rest = sim.urls["binance"]["rest"]
        r = k2_cli("load", path, "--exchange", "binance", "--data-dir", data,
                   env={"K2_INSTRUMENTS_REFRESH": "1", "K2_BINANCE_REST_URL": rest})
    assert r.returncode == 0 and "could not place" not in r.stderr, r.stderr
    assert rows(k2_cli, data, "SELECT canonical_symbol, is_valid FROM silver_trades_v2") == ['"ETH/BTC",true']


def test_an_unplaced_pair_is_named_and_rebuild_repairs_it_once_known(tmp_path, k2_cli):
    """Offline: the trades are stored and flagged, the warning names the pair; `k2 rebuild` fixes
    silver and gold once the instrument is in the table (k2 run refreshes it when online)."""
    data, path = tmp_path / "d", tmp_path / "f.jsonl"
    path.write_bytes(ETHBTC + b"\n")
    data.mkdir()
    _forget_ethbtc(k2_cli, data)
    r = k2_cli("load", path, "--exchange", "binance", "--data-dir", data,
               env={"K2_INSTRUMENTS_REFRESH": "1", "K2_BINANCE_REST_URL": "http://127.0.0.1:9"})
    assert r.returncode == 0, r.stderr
    warning = [line for line in r.stderr.splitlines() if line.startswith("k2: warning:")]
    assert len(warning) == 1 and "could not place ETHBTC (no instrument list (http://127.0.0.1:9" in warning[0]
    assert "k2 rebuild --exchange binance" in warning[0]
    assert rows(k2_cli, data, "SELECT is_valid, validation_errors FROM silver_trades_v2") == [
        "false,\"['unknown_instrument']\""]
    assert k2_cli("validate", "--data-dir", data).returncode == 1
    assert k2_cli("query", "INSERT INTO instruments (exchange, native_symbol, base, quote, source) "
                  "VALUES ('binance', 'ETHBTC', 'ETH', 'BTC', 'exchange')", "--write", "--data-dir", data).returncode == 0
    assert k2_cli("rebuild", "--exchange", "binance", "--data-dir", data).returncode == 0
    assert rows(k2_cli, data, "SELECT canonical_symbol, is_valid FROM silver_trades_v2") == ['"ETH/BTC",true']
    assert rows(k2_cli, data, "SELECT trade_count FROM ohlcv_1m") == ["1"]
    r = k2_cli("validate", "--data-dir", data)
    assert r.returncode == 0, r.stdout


def test_a_read_error_in_the_middle_is_one_line_and_keeps_what_was_loaded(tmp_path, k2_main, k2_cli, monkeypatch):
    """The disk or the device fails while the file is read (EIO after 2,500 frames): a one-line
    error with the system's words and the file, exit 1, no "internal error"; the batches written
    before it are stored, and loading the file again once it reads adds exactly the rest."""
    import contextlib
    import errno

    from fixtures.make_frames import binance_trade

    import k2.history.inputs as inputs

    path = tmp_path / "trades.jsonl"
    path.write_bytes(b"".join(binance_trade("BTCUSDT", 1000 + i, "65000.5", "0.01", 1_784_073_600_000 + i, i % 2 == 0)
                              + b"\n" for i in range(5000)))
    real = inputs.open_frames

    class Failing:
        def __init__(self, stream, after: int):
            self.stream, self.left = stream, after

        def __iter__(self):
            return self

        def __next__(self) -> bytes:
            if self.left == 0:
                raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
            self.left -= 1
            return next(self.stream)

        def __getattr__(self, name):
            return getattr(self.stream, name)

    @contextlib.contextmanager
    def failing_open(source):
        with real(source) as opened:
            lines, name, kind = opened
            broken = inputs.OpenedFrames((Failing(lines, 2500), name, kind))
            broken.raw, broken.size = opened.raw, opened.size
            yield broken

    monkeypatch.setattr(inputs, "open_frames", failing_open)
    data = tmp_path / "d"
    rc, out, err = k2_main("load", path, "--exchange", "binance", "--batch-size", "1000", "--data-dir", data,
                           "--no-progress")
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1, (rc, out, err)
    assert len(lines) == 1 and lines[0].startswith(f"k2: error: Input/output error: {path}"), err
    assert "internal error" not in err and "Traceback" not in err, err
    stored = int(rows(k2_cli, data, COUNT)[0])
    assert 2000 <= stored <= 2500, stored  # every batch the writer finished is kept

    monkeypatch.setattr(inputs, "open_frames", real)
    rc, out, err = k2_main("load", path, "--exchange", "binance", "--data-dir", data, "--no-progress")
    assert rc == 0, err
    assert f"5000 trades ({5000 - stored} new, {stored} already stored)" in out, out
    assert rows(k2_cli, data, COUNT) == ["5000"]
