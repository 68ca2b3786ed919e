"""The exchange adapters' frame parsers: pure functions, no warehouse.

Every frame of the research samples and of our fixtures is classified; trades become bronze rows
holding the exchange's own values; anything malformed raises FrameError with a reason that says
what is wrong (it becomes the `reason` column of k2.rejects).
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures import make_frames as mf
from k2.errors import FrameError
from k2.exchanges import ADAPTERS, get_adapter
from k2.exchanges.base import FrameKind

BINANCE = ADAPTERS["binance"]
KRAKEN = ADAPTERS["kraken"]
RECEIVED = 1_784_116_899_000_000


def outcome(parse) -> tuple:
    """What a parse gives: (kind, rows), or ("error", the reason)."""
    try:
        parsed = parse()
        return parsed.kind, parsed.rows
    except FrameError as exc:
        return "error", str(exc)


def fast_and_general_agree(adapter, frame: bytes) -> bool:
    """A bytes frame may take the adapter's fast path; the same frame as str takes the general one."""
    return outcome(lambda: adapter.parse(frame, 5)) == outcome(lambda: adapter.parse(frame.decode(), 5))


def test_committed_fixtures_match_their_generator(fixtures_dir):
    """tests/fixtures/*.jsonl are written by make_frames.py; keep them in step."""
    for name, frames in mf.FIXTURES.items():
        assert (fixtures_dir / name).read_bytes() == b"".join(f + b"\n" for f in frames), name


def lines(path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.strip()]


def as_dict(adapter, row: tuple) -> dict:
    return dict(zip(adapter.columns, row))


# -- the research samples -----------------------------------------------------------------------
SAMPLE_KINDS = {
    "binance.jsonl": ("binance", [
        FrameKind.SUBSCRIBED, FrameKind.TRADES, FrameKind.OTHER, FrameKind.TRADES, FrameKind.TRADES,
        FrameKind.OTHER, FrameKind.OTHER, FrameKind.SHUTDOWN]),
    "binance_combined.jsonl": ("binance", [
        FrameKind.TRADES, FrameKind.TRADES, FrameKind.TRADES, FrameKind.SHUTDOWN]),
    "kraken_v1.jsonl": ("kraken", [
        FrameKind.STATUS, FrameKind.SUBSCRIBED, FrameKind.SUBSCRIBED, FrameKind.HEARTBEAT, FrameKind.TRADES,
        FrameKind.HEARTBEAT, FrameKind.TRADES, FrameKind.PONG, FrameKind.HEARTBEAT]),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_KINDS))
def test_every_sample_line_parses_to_its_kind(samples_dir, name):
    exchange, kinds = SAMPLE_KINDS[name]
    frames = lines(samples_dir / name)
    assert [get_adapter(exchange).parse(f, RECEIVED).kind for f in frames] == kinds


def test_sample_trades_become_rows_with_native_values(samples_dir):
    rows = [r for f in lines(samples_dir / "binance.jsonl") for r in BINANCE.parse(f, RECEIVED).rows]
    assert [as_dict(BINANCE, r) for r in rows][0] == {
        "event_type": "trade", "event_time_ms": 1784116800123, "symbol": "BTCUSDT", "trade_id": 5123456789,
        "price": "97512.34000000", "quantity": "0.00120000", "trade_time_ms": 1784116800122,
        "is_buyer_maker": True, "is_best_match": True, "received_at": RECEIVED}
    assert [r[3] for r in rows] == [5123456789, 5123456790, 5123456791]

    krows = [r for f in lines(samples_dir / "kraken_v1.jsonl") for r in KRAKEN.parse(f, RECEIVED).rows]
    assert [as_dict(KRAKEN, r) for r in krows] == [
        {"channel_id": 119930881, "pair": "XBT/USD", "price": "97512.30000", "volume": "0.00150000",
         "timestamp": "1784116800.412345", "side": "b", "order_type": "m", "misc": "", "occurrence": 0,
         "received_at": RECEIVED},
        {"channel_id": 119930881, "pair": "XBT/USD", "price": "97512.40000", "volume": "0.01000000",
         "timestamp": "1784116800.412398", "side": "b", "order_type": "m", "misc": "", "occurrence": 0,
         "received_at": RECEIVED},
        {"channel_id": 119930882, "pair": "XDG/USD", "price": "0.1823410", "volume": "5000.00000000",
         "timestamp": "1784116801.903311", "side": "s", "order_type": "l", "misc": "", "occurrence": 0,
         "received_at": RECEIVED},
    ]


def test_rows_match_the_bronze_column_layout():
    for adapter in ADAPTERS.values():
        assert len(adapter.columns) == len(adapter.column_types)
        assert adapter.columns[-1] == "received_at"
        assert set(adapter.key_columns) <= set(adapter.columns)


# -- Binance raw vs combined stream -------------------------------------------------------------
def test_binance_raw_and_combined_trades_give_identical_rows(samples_dir, fixtures_dir):
    raw = [r for f in lines(fixtures_dir / "binance_session.jsonl") for r in BINANCE.parse(f, RECEIVED).rows]
    combined = [r for f in lines(fixtures_dir / "binance_combined_session.jsonl")
                for r in BINANCE.parse(f, RECEIVED).rows]
    assert len(raw) == len(mf.BINANCE_SESSION_TRADES) == 9
    assert raw == combined
    # and for the research samples: each combined frame equals its unwrapped data object
    for frame in lines(samples_dir / "binance_combined.jsonl"):
        data = frame[frame.index(b'"data":') + len(b'"data":'):-1]
        assert BINANCE.parse(frame, RECEIVED) == BINANCE.parse(data, RECEIVED)


def test_binance_combined_envelope_in_any_key_order():
    trade = mf.BINANCE_SESSION_TRADES[0]
    reordered = b'{"data":' + trade + b',"stream":"btcusdt@trade"}'
    assert BINANCE.parse(reordered, RECEIVED).rows == BINANCE.parse(trade, RECEIVED).rows


def test_binance_side_field_is_kept_as_sent():
    sell = BINANCE.parse(mf.binance_trade("BTCUSDT", 1, "1.0", "1.0", 1784116800000, m=True), RECEIVED).rows[0]
    buy = BINANCE.parse(mf.binance_trade("BTCUSDT", 2, "1.0", "1.0", 1784116800000, m=False), RECEIVED).rows[0]
    assert as_dict(BINANCE, sell)["is_buyer_maker"] is True
    assert as_dict(BINANCE, buy)["is_buyer_maker"] is False


def test_str_and_bytes_frames_parse_alike():
    frame = mf.BINANCE_SESSION_TRADES[0]
    assert BINANCE.parse(frame.decode(), RECEIVED) == BINANCE.parse(frame, RECEIVED)
    kframe = mf.KRAKEN_SESSION[8]
    assert KRAKEN.parse(kframe.decode(), RECEIVED) == KRAKEN.parse(kframe, RECEIVED)


# -- Binance control frames ---------------------------------------------------------------------
def test_binance_control_frames():
    ack = BINANCE.parse(mf.binance_ack(7), RECEIVED)
    assert ack.kind is FrameKind.SUBSCRIBED and "7" in ack.detail and ack.rows == []

    err = BINANCE.parse(mf.binance_error(2, "Invalid request: unknown property", 3), RECEIVED)
    assert err.kind is FrameKind.EXCHANGE_ERROR
    assert "2" in err.detail and "Invalid request: unknown property" in err.detail

    assert BINANCE.parse(mf.BINANCE_SHUTDOWN, RECEIVED).kind is FrameKind.SHUTDOWN
    assert BINANCE.parse(mf.binance_combined(mf.BINANCE_SHUTDOWN), RECEIVED).kind is FrameKind.SHUTDOWN

    agg = BINANCE.parse(mf.binance_agg_trade("BTCUSDT", 1, "1.0", "1.0", 5, 5, 1784116800000, True), RECEIVED)
    assert agg.kind is FrameKind.OTHER and agg.rows == []
    wrapped = mf.binance_combined(mf.binance_agg_trade("BTCUSDT", 1, "1.0", "1.0", 5, 5, 1784116800000, True))
    assert BINANCE.parse(wrapped, RECEIVED).kind is FrameKind.OTHER


# -- Kraken ------------------------------------------------------------------------------------
def test_kraken_multi_trade_frame_gives_one_row_per_trade():
    trades = [mf.KTrade(f"97512.{i}0000", "0.10000000", f"1784116800.41234{i}", "bs"[i % 2], "lm"[i % 2])
              for i in range(5)]
    parsed = KRAKEN.parse(mf.kraken_trades(42, "XBT/USD", trades), RECEIVED)
    assert parsed.kind is FrameKind.TRADES
    assert [(r[2], r[4], r[5], r[6], r[8]) for r in parsed.rows] == [
        (t.price, t.time, t.side, t.order_type, 0) for t in trades]
    assert {r[0] for r in parsed.rows} == {42} and {r[1] for r in parsed.rows} == {"XBT/USD"}


def test_kraken_identical_trades_in_one_frame_are_numbered():
    same = mf.KTrade("97510.00000", "0.50000000", "1784116805.000001", "s", "l")
    other = mf.KTrade("97511.00000", "0.50000000", "1784116805.000001", "s", "l")
    parsed = KRAKEN.parse(mf.kraken_trades(1, "XBT/USD", [same, other, same, same, other]), RECEIVED)
    assert [(r[2], r[8]) for r in parsed.rows] == [
        ("97510.00000", 0), ("97511.00000", 0), ("97510.00000", 1), ("97510.00000", 2), ("97511.00000", 1)]
    # the same trade in a later frame starts again at 0: it is a replay of the first, not a new trade
    again = KRAKEN.parse(mf.kraken_trades(1, "XBT/USD", [same]), RECEIVED)
    assert again.rows[0][8] == 0


def test_kraken_control_frames():
    assert KRAKEN.parse(mf.KRAKEN_HEARTBEAT, RECEIVED).kind is FrameKind.HEARTBEAT
    assert KRAKEN.parse(mf.KRAKEN_PONG, RECEIVED).kind is FrameKind.PONG
    status = KRAKEN.parse(mf.KRAKEN_SYSTEM_STATUS, RECEIVED)  # connectionID beyond 64 bits
    assert status.kind is FrameKind.STATUS and "online" in status.detail
    sub = KRAKEN.parse(mf.kraken_subscribed(119930881, "XBT/USD"), RECEIVED)
    assert sub.kind is FrameKind.SUBSCRIBED and sub.symbol == "XBT/USD"
    other_channel = b'[1,[["97512.30000","0.00150000","1784116800.412345","b","m",""]],"book-10","XBT/USD"]'
    assert KRAKEN.parse(other_channel, RECEIVED).kind is FrameKind.OTHER


def test_kraken_subscription_error_names_pair_and_message():
    parsed = KRAKEN.parse(mf.kraken_subscribe_error("XBT/USDX", "Currency pair not supported XBT/USDX"), RECEIVED)
    assert parsed.kind is FrameKind.SUBSCRIBE_ERROR
    assert parsed.symbol == "XBT/USDX"
    assert parsed.detail == "Currency pair not supported XBT/USDX"


def test_fixture_sessions_classify(fixtures_dir):
    kinds = [KRAKEN.parse(f, RECEIVED).kind for f in lines(fixtures_dir / "kraken_session.jsonl")]
    assert kinds.count(FrameKind.TRADES) == 8
    assert kinds.count(FrameKind.SUBSCRIBE_ERROR) == 1
    assert kinds.count(FrameKind.SUBSCRIBED) == 5
    bkinds = [BINANCE.parse(f, RECEIVED).kind for f in lines(fixtures_dir / "binance_session.jsonl")]
    assert bkinds.count(FrameKind.TRADES) == 9
    assert bkinds.count(FrameKind.EXCHANGE_ERROR) == 1 and bkinds.count(FrameKind.OTHER) == 1


# -- malformed frames ---------------------------------------------------------------------------
@pytest.mark.parametrize("frame, reason", mf.BINANCE_BAD, ids=[f"binance-{i}" for i in range(len(mf.BINANCE_BAD))])
def test_malformed_binance_frame_raises_frame_error(frame, reason):
    with pytest.raises(FrameError) as err:
        BINANCE.parse(frame, RECEIVED)
    assert reason in str(err.value)
    assert 0 < len(str(err.value)) <= 400


@pytest.mark.parametrize("frame, reason", mf.KRAKEN_BAD, ids=[f"kraken-{i}" for i in range(len(mf.KRAKEN_BAD))])
def test_malformed_kraken_frame_raises_frame_error(frame, reason):
    with pytest.raises(FrameError) as err:
        KRAKEN.parse(frame, RECEIVED)
    assert reason in str(err.value)
    assert 0 < len(str(err.value)) <= 400


@pytest.mark.parametrize("field, value, reason", [
    ("p", '"abc"', "price is not a decimal string: 'abc'"),
    ("p", '"1e5"', "price is not a decimal string: '1e5'"),
    ("p", '"-1"', "price is not a decimal string: '-1'"),
    ("p", '" 1.0"', "price is not a decimal string"),
    ("p", '"1."', "price is not a decimal string"),
    ("p", '".5"', "price is not a decimal string"),
    ("p", '"１２"', "price is not a decimal string"),  # full-width digits: not ASCII
    ("q", '"NaN"', "quantity is not a decimal string: 'NaN'"),
    ("q", '"1,5"', "quantity is not a decimal string"),
    ("p", "97512.34", "Expected `str`, got `float`"),
    ("t", '"1"', "Expected `int`, got `str`"),
    ("m", '"true"', "Expected `bool`, got `str`"),
    ("T", "null", "Expected `int`, got `null`"),
])
def test_binance_wrong_values_name_the_field(field, value, reason):
    obj = json.loads(mf.BINANCE_SESSION_TRADES[0])
    text = json.dumps(obj, separators=(",", ":"))
    old = json.dumps({field: obj[field]}, separators=(",", ":"))[1:-1]
    frame = text.replace(old, f'"{field}":{value}', 1).encode()
    assert frame != mf.BINANCE_SESSION_TRADES[0]
    with pytest.raises(FrameError) as err:
        BINANCE.parse(frame, RECEIVED)
    assert reason in str(err.value)


@pytest.mark.parametrize("missing", ["e", "E", "s", "t", "p", "q", "T", "m"])
def test_binance_missing_field_is_named(missing):
    obj = json.loads(mf.BINANCE_SESSION_TRADES[0])
    del obj[missing]
    with pytest.raises(FrameError) as err:
        BINANCE.parse(json.dumps(obj, separators=(",", ":")).encode(), RECEIVED)
    expected = "not a Binance trade" if missing == "e" else f"`{missing}`"
    assert expected in str(err.value)


@pytest.mark.parametrize("bad, reason", [
    (["97512.3", "0.1", "1784116800", "b", "m", ""], "time is not a seconds.microseconds string"),
    (["97512.3", "0.1", "1784116800.12345678901", "b", "m", ""], "time is not"),
    (["97512.3", "0.1", "1784116800.412345", "buy", "m", ""], "side is not b or s"),
    (["97512.3", "0.1", "1784116800.412345", "b", "market", ""], "order type is not l or m"),
    (["97512.3", "0.1", "1784116800.412345", "b", "m", None], "misc is not a string"),
    (["97512.3", 0.1, "1784116800.412345", "b", "m", ""], "volume is not a decimal string"),
    (["", "0.1", "1784116800.412345", "b", "m", ""], "price is not a decimal string"),
])
def test_kraken_wrong_values_name_the_field(bad, reason):
    frame = json.dumps([1, [bad], "trade", "XBT/USD"], separators=(",", ":")).encode()
    with pytest.raises(FrameError) as err:
        KRAKEN.parse(frame, RECEIVED)
    assert reason in str(err.value)


def test_kraken_one_bad_trade_rejects_the_whole_frame():
    good = mf.KTrade("97512.30000", "0.00150000", "1784116800.412345", "b", "m")
    bad = mf.KTrade("97512.30000", "-0.1", "1784116800.412346", "b", "m")
    with pytest.raises(FrameError, match="volume is not a decimal string"):
        KRAKEN.parse(mf.kraken_trades(1, "XBT/USD", [good, bad]), RECEIVED)


@pytest.mark.parametrize("frame", [b"", b"   ", b"null", b"42", b'"trade"', b"[]", b"[1,2,3]", b"{}"])
def test_kraken_degenerate_frames(frame):
    with pytest.raises(FrameError):
        KRAKEN.parse(frame, RECEIVED)


@pytest.mark.parametrize("frame", [b"", b"null", b"42", b'"trade"', b"[]", b"{}", b'{"stream":"x"}'])
def test_binance_degenerate_frames(frame):
    with pytest.raises(FrameError):
        BINANCE.parse(frame, RECEIVED)


def test_huge_malformed_frames_give_short_reasons():
    big_price = "9" * 2_000_000
    frames = [
        (BINANCE, mf.binance_trade("BTCUSDT", 1, big_price, "1.0", 1784116800000, True)),
        (BINANCE, b'{"e":"trade","E":1,"s":"' + b"A" * 3_000_000),  # truncated after 3 MB
        (KRAKEN, mf.kraken_trades(1, "XBT/USD", [mf.KTrade(big_price, "1.0", "1784116800.000001", "b")])),
        (KRAKEN, b"[" * 100_000),  # deeply nested
        (BINANCE, b"[" * 100_000),
        (BINANCE, b'{"stream":"btcusdt@trade","data":' + b"[" * 100_000),
    ]
    for adapter, frame in frames:
        with pytest.raises(FrameError) as err:
            adapter.parse(frame, RECEIVED)
        assert 0 < len(str(err.value)) <= 400


def test_huge_valid_kraken_frame_gives_every_trade():
    trades = [mf.KTrade(f"{97000 + i}.10000", "0.00100000", mf.kraken_time(1784116800_000000 + i), "b")
              for i in range(20_000)]
    parsed = KRAKEN.parse(mf.kraken_trades(1, "XBT/USD", trades), RECEIVED)
    assert len(parsed.rows) == 20_000
    assert parsed.rows[-1][4] == "1784116800.019999"


def test_invalid_utf8_has_one_reason_whichever_decoder_finds_it():
    """msgspec 0.22 and 0.23 word invalid UTF-8 differently, and Python's codec differently again;
    the reject reason stays searchable as 'not valid utf-8 text'."""
    import msgspec

    from k2.exchanges.base import describe_decode_error

    errors = []
    for decode in (lambda b: b.decode("utf-8"), msgspec.json.decode):
        try:
            decode(b'"BTC-\xe2\x82"')
        except (UnicodeDecodeError, msgspec.DecodeError) as exc:
            errors.append(exc)
    assert len(errors) == 2
    for exc in errors:
        assert describe_decode_error(exc).startswith("malformed frame: not valid utf-8 text (")
    assert describe_decode_error(ValueError("unexpected end")) == "malformed frame: unexpected end"


_KRAKEN_VALUES = ["97512.30000", "0.00150000", "1784116800.412345", "b", "s", "l", "m", "", ".5", "5.", "1e5",
                  "-1", "12.34.5", "\uff11", "1784116800", "x", 5, 1.5, None, [], {},
                  # a batched frame's values are checked per column, joined by commas: a comma inside
                  # a value, or a value that is two, must not pass
                  "1,2", "97512.3,0", "1784116800.1,1784116800.2", ",", "1.,2", "0,.5",
                  "1784116800.4123456789", "1234567890123.5", "1" * 65, "0" * 64, "\u0663"]


def _kraken_trade():
    from hypothesis import strategies as st

    good = ["97512.30000", "0.00150000", "1784116800.412345", "b", "m", ""]
    return st.lists(st.sampled_from(_KRAKEN_VALUES), min_size=0, max_size=7).map(
        lambda vals: (vals + good[len(vals):]) if len(vals) < 6 and vals else vals or good)


def test_kraken_fast_trade_path_agrees_with_the_general_one():
    """Kraken trade frames go through a typed decoder first and fall back to the general parser
    when it declines; both must give the same rows, or the same reason, for any frame."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    adapter = get_adapter("kraken")

    @settings(max_examples=400, deadline=None)
    @given(channel=st.sampled_from([119930881, 0, -1, "7", 2**70]),
           trades=st.lists(_kraken_trade(), min_size=0, max_size=4),
           name=st.sampled_from(["trade", "trade", "book"]), pair=st.sampled_from(["XBT/USD", "XBTUSD", 7]))
    def check(channel, trades, name, pair):
        if len(trades) > 1 and trades[0] == trades[1]:
            trades = trades + [list(trades[0])]
        frame = json.dumps([channel, trades, name, pair]).encode()

        fast = outcome(lambda: adapter.parse(frame, 5))
        general = outcome(lambda: adapter._array(json.loads(frame), 5))
        assert fast == general, frame
        if fast[0] is FrameKind.TRADES:  # the key columns handed to the window are the rows' keys
            columns = adapter.parse(frame, 5).key_columns
            if columns is not None:
                assert adapter.trade_keys.of_columns(columns) == adapter.trade_keys.many(fast[1]), frame
                assert columns[adapter.trade_keys.order_column] == tuple(r[adapter.trade_order_index] for r in fast[1])

    check()


_BYBIT_VALUES = {
    "i": ["2290000000861234568", "", "x" * 64, "x" * 65, "\u00e9", 7, None],
    "T": [1784116800387, -1, "1784116800387", 1.5, True, None],
    "p": ["97512.4", "1,2", ".5", "5.", "1e5", "1" * 65, "\u0663", 97512.4],
    "v": ["0.04", "0,04", "12.34.5", "", "0" * 64],
    "S": ["Buy", "Sell", "buy", None],
    "s": ["BTCUSDT", "BTC,USDT", "btcusdt", "B", 7],
    "BT": [False, True, None, 0],
    "RPI": [False, True, None, 1],
    "seq": [79432105533, -1, None, "1", True],
}


def test_bybit_fast_trade_path_agrees_with_the_general_one():
    """Bybit trade messages (bytes starting with the topic) go through a typed decoder and column
    checks first, and fall back to the general parser when they decline; both must give the same
    rows, or the same reason, for any message. A str frame takes the general path only."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    adapter = get_adapter("bybit")
    good = {"i": "2290000000861234568", "T": 1784116800387, "p": "97512.4", "v": "0.04", "S": "Buy",
            "s": "BTCUSDT", "BT": False, "RPI": False, "seq": 79432105533}
    changes = st.sampled_from([(k, v) for k, vs in _BYBIT_VALUES.items() for v in vs])
    # a good trade, one with one or two values changed (each check must decline on its own), or junk
    trade = st.just(good) | st.lists(changes, min_size=1, max_size=2).map(lambda ch: {**good, **dict(ch)}) | \
        st.dictionaries(st.sampled_from(list(good)), st.sampled_from([1, "x"]), max_size=3)

    @settings(max_examples=400, deadline=None)
    @given(trades=st.lists(trade, min_size=0, max_size=4), ts=st.sampled_from([1784116800389, "1", None]),
           kind=st.sampled_from(["snapshot", 5, None]), topic=st.sampled_from(["publicTrade.BTCUSDT", "publicTrade."]))
    def check(trades, ts, kind, topic):
        msg = {"topic": topic, "ts": ts, "type": kind, "data": trades}
        if kind is None:
            del msg["type"]
        frame = json.dumps(msg, separators=(",", ":")).encode()
        assert frame.startswith(b'{"topic":"publicTrade.')

        assert fast_and_general_agree(adapter, frame), frame

    check()


_OKX_VALUES = {
    "instId": ["BTC-USDT", "btc-usdt", "BTCUSDT", "BTC-USDT,ETH-USDT", 7, None],
    "tradeId": ["1051102135", "", "1" * 21, "12a", "\u0663", 1051102135, None],
    "px": ["97512.4", "1,2", ".5", "5.", "1e5", "1" * 65, "\u0663", 97512.4],
    "sz": ["0.3", "0,3", "12.34.5", "", "0" * 64],
    "side": ["buy", "sell", "Buy", None],
    "ts": ["1784116800387", "1" * 17, "", "17841168003.87", 1784116800387],
    "count": ["3", "", "1" * 21, "x", 3, None],
    "source": ["0", "", "s" * 20, "s" * 21, 0, None],
    "seqId": [80559459961, -1, None, "1", True],
}


def test_okx_fast_trade_path_agrees_with_the_general_one():
    """OKX trades pushes (bytes starting with `{"arg":`) go through a typed decoder and column
    checks first, and fall back to the general parser when they decline; both must give the same
    rows, or the same reason, for any push. A str frame takes the general path only."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    adapter = get_adapter("okx")
    good = {"instId": "BTC-USDT", "tradeId": "1051102135", "px": "97512.4", "sz": "0.3", "side": "buy",
            "ts": "1784116800387", "count": "3", "source": "0", "seqId": 80559459961}
    changes = st.sampled_from([(k, v) for k, vs in _OKX_VALUES.items() for v in vs])
    # a good trade, one with one or two values changed (each check must decline on its own), or junk
    trade = st.just(good) | st.lists(changes, min_size=1, max_size=2).map(lambda ch: {**good, **dict(ch)}) | \
        st.dictionaries(st.sampled_from(list(good)), st.sampled_from([1, "x"]), max_size=3)

    @settings(max_examples=400, deadline=None)
    @given(trades=st.lists(trade, min_size=0, max_size=4), channel=st.sampled_from(["trades", "trades-all", "books", 5]),
           event=st.sampled_from([None, "absent", "subscribe"]), drop=st.sampled_from([(), ("count",), ("source", "seqId")]))
    def check(trades, channel, event, drop):
        msg = {"arg": {"channel": channel, "instId": "BTC-USDT"}, "data": [
            {k: v for k, v in t.items() if k not in drop} for t in trades]}
        if event != "absent":
            msg["event"] = event
        frame = json.dumps(msg, separators=(",", ":")).encode()

        assert fast_and_general_agree(adapter, frame), frame

    check()


_COINBASE_ADVANCED_VALUES = {
    "trade_id": ["871234568", "", "1" * 21, "12a", "\u0663", 871234568, None],
    "product_id": ["BTC-USD", "btc-usd", "BTCUSD", "BTC-USD,ETH-USD", 7, None],
    "price": ["97512.38", "1,2", ".5", "5.", "1e5", "1" * 65, 97512.38],
    "size": ["0.2", "0,2", "12.34.5", "", "0" * 64],
    "side": ["BUY", "SELL", "buy", None],
    "time": ["2026-07-15T12:00:01.101871Z", "2026-07-15T12:00:01Z", "2026-07-15T12:00:01.101871Z,2026",
             "2026-07-15 12:00:01Z", "2026-07-15T12:00:01.1234567890Z", "", 1784116800],
}


def test_coinbase_advanced_fast_trade_path_agrees_with_the_general_one():
    """Coinbase Advanced Trade market_trades messages (bytes starting with the channel) go through
    a typed decoder and column checks first, and fall back to the general parser when they
    decline; both must give the same rows, the same kind, or the same reason, for any message."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from k2.exchanges.coinbase_advanced import ADAPTER as adapter

    good = {"trade_id": "871234568", "product_id": "BTC-USD", "price": "97512.38", "size": "0.2", "side": "BUY",
            "time": "2026-07-15T12:00:01.101871Z"}
    changes = st.sampled_from([(k, v) for k, vs in _COINBASE_ADVANCED_VALUES.items() for v in vs])
    trade = st.just(good) | st.lists(changes, min_size=1, max_size=2).map(lambda ch: {**good, **dict(ch)}) | \
        st.dictionaries(st.sampled_from(list(good)), st.sampled_from([1, "x"]), max_size=3)
    event = st.fixed_dictionaries({"type": st.sampled_from(["update", "snapshot", "other", 1]),
                                   "trades": st.lists(trade, max_size=3)})

    @settings(max_examples=400, deadline=None)
    @given(events=st.lists(event, max_size=3), seq=st.sampled_from([4, 0, -1, "4", True]),
           stamp=st.sampled_from(["2026-07-15T12:00:01.250912003Z", None, "absent"]))
    def check(events, seq, stamp):
        msg = {"channel": "market_trades", "client_id": "", "timestamp": stamp, "sequence_num": seq, "events": events}
        if stamp == "absent":
            del msg["timestamp"]
        frame = json.dumps(msg, separators=(",", ":")).encode()

        assert fast_and_general_agree(adapter, frame), frame

    check()


_DECIMAL_CHARS = st.sampled_from(["0", "1", "9", ".", ",", "", " ", "e", "-", "+", "\u0661", "\u00b2", "٫", "\x00"])


@given(st.lists(st.one_of(st.lists(_DECIMAL_CHARS, max_size=8).map("".join),
                          st.lists(st.sampled_from(["1", "0", "."]), max_size=6).map("".join),
                          st.from_regex(r"[0-9]{1,40}(\.[0-9]{1,40})?", fullmatch=True),
                          st.text(max_size=6)), max_size=12))
@settings(max_examples=3000, deadline=None)
def test_decimal_column_accepts_only_valid_columns(values):
    """The batched frames' column check (byte operations, not a regex) says yes only when every
    value is a decimal string by the value-by-value rule, and yes to every such column whose digit
    runs are shorter than 32 (a longer run may take the general path: it checks value by value)."""
    from hypothesis import note

    from k2.exchanges.base import decimal_column, is_decimal_string

    valid = bool(values) and all(is_decimal_string(v) for v in values)
    note(repr(values))
    if decimal_column(values):
        assert valid
    elif valid:
        assert any(len(run) >= 32 for v in values for run in v.split(".")), values


def test_decimal_column_edges():
    from k2.exchanges.base import decimal_column

    assert decimal_column(["97512.34000000", "0.00012", "5"])
    for bad in ([], [""], ["1."], [".5"], ["1..2"], ["1.2.3"], ["1,2"], ["\u0661"], ["1", ""], ["-1"], ["1e5"],
                ["1", "2.", "3"], ["1", ".2", "3"], ["1" * 65], [" 1"]):
        assert not decimal_column(bad), bad
    assert decimal_column(["1" * 31 + "." + "2" * 31])  # 63 characters, runs of 31


_GEMINI_VALUES = {
    "type": ["trade", "Trade", "l2_updates", 5],
    "symbol": ["BTCUSD", "btcusd", "BTC", "BTC-USD", "B" * 25, 7, None],
    "event_id": [5301926874, 0, -1, 1.5, True, "5", None],
    "timestamp": [1784116800387, -5, 1.5, "1784116800387", None],
    "price": ["97512.34", ".5", "5.", "1e5", "1,2", "1" * 65, "\u0663", 97512.34, None],
    "quantity": ["0.00031", "", "0..1", "0" * 64],
    "side": ["buy", "sell", "Buy", "", None],
    "tid": [5301926875, 0, -3, "1", None, True],
}


def test_gemini_fast_trade_path_agrees_with_the_general_one():
    """A Gemini trade message (bytes starting `{"type":"trade"`) goes through a typed decoder
    first and falls back to the general parser when it declines; both must give the same rows, or
    the same reason, for any message (a missing tid, an id of another type, each bad value). A str
    frame takes the general path only."""
    adapter = get_adapter("gemini")
    good = {"type": "trade", "symbol": "BTCUSD", "event_id": 5301926874, "timestamp": 1784116800387,
            "price": "97512.34", "quantity": "0.00031", "side": "buy", "tid": 5301926875}
    changes = st.sampled_from([(k, v) for k, vs in _GEMINI_VALUES.items() for v in vs])

    @settings(max_examples=500, deadline=None)
    @given(ch=st.lists(changes, max_size=2), drop=st.sets(st.sampled_from(list(good)[1:]), max_size=2),
           extra=st.booleans())
    def check(ch, drop, extra):
        msg = {**good, **dict(ch)}
        for k in drop:
            msg.pop(k, None)
        if extra:
            msg["extra"] = [1, {"a": None}]
        frame = json.dumps(msg, separators=(",", ":")).encode()

        assert fast_and_general_agree(adapter, frame), frame

    check()
    row = adapter.parse(json.dumps(good, separators=(",", ":")).encode(), 5).rows[0]
    assert row == ("BTCUSD", 5301926874, 1784116800387, "97512.34", "0.00031", "buy", 5301926875, False, "tid", 5)
