"""`k2.history.load.load_file`: frame files into bronze -> silver -> gold, exactly once, with rejects."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures import k2db
from fixtures import make_frames as mf
from fixtures import reference as ref
from k2.errors import FrameError, K2Error
from k2.exchanges import get_adapter
from k2.history.load import load_file

GOLD = [f"gold_ohlcv_{i}" for i in ref.INTERVALS]
VIEWS = [f"ohlcv_{i}{suffix}" for i in ref.INTERVALS for suffix in ("", "_cross")]


def state(wh) -> dict:
    """Everything a load can change: every data table in full, and every gold view."""
    out = {t: k2db.snapshot(wh, t) for t in k2db.data_tables(wh)}
    out.update({v: wh.rows(f"SELECT * FROM k2.{v} ORDER BY canonical_symbol, exchange, window_start")
                for v in VIEWS})
    return out


def reference_trades(exchange: str, frames) -> list[ref.Trade]:
    return ref.binance_trades(frames) if exchange == "binance" else ref.kraken_trades(frames)


def assert_gold_matches(wh, trades) -> None:
    for interval in ref.INTERVALS:
        for cross in (False, True):
            assert k2db.read_candles(wh, interval, cross) == k2db.as_view_candles(
                ref.candles(trades, interval, cross), cross), (interval, cross)


# -- counts ---------------------------------------------------------------------------------------
def test_load_report_counts(clean_warehouse, load_frames, fixtures_dir):
    b = load_frames(clean_warehouse, "binance", fixtures_dir / "binance_session.jsonl")
    assert (b.frames, b.trades, b.written, b.rejects) == (13, 9, 9, 0)
    assert dict(b.other) == {"subscribed": 1, "other": 1, "exchange_error": 1, "shutdown": 1}
    k = load_frames(clean_warehouse, "kraken", fixtures_dir / "kraken_session.jsonl")
    assert (k.frames, k.trades, k.written, k.rejects) == (19, 11, 11, 0)
    assert dict(k.other) == {"status": 1, "subscribed": 5, "subscribe_error": 1, "heartbeat": 3, "pong": 1}
    summary = k.summary()
    assert "19 frames" in summary and "11 trades" in summary and "0 rejected" in summary


def test_blank_lines_and_crlf_endings(clean_warehouse, tmp_path, load_frames):
    frames = [mf.binance_trade("BTCUSDT", i, "97000.5", "0.1", 1784116800000 + i, False) for i in (1, 2)]
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b"\r\n" + frames[0] + b"\r\n\r\n   \n" + frames[1] + b"\r\n" + b"{oops\r\n")
    report = load_frames(clean_warehouse, "binance", path)
    assert (report.frames, report.trades, report.rejects, report.blank_lines) == (3, 2, 1, 3)
    assert clean_warehouse.scalar("SELECT hex(raw) FROM k2.rejects") == b"{oops".hex().upper()


def test_missing_file_is_a_user_error(clean_warehouse, tmp_path):
    with pytest.raises(K2Error, match="no such file"):
        load_file(clean_warehouse, get_adapter("kraken"), tmp_path / "nope.jsonl")


# -- exactly once ---------------------------------------------------------------------------------
@pytest.mark.parametrize("exchange, name", [
    ("binance", "binance_session.jsonl"),
    ("binance", "binance_combined_session.jsonl"),
    ("kraken", "kraken_session.jsonl"),
    ("binance", "binance_malformed.jsonl"),
    ("kraken", "kraken_malformed.jsonl"),
])
def test_loading_the_same_file_twice_changes_nothing(clean_warehouse, load_frames, fixtures_dir, exchange, name):
    wh = clean_warehouse
    path = fixtures_dir / name
    first = load_frames(wh, exchange, path)
    assert first.written == first.trades > 0
    before = state(wh)
    assert k2db.count(wh, "silver_trades_v2") == first.trades
    second = load_frames(wh, exchange, path)
    assert (second.trades, second.written, second.rejects) == (first.trades, 0, first.rejects)
    assert state(wh) == before
    # a third time, in small batches: still nothing new anywhere
    load_frames(wh, exchange, path, batch_size=2)
    assert state(wh) == before
    assert_gold_matches(wh, reference_trades(exchange, path.read_bytes().splitlines()))


def test_same_trades_in_combined_form_add_nothing(clean_warehouse, load_frames, fixtures_dir):
    wh = clean_warehouse
    load_frames(wh, "binance", fixtures_dir / "binance_session.jsonl")
    before = state(wh)
    report = load_frames(wh, "binance", fixtures_dir / "binance_combined_session.jsonl")
    assert (report.trades, report.written) == (9, 0)
    assert state(wh) == before


def binance_frames(ids):
    return [mf.binance_trade("BTCUSDT", i, f"{97000 + i}.{i:02d}", f"0.{i:04d}", 1784116800000 + 7919 * i, i % 3 == 0)
            for i in ids]


def kraken_frames(numbers):
    """Frame n holds trades n*10 .. n*10+2, one of them repeated (occurrence 1)."""
    out = []
    for n in numbers:
        trades = [mf.KTrade(f"{97000 + n}.{k}0000", f"0.{n:02d}{k}00000", mf.kraken_time(1784116800_000000 + n * 61_000_123 + k),
                            "bs"[(n + k) % 2], "lm"[k % 2]) for k in range(3)]
        out.append(mf.kraken_trades(119930881, "XBT/USD", trades + [trades[1]]))
    return out


@pytest.mark.parametrize("exchange", ["binance", "kraken"])
def test_overlapping_file_adds_only_the_new_trades(clean_warehouse, load_frames, exchange):
    wh = clean_warehouse
    make = binance_frames if exchange == "binance" else kraken_frames
    first, second = make(range(1, 21)), make(range(11, 41))  # the second half of `first` again
    per_frame = 1 if exchange == "binance" else 4
    a = load_frames(wh, exchange, first, name="a.jsonl")
    assert a.written == 20 * per_frame
    bronze_before = k2db.snapshot(wh, get_adapter(exchange).bronze_table)
    b = load_frames(wh, exchange, second, name="b.jsonl")
    assert (b.trades, b.written) == (30 * per_frame, 20 * per_frame)
    assert k2db.count(wh, "silver_trades_v2") == 40 * per_frame
    bronze_after = k2db.snapshot(wh, get_adapter(exchange).bronze_table)
    assert all(row in bronze_after for row in bronze_before)  # nothing rewritten
    assert_gold_matches(wh, reference_trades(exchange, make(range(1, 41))))


@pytest.mark.parametrize("exchange", ["binance", "kraken"])
@pytest.mark.parametrize("batch_size", [1, 100_000])
def test_a_frame_repeated_in_one_file_counts_once(clean_warehouse, load_frames, exchange, batch_size):
    wh = clean_warehouse
    make = binance_frames if exchange == "binance" else kraken_frames
    frames = make(range(1, 6))
    per_frame = 1 if exchange == "binance" else 4
    doubled = frames[:3] + [frames[1]] + frames[3:] + [frames[0], frames[4], frames[4]]
    report = load_frames(wh, exchange, doubled, batch_size=batch_size)
    assert report.trades == 9 * per_frame
    assert report.written == 5 * per_frame
    assert k2db.count(wh, "silver_trades_v2") == 5 * per_frame
    assert k2db.count(wh, get_adapter(exchange).bronze_table) == 5 * per_frame
    assert_gold_matches(wh, reference_trades(exchange, frames))


def test_two_insert_streams_store_each_trade_once(clean_warehouse, load_frames, monkeypatch):
    """`k2 load --streams 2`: batches of new trades go to a second connection beside the next
    batch's INSERT; a batch with a trade at the last stored millisecond is decided from the keys
    already handed on, and one reaching back in time waits for the second stream, then probes."""
    from k2.warehouse.embedded import BulkSession

    beside = []
    real = BulkSession.insert_rows

    def counted(self, *args, **kw):
        beside.append(args[0])
        return real(self, *args, **kw)

    monkeypatch.setattr(BulkSession, "insert_rows", counted)
    wh = clean_warehouse

    def frames(ids):  # three trades per millisecond: batches of 4 share their edges' milliseconds
        return [mf.binance_trade("BTCUSDT", i, f"{97000 + i}.5", f"0.{i:04d}", 1784116800000 + i // 3, i % 2 == 0)
                for i in ids]

    ordered = frames(range(1, 61))
    back = frames(range(20, 31))  # again, older than what is stored by then
    repeated = frames([61, 62, 61, 63])
    newer = frames(range(64, 81))
    report = load_frames(wh, "binance", ordered + back + repeated + newer, batch_size=4, streams=2)
    assert len(beside) >= 5, beside  # the second stream did take batches
    assert (report.trades, report.written) == (60 + 11 + 4 + 17, 80)
    assert k2db.count(wh, "bronze_trades_binance") == 80
    assert k2db.count(wh, "silver_trades_v2") == 80
    assert_gold_matches(wh, reference_trades("binance", frames(range(1, 81))))
    assert not (wh.data_dir / "inflight.json").exists()  # no INSERT left in the crash journal
    before = state(wh)
    again = load_frames(wh, "binance", ordered + newer, name="again.jsonl", batch_size=4, streams=2)
    assert again.written == 0 and state(wh) == before


@pytest.mark.parametrize("streams", [1, 2])
def test_a_failed_insert_stops_the_load_with_its_error_and_keeps_what_was_written(clean_warehouse, load_frames,
                                                                                   monkeypatch, streams):
    """The writer fails on its third batch while the parser waits on a full queue: the load
    raises that error (it hung before), and the batches written before it stay stored."""
    import threading

    from k2.warehouse.bronze import BronzeWriter

    lock = threading.Lock()
    calls, written = [], []
    real_insert = BronzeWriter.insert

    def failing(self, batch, *args, **kw):  # every INSERT of a load, on either stream
        with lock:
            calls.append(batch.n)
            fail = len(calls) == 3
        if fail:
            raise OSError("No space left on device (a test)")
        out = real_insert(self, batch, *args, **kw)
        with lock:
            written.append(batch.n)
        return out

    monkeypatch.setattr(BronzeWriter, "insert", failing)
    wh = clean_warehouse
    outcome = []

    def load() -> None:
        try:
            load_frames(wh, "binance", binance_frames(range(1, 2001)), batch_size=50, streams=streams)
            outcome.append("returned")
        except OSError as exc:
            outcome.append(str(exc))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(60)
    assert outcome == ["No space left on device (a test)"], outcome or "k2 load still running after 60 s"
    # one stream: the two batches before the failed one. Two streams: an INSERT running beside the
    # failed one may finish as well. Either way every INSERT that returned is stored, nothing else.
    assert len(written) == 2 if streams == 1 else 2 <= len(written) <= 3
    assert k2db.count(wh, "bronze_trades_binance") == k2db.count(wh, "silver_trades_v2") == sum(written)


def test_reordered_reload_in_batches_changes_nothing(clean_warehouse, load_frames):
    wh = clean_warehouse
    frames = kraken_frames(range(1, 31))
    load_frames(wh, "kraken", frames, name="a.jsonl")
    before = state(wh)
    report = load_frames(wh, "kraken", frames[::-1], name="b.jsonl", batch_size=7)
    assert report.written == 0
    assert state(wh) == before


# -- rejects --------------------------------------------------------------------------------------
@pytest.mark.parametrize("exchange, name, bad", [
    ("binance", "binance_malformed.jsonl", mf.BINANCE_BAD),
    ("kraken", "kraken_malformed.jsonl", mf.KRAKEN_BAD),
])
def test_malformed_frames_land_in_rejects_and_the_rest_loads(clean_warehouse, load_frames, fixtures_dir,
                                                             exchange, name, bad):
    wh = clean_warehouse
    adapter = get_adapter(exchange)
    path = fixtures_dir / name
    report = load_frames(wh, exchange, path)
    assert (report.frames, report.trades, report.rejects) == (len(bad) + 2, 2, len(bad))

    rows = wh.rows("SELECT exchange, source, reason, hex(raw), origin FROM k2.rejects ORDER BY received_at, origin")
    rows.sort(key=lambda r: int(r[4].rsplit(":", 1)[1]))
    assert len(rows) == len(bad)
    for lineno, ((frame, reason_part), row) in enumerate(zip(bad, rows), start=2):
        with pytest.raises(FrameError) as err:
            adapter.parse(frame, 0)
        assert row == [exchange, "file", str(err.value), frame.hex().upper(), f"{name}:{lineno}"]
        assert reason_part in row[2]

    # the good frames before and after the bad ones are in silver and gold
    assert k2db.count(wh, "silver_trades_v2") == 2
    assert k2db.count(wh, "silver_trades_v2", "is_valid") == 2
    assert int(wh.scalar("SELECT sum(trade_count) FROM k2.ohlcv_1m")) == 2

    # loading again adds no reject
    load_frames(wh, exchange, path)
    assert k2db.count(wh, "rejects") == len(bad)


def test_rejects_keep_exact_bytes_of_invalid_utf8(clean_warehouse, load_frames):
    wh = clean_warehouse
    frame = b'[119930881,[["97600.0","0.01","1784116900.000008","b","l","\xff\xfe"]],"trade","XBT/USD"]'
    good = b'[119930881,[["97600.0","0.01","1784116900.000009","b","l",""]],"trade","XBT/USD"]'
    report = load_frames(wh, "kraken", [good, frame])  # a file of rejects only is refused (test_inputs.py)
    assert report.rejects == 1
    assert wh.scalar("SELECT hex(raw) FROM k2.rejects") == frame.hex().upper()
    assert wh.scalar("SELECT length(raw) FROM k2.rejects") == str(len(frame))


# -- the key probe is skipped only when it cannot matter --------------------------------------------
def test_writer_skips_the_probe_only_for_new_trades_without_repeats(clean_warehouse, monkeypatch):
    """`skip_probe_when_newer`: newer trades go in unprobed, older ones are probed; a key repeated
    inside a batch is written once (its first row) without a probe. Nothing is written twice."""
    from k2.warehouse.bronze import BronzeWriter

    wh, adapter = clean_warehouse, get_adapter("binance")
    session = adapter.session()
    rows = [r for f in binance_frames(range(1, 31)) for r in session.parse(f, 1).rows]
    probes = []
    real = wh.existing_keys
    monkeypatch.setattr(wh, "existing_keys", lambda *a, **kw: probes.append(a[2].num_rows) or real(*a, **kw))
    writer = BronzeWriter(wh, adapter, skip_probe_when_newer=True)
    assert writer.write(rows[:10], source="ws") == 10 and len(probes) == 0   # empty table: newer
    assert writer.write(rows[10:20], source="ws") == 10 and len(probes) == 0
    assert writer.write(rows[5:25], source="ws") == 5 and len(probes) == 1   # reaches back: probed
    assert writer.write(rows[25:] + rows[25:27], source="ws") == 5 and len(probes) == 1  # repeats
    # the same millisecond as the newest stored trade, which this writer wrote: decided from the
    # keys it stored at that millisecond, without a probe -- a new key is written, a stored one not
    same_ms = [r for f in [mf.binance_trade("BTCUSDT", 31, "97031.31", "0.0031", 1784116800000 + 7919 * 30, False)]
               for r in session.parse(f, 1).rows]
    assert same_ms[0][6] == rows[29][6]  # trade_time_ms
    assert writer.write(same_ms, source="ws") == 1 and len(probes) == 1
    assert writer.write(same_ms + rows[29:], source="ws") == 0 and len(probes) == 1
    # a second writer (a restart) learns the newest stored times from silver, not the keys at the
    # newest one: those rows are probed (one row each time)
    again = BronzeWriter(wh, adapter, skip_probe_when_newer=True)
    assert again.write(rows[29:], source="ws") == 0 and len(probes) == 2
    assert again.write(same_ms, source="ws") == 0 and len(probes) == 3 and probes[-1] == 1
    assert k2db.count(wh, "silver_trades_v2") == 31
    assert_gold_matches(wh, ref.binance_trades([*binance_frames(range(1, 31)), *[mf.binance_trade(
        "BTCUSDT", 31, "97031.31", "0.0031", 1784116800000 + 7919 * 30, False)]]))


_SYMBOL_COUNTER = iter(range(10**6))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(st.integers(0, 23), max_size=12), min_size=1, max_size=6),
       restart_after=st.integers(0, 6))
def test_writer_writes_each_key_once_whatever_the_batches(clean_warehouse, batches, restart_after):
    """Batches drawn from 24 trades, three per millisecond: repeats inside a batch, overlaps with
    earlier batches, older replays, batches ending mid-millisecond, and a restart (a new writer
    that knows only what silver says). Bronze ends with each key once, and `write` counts it once."""
    from k2.warehouse.bronze import BronzeWriter

    wh, adapter = clean_warehouse, get_adapter("binance")
    symbol = f"P{next(_SYMBOL_COUNTER)}USDT"  # a fresh symbol per example: no clean-up between them
    session = adapter.session()
    pool = [session.parse(mf.binance_trade(symbol, i, "100.5", "0.25", 1784116800000 + i // 3, i % 2 == 0), 1).rows[0]
            for i in range(24)]
    writer = BronzeWriter(wh, adapter, skip_probe_when_newer=True)
    written, seen = 0, set()
    for n, batch in enumerate(batches):
        if n == restart_after:
            writer = BronzeWriter(wh, adapter, skip_probe_when_newer=True)
        written += writer.write([pool[i] for i in batch], source="ws")
        seen.update(batch)
    stored = wh.rows(f"SELECT trade_id FROM k2.bronze_trades_binance WHERE symbol = '{symbol}' ORDER BY trade_id")
    assert [int(r[0]) for r in stored] == sorted(seen)
    assert written == len(seen)


def test_bulk_trade_parse_equals_frame_by_frame_or_declines():
    """`parse_trade_frames` (k2 load's fast path) gives exactly `parse`'s rows, and declines
    (None) a run holding anything but valid plain trade frames, which then goes frame by frame."""
    adapter = get_adapter("binance")
    frames = [f if isinstance(f, bytes) else f.encode() for f in binance_frames(range(1, 51))]
    one_by_one = [r for f in frames for r in adapter.parse(f, 7).rows]
    assert adapter.parse_trade_frames(frames, 7) == one_by_one and len(one_by_one) == 50
    bad_price = frames[10].replace(b'"p":"', b'"p":"-')
    for odd in (b"", b'{"result":null,"id":1}', bad_price, frames[3][:-1], b'{"stream":"btcusdt@trade","data":' + frames[0] + b"}"):
        assert adapter.parse_trade_frames([*frames[:5], odd, *frames[5:]], 7) is None, odd
    combined = [b'{"stream":"btcusdt@trade","data":' + f + b"}" for f in frames]
    assert adapter.parse_trade_frames(combined, 7) == one_by_one
    assert adapter.parse_trade_frames([*combined[:3], frames[3]], 7) is None  # mixed forms: one by one
    assert adapter.parse_trade_frames([*combined[:3], b'{"stream":"btcusdt@trade","data":{"e":"aggTrade"}}'], 7) is None
    assert get_adapter("kraken").parse_trade_frames(frames, 7) is None  # no fast path: always declines


def test_a_redelivered_kafka_reject_is_kept_once(clean_warehouse):
    """Rejects read from Kafka carry their coordinates; a sink that died before committing reads
    them again, possibly in a differently cut batch (another token): still one row each."""
    from k2.rejects import Reject
    from k2.warehouse.bronze import write_rejects

    def reject(offset, raw):
        return Reject("binance", "ws", "truncated", raw, 1784116800000000, "", "market.crypto.rejects.raw", 0, offset)

    write_rejects(clean_warehouse, [reject(7, b'{"e":"tr'), reject(8, b"\xff")], token="first")
    write_rejects(clean_warehouse, [reject(8, b"\xff"), reject(9, b"[1,")], token="second")
    write_rejects(clean_warehouse, [Reject("binance", "file", "x", b"{", 1, "f:1"), Reject("binance", "file", "x", b"{", 1, "f:1")])
    got = clean_warehouse.rows("SELECT kafka_offset, count() FROM k2.rejects GROUP BY kafka_offset ORDER BY kafka_offset")
    assert [(int(o), int(n)) for o, n in got] == [(-1, 2), (7, 1), (8, 1), (9, 1)]
