"""Coinbase (Exchange feed and Advanced Trade), Bybit, OKX, Bitfinex and Gemini: parsers, REST and
instrument parsing, the SQL normalization into silver and gold, `k2 validate`, and the rule that
every registered exchange comes with an adapter, bronze and silver SQL, a simulator venue and
fixtures.

Fixtures and the independent reference model are in fixtures/venues.py (`python
tests/fixtures/venues.py` rewrites the committed *.jsonl).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from fixtures import k2db
from fixtures import make_frames as mf
from fixtures import reference as ref
from fixtures import venues as v
from k2.errors import FrameError
from k2.exchanges import ADAPTERS, ALL_ADAPTERS, API_VARIANTS, get_adapter
from k2.exchanges.base import ExchangeAdapter, FrameKind, Instrument

RECEIVED = 1_784_116_899_000_000
COINBASE, ADVANCED = get_adapter("coinbase"), get_adapter("coinbase", "advanced")
BYBIT, OKX, BITFINEX, GEMINI = (get_adapter(n) for n in ("bybit", "okx", "bitfinex", "gemini"))
NEW = {"coinbase": COINBASE, "coinbase_advanced": ADVANCED, "bybit": BYBIT, "okx": OKX, "bitfinex": BITFINEX,
       "gemini": GEMINI}
SQL = Path(__file__).resolve().parent.parent / "src" / "k2" / "warehouse" / "sql"


def adapter_of(name: str):
    return get_adapter(*v.ADAPTER_OF[name])


def lines(path: Path) -> list[bytes]:
    return [ln for ln in path.read_bytes().splitlines() if ln.strip()]


def rows_of(adapter, frames) -> list[dict]:
    parser = adapter.session()
    return [dict(zip(adapter.columns, r)) for f in frames for r in parser.parse(f, RECEIVED).rows]


# -- fixtures ------------------------------------------------------------------------------------
def test_committed_fixtures_match_their_generator(fixtures_dir):
    for name, frames in v.FIXTURES.items():
        assert (fixtures_dir / name).read_bytes() == b"".join(f + b"\n" for f in frames), name


# -- the research samples --------------------------------------------------------------------------
T, H, S, P, O, E, ST = (FrameKind.TRADES, FrameKind.HEARTBEAT, FrameKind.SUBSCRIBED, FrameKind.PONG, FrameKind.OTHER,
                        FrameKind.SUBSCRIBE_ERROR, FrameKind.STATUS)
SAMPLE_KINDS = {
    "coinbase_exchange.jsonl": ("coinbase", [S, T, H, T, T, H]),
    "coinbase_advanced.jsonl": ("coinbase_advanced", [S, T, S, H, T, H]),
    "bybit.jsonl": ("bybit", [S, T, T, P]),
    "okx.jsonl": ("okx", [S, T, T]),
    "bitfinex.jsonl": ("bitfinex", [ST, S, T, T, O, T, O, P, H]),
    "gemini.jsonl": ("gemini", [T, H, T, O, H]),
}


@pytest.mark.parametrize("name", sorted(SAMPLE_KINDS))
def test_every_sample_line_parses_to_its_kind(samples_dir, name):
    fixture, kinds = SAMPLE_KINDS[name]
    parser = adapter_of(fixture).session()
    assert [parser.parse(f, RECEIVED).kind for f in lines(samples_dir / name)] == kinds


def test_sample_trades_become_rows_with_native_values(samples_dir):
    cb = rows_of(COINBASE, lines(samples_dir / "coinbase_exchange.jsonl"))
    assert cb[1] == {"type": "match", "trade_id": 871234568, "maker_order_id": "3d2c1b0a-9f8e-4d7c-a6b5-4e3d2c1b0a9f",
                     "taker_order_id": "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d", "side": "sell", "size": "0.2",
                     "price": "97512.38", "product_id": "BTC-USD", "sequence": 112233445622,
                     "time": "2026-07-15T12:00:01.101871Z", "received_at": RECEIVED}
    assert [r["type"] for r in cb] == ["last_match", "match", "match"]
    adv = rows_of(ADVANCED, lines(samples_dir / "coinbase_advanced.jsonl"))
    assert adv[2] == {"product_id": "BTC-USD", "trade_id": "871234568", "price": "97512.38", "size": "0.2",
                      "side": "BUY", "time": "2026-07-15T12:00:01.101871Z", "event_type": "update", "sequence_num": 4,
                      "envelope_timestamp": "2026-07-15T12:00:01.250912003Z", "received_at": RECEIVED}
    assert [r["event_type"] for r in adv] == ["snapshot", "snapshot", "update", "update"]
    by = rows_of(BYBIT, lines(samples_dir / "bybit.jsonl"))
    assert by[0] == {"topic": "publicTrade.BTCUSDT", "message_type": "snapshot", "message_ts_ms": 1784116800124,
                     "exec_id": "2290000000861234567", "trade_time_ms": 1784116800122, "price": "97512.3",
                     "size": "0.001201", "side": "Sell", "symbol": "BTCUSDT", "is_block_trade": False, "is_rpi": False,
                     "seq": 79432105521, "received_at": RECEIVED}
    okx = rows_of(OKX, lines(samples_dir / "okx.jsonl"))
    assert okx[1] == {"channel": "trades", "inst_id": "BTC-USDT", "trade_id": "1051102135", "px": "97512.4", "sz": "0.3",
                      "side": "buy", "ts": "1784116800387", "count": "3", "trade_source": "0", "seq_id": 80559459961,
                      "received_at": RECEIVED}
    bfx = rows_of(BITFINEX, lines(samples_dir / "bitfinex.jsonl"))
    assert [(r["msg_type"], r["id"], r["amount"], r["price"]) for r in bfx] == [
        ("snapshot", 1773456791, "0.0021", "97512"), ("snapshot", 1773456790, "0.0104", "97511"),
        ("snapshot", 1773456788, "-0.05", "97505"), ("te", 1773456795, "-0.0012", "97508"),
        ("te", 1773456796, "0.04", "97512")]  # tu repeats are not trades
    assert bfx[3] == {"chan_id": 17470, "symbol": "tBTCUSD", "msg_type": "te", "id": 1773456795, "mts": 1784116800122,
                      "amount": "-0.0012", "price": "97508", "received_at": RECEIVED}
    gem = rows_of(GEMINI, lines(samples_dir / "gemini.jsonl"))
    assert gem[2] == {"symbol": "BTCUSD", "event_id": 291838476011, "timestamp": 1784116800122, "price": "97512.40",
                      "quantity": "0.04", "side": "buy", "tid": 2840140800042679, "is_snapshot": False,
                      "id_field": "tid", "received_at": RECEIVED}
    assert [r["is_snapshot"] for r in gem] == [True, True, False]


def test_rows_match_the_bronze_column_layout():
    for adapter in ALL_ADAPTERS:
        assert len(adapter.columns) == len(adapter.column_types)
        assert adapter.columns[-1] == "received_at"
        assert set(adapter.key_columns) <= set(adapter.columns)
        reserved = {"ingested_at", "source", "batch_id", "kafka_partition", "kafka_offset"}
        assert not reserved & set(adapter.columns), adapter.bronze_table  # K2's own bronze columns


def test_str_and_bytes_frames_parse_alike():
    for name, frames in v.SESSIONS.items():
        a, b = adapter_of(name).session(), adapter_of(name).session()
        for f in frames:
            assert a.parse(f, RECEIVED) == b.parse(f.decode(), RECEIVED), (name, f)


# -- control frames --------------------------------------------------------------------------------
def test_control_frames_name_the_symbol_and_reason():
    err = COINBASE.parse(v.CB_ERROR, 0)
    assert (err.kind, err.symbol) == (FrameKind.SUBSCRIBE_ERROR, "BTC-USDX") and "not a valid product" in err.detail
    fail = BYBIT.parse(v.BYBIT_FAILURE, 0)
    assert (fail.kind, fail.symbol) == (FrameKind.SUBSCRIBE_ERROR, "FOOUSDT")
    assert BYBIT.parse(v.BYBIT_ACK, 0).detail == "id=1"  # the runtime maps the request id to its symbols
    oerr = OKX.parse(v.OKX_ERROR, 0)
    assert (oerr.kind, oerr.symbol) == (FrameKind.SUBSCRIBE_ERROR, "FOO-USDT") and "60018" in oerr.detail
    assert OKX.parse(b"pong", 0).kind is FrameKind.PONG and OKX.parse("pong", 0).kind is FrameKind.PONG
    assert OKX.parse(b'{"event":"notice","code":"64008","msg":"service upgrade"}', 0).kind is FrameKind.SHUTDOWN
    berr = BITFINEX.parse(b'{"event":"error","msg":"symbol: invalid","code":10300,"channel":"trades","symbol":"tFOOUSD"}', 0)
    assert (berr.kind, berr.symbol) == (FrameKind.SUBSCRIBE_ERROR, "tFOOUSD")
    assert BITFINEX.parse(b'{"event":"info","code":20051,"msg":"Stopping. Please try to reconnect"}', 0).kind \
        is FrameKind.SHUTDOWN
    assert BITFINEX.parse(b'{"event":"info","code":20060,"msg":"maintenance"}', 0).kind is FrameKind.STATUS
    gerr = GEMINI.parse(v.GEMINI_SESSION[2], 0)
    assert (gerr.kind, gerr.symbol) == (FrameKind.SUBSCRIBE_ERROR, "FOOUSD")
    first = GEMINI.parse(v.GEMINI_SESSION[1], 0)  # a symbol's first l2_updates without trades: subscribed
    assert (first.kind, first.symbol) == (FrameKind.SUBSCRIBED, "ETHBTC")


def test_fixture_sessions_classify():
    kinds = {}
    for name, frames in v.SESSIONS.items():
        parser = adapter_of(name).session()
        kinds[name] = [parser.parse(f, RECEIVED).kind for f in frames]
    assert kinds["coinbase"].count(T) == 7 and kinds["coinbase"].count(E) == 1
    assert kinds["coinbase_advanced"].count(H) == 2
    assert kinds["bybit"].count(T) == 5 and kinds["bybit"].count(P) == 1
    assert kinds["okx"].count(T) == 5 and kinds["okx"].count(S) == 2
    assert kinds["bitfinex"].count(T) == 8 and kinds["bitfinex"].count(O) == 3  # an empty snapshot, two tu
    assert kinds["gemini"].count(T) == 5 and kinds["gemini"].count(H) == 2


# -- Bitfinex: channel ids belong to a connection ---------------------------------------------------
def test_bitfinex_channel_ids_are_per_connection():
    a, b = BITFINEX.session(), BITFINEX.session()
    assert a is not b and a.session() is not a
    a.parse(v.bfx_subscribed(5, "tBTCUSD"), 0)
    b.parse(v.bfx_subscribed(5, "tETHUSD"), 0)  # the same number on another connection
    trade = v.bfx_te(5, "[1,1784116800000,0.5,100]")
    assert a.parse(trade, 0).rows[0][1] == "tBTCUSD"
    assert b.parse(trade, 0).rows[0][1] == "tETHUSD"
    with pytest.raises(FrameError, match="no `subscribed` event"):
        BITFINEX.session().parse(trade, 0)  # a fresh connection knows no channel
    a.parse(b'{"event":"unsubscribed","status":"OK","chanId":5}', 0)
    with pytest.raises(FrameError):
        a.parse(trade, 0)
    assert a.parse(b'[5,"hb"]', 0).kind is FrameKind.HEARTBEAT  # heartbeats need no symbol


def test_bitfinex_numbers_keep_their_text_and_strings_are_not_numbers():
    p = BITFINEX.session()
    p.parse(v.bfx_subscribed(1, "tDOGE:USD"), 0)
    rows = p.parse(b'[1,[[10,1784116800000,1e-8,0.00001234],[11,1784116800001,-12345.678901234,2E+2]]]', 0).rows
    assert [(r[5], r[6]) for r in rows] == [("1e-8", "0.00001234"), ("-12345.678901234", "2E+2")]
    with pytest.raises(FrameError, match="AMOUNT is not a JSON number"):
        p.parse(b'[1,"te",[12,1784116800000,"0.5",100]]', 0)


# -- malformed frames ------------------------------------------------------------------------------
BAD_CASES = [(name, frame, why) for name, cases in v.BAD.items() for frame, why in cases]


@pytest.mark.parametrize("name, frame, reason", BAD_CASES,
                         ids=[f"{n}-{i}" for n, cases in v.BAD.items() for i in range(len(cases))])
def test_malformed_frame_raises_frame_error(name, frame, reason):
    parser = adapter_of(name).session()
    if name == "bitfinex":
        parser.parse(v.bfx_subscribed(v.BFX_BTCUSD, "tBTCUSD"), 0)
    with pytest.raises(FrameError) as err:
        parser.parse(frame, RECEIVED)
    assert reason in str(err.value)
    assert 0 < len(str(err.value)) <= 400


@pytest.mark.parametrize("name", sorted(NEW))
def test_degenerate_frames(name):
    parser = NEW[name].session()
    for frame in (b"", b"null", b"0", b'"x"', b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 5000, b"\xff\xfe"):
        with pytest.raises(FrameError):
            parser.parse(frame, RECEIVED)


@pytest.mark.parametrize("name", sorted(NEW))
def test_every_kind_of_simulated_fault_is_rejected(name):
    """The simulator's malformed-frame fault, applied to each venue's trade frame."""
    import random

    from k2.simulator.faults import MALFORMED_KINDS, malformed

    good = v._GOOD[name]
    rng = random.Random(name)
    for kind in MALFORMED_KINDS:
        for _ in range(20):
            parser = NEW[name].session()
            if name == "bitfinex":
                parser.parse(v.bfx_subscribed(v.BFX_BTCUSD, "tBTCUSD"), 0)
            bad = malformed(good, rng, kind)
            with pytest.raises(FrameError):
                parser.parse(bad, 0)


# -- symbols ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("adapter, user, native, canonical", [
    (COINBASE, "BTC/USD", "BTC-USD", "BTC/USD"), (COINBASE, "btc-usdt", "BTC-USDT", "BTC/USDT"),
    (ADVANCED, "ETH/USDC", "ETH-USDC", "ETH/USDC"),
    (BYBIT, "BTC/USDT", "BTCUSDT", "BTC/USDT"), (BYBIT, "ethbtc", "ETHBTC", "ETH/BTC"),
    (OKX, "BTC/USDT", "BTC-USDT", "BTC/USDT"), (OKX, "eth-btc", "ETH-BTC", "ETH/BTC"),
    (BITFINEX, "BTC/USD", "tBTCUSD", "BTC/USD"), (BITFINEX, "BTC/USDT", "tBTCUST", "BTC/USDT"),
    (BITFINEX, "DOGE/USD", "tDOGE:USD", "DOGE/USD"), (BITFINEX, "BTCUSD", "tBTCUSD", "BTC/USD"),
    (BITFINEX, "tTESTBTC:TESTUSD", "tTESTBTC:TESTUSD", "TESTBTC/TESTUSD"),
    (GEMINI, "BTC/USD", "BTCUSD", "BTC/USD"), (GEMINI, "btcgusd", "BTCGUSD", "BTC/GUSD"),
])
def test_symbols_native_and_canonical(adapter, user, native, canonical):
    assert adapter.native_symbol(user) == native
    assert adapter.canonical_symbol(native) == canonical


def test_bad_symbols_are_value_errors():
    for adapter, symbol in ((COINBASE, "BTCUSD"), (OKX, "BTC"), (BITFINEX, "tBTCUSDTX"), (BYBIT, "BTC USDT")):
        with pytest.raises(ValueError):
            adapter.native_symbol(symbol)


def test_fallback_instruments_agree_with_the_symbol_rules():
    for adapter in ALL_ADAPTERS:
        if adapter.name in ("binance", "kraken"):
            continue
        for inst in adapter.fallback_instruments:
            assert adapter.native_symbol(inst.canonical_symbol) == inst.native_symbol, inst
            assert adapter.canonical_symbol(inst.native_symbol) == inst.canonical_symbol, inst


# -- instruments and REST ---------------------------------------------------------------------------
def test_instrument_lists_parse():
    assert COINBASE.parse_instruments(json.dumps([
        {"id": "BTC-USD", "base_currency": "BTC", "quote_currency": "USD", "status": "online"},
        {"id": "BTC-USDT", "base_currency": "BTC", "quote_currency": "USDT"}]).encode()) == [
        Instrument("BTC-USD", "BTC", "USD"), Instrument("BTC-USDT", "BTC", "USDT")]
    assert ADVANCED.parse_instruments(json.dumps({"products": [
        {"product_id": "BTC-USDC", "base_currency_id": "BTC", "quote_currency_id": "USDC",
         "quote_display_symbol": "USD"}]}).encode()) == [Instrument("BTC-USDC", "BTC", "USDC")]  # the TRUE quote
    assert BYBIT.parse_instruments(json.dumps({"retCode": 0, "result": {"category": "spot", "list": [
        {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT"}]}}).encode()) == [
        Instrument("BTCUSDT", "BTC", "USDT")]
    assert OKX.parse_instruments(json.dumps({"code": "0", "data": [
        {"instId": "ETH-BTC", "baseCcy": "ETH", "quoteCcy": "BTC"}]}).encode()) == [Instrument("ETH-BTC", "ETH", "BTC")]
    assert BITFINEX.parse_instruments(b'[["BTCUSD","BTCUST","DOGE:USD","TESTBTC:TESTUSD","XYZ"],'
                                      b'[["UST","USDt"],["TESTBTC","TESTBTC"]]]') == [
        Instrument("tBTCUSD", "BTC", "USD"), Instrument("tBTCUST", "BTC", "USDT"), Instrument("tDOGE:USD", "DOGE", "USD"),
        Instrument("tTESTBTC:TESTUSD", "TESTBTC", "TESTUSD")]
    assert BITFINEX.parse_instruments(b'[["BTCUSD"]]') == [Instrument("tBTCUSD", "BTC", "USD")]
    assert GEMINI.parse_instruments(b'["btcusd","btcgusd","ethbtc","usdtusd"]') == [
        Instrument("BTCUSD", "BTC", "USD"), Instrument("BTCGUSD", "BTC", "GUSD"), Instrument("ETHBTC", "ETH", "BTC"),
        Instrument("USDTUSD", "USDT", "USD")]


def test_rest_trades_parse_oldest_first_with_the_next_cursor():
    rows, nxt = COINBASE.parse_rest_trades(json.dumps([
        {"time": "2026-07-15T12:00:01.101871Z", "trade_id": 871234569, "price": "97512.40", "size": "0.0015",
         "side": "sell"},
        {"time": "2026-07-15T12:00:01.101871Z", "trade_id": 871234568, "price": "97512.38", "size": "0.2",
         "side": "sell"}]).encode(), "BTC-USD", RECEIVED)
    assert [r[1] for r in rows] == [871234568, 871234569] and nxt == 871234570
    assert rows[0] == ("", 871234568, "", "", "sell", "0.2", "97512.38", "BTC-USD", 0, "2026-07-15T12:00:01.101871Z",
                       RECEIVED)
    assert COINBASE.rest_trades_path("BTC-USD", 871234568) == "/products/BTC-USD/trades?limit=1000&after=871235568"
    assert COINBASE.row_time_us(rows[0]) == 1784116801101871
    assert COINBASE.sequential_id_index == 1 and COINBASE.can_backfill

    adv, nxt = ADVANCED.parse_rest_trades(json.dumps({"trades": [
        {"trade_id": "995098663", "product_id": "BTC-USD", "price": "68923.67", "size": "0.00064",
         "time": "2026-04-07T00:28:58.544778Z", "side": "SELL", "bid": "", "ask": "", "exchange": "coinbase"},
        {"trade_id": "995098662", "product_id": "BTC-USD", "price": "68923.67", "size": "0.00123858",
         "time": "2026-04-07T00:28:58.250358Z", "side": "SELL", "bid": "", "ask": "", "exchange": "coinbase"}],
        "best_bid": "68923.66", "best_ask": "68923.67"}).encode(), "BTC-USD", RECEIVED)
    assert [r[1] for r in adv] == ["995098662", "995098663"] and nxt is None and not ADVANCED.can_backfill

    by, nxt = BYBIT.parse_rest_trades(json.dumps({"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [
        {"execId": "2100000000007764263", "symbol": "BTCUSDT", "price": "16618.49", "size": "0.00012", "side": "Buy",
         "time": "1672052955758", "isBlockTrade": False}]}, "retExtInfo": {}, "time": 1672053054358}).encode(),
        "BTCUSDT", RECEIVED)
    assert by == [("", "", 1672053054358, "2100000000007764263", 1672052955758, "16618.49", "0.00012", "Buy", "BTCUSDT",
                   False, None, -1, RECEIVED)] and nxt is None
    with pytest.raises(FrameError):
        BYBIT.parse_rest_trades(b'{"retCode":10001,"retMsg":"params error"}', "BTCUSDT", RECEIVED)

    okx, nxt = OKX.parse_rest_trades(json.dumps({"code": "0", "msg": "", "data": [
        {"instId": "BTC-USDT", "side": "sell", "sz": "0.00013669", "px": "102537.9", "tradeId": "734864333",
         "ts": "1747087163557"},
        {"instId": "BTC-USDT", "side": "buy", "sz": "0.0000125", "px": "102537.9", "tradeId": "734864332",
         "ts": "1747087161666"}]}).encode(), "BTC-USDT", RECEIVED)
    assert [r[2] for r in okx] == ["734864332", "734864333"] and nxt == 1747087163557000
    assert okx[0] == ("", "BTC-USDT", "734864332", "102537.9", "0.0000125", "buy", "1747087161666", "", "", -1, RECEIVED)
    assert OKX.rest_trades_path("BTC-USDT", 1747087161666000).endswith("type=2&before=1747087161665&limit=100")

    bfx, nxt = BITFINEX.parse_rest_trades(b'[[1773456796,1784116800387,0.04,97512],[1773456795,1784116800122,-0.0012,97508]]',
                                          "tBTCUSD", RECEIVED)
    assert bfx == [(0, "tBTCUSD", "hist", 1773456795, 1784116800122, "-0.0012", "97508", RECEIVED),
                   (0, "tBTCUSD", "hist", 1773456796, 1784116800387, "0.04", "97512", RECEIVED)]
    assert nxt == 1784116800387000
    assert BITFINEX.rest_trades_path("tBTCUSD", 1784116800122000) == \
        "/v2/trades/tBTCUSD/hist?limit=10000&sort=1&start=1784116800122"

    gem, nxt = GEMINI.parse_rest_trades(json.dumps([
        {"timestamp": 1547146811, "timestampms": 1547146811357, "tid": 5335307668, "price": "3610.85",
         "amount": "0.27413495", "exchange": "gemini", "type": "buy"},
        {"timestamp": 1547146810, "timestampms": 1547146810000, "tid": 5335307600, "price": "3610.00",
         "amount": "1", "exchange": "gemini", "type": "auction"}]).encode(), "BTCUSD", RECEIVED)
    assert gem == [("BTCUSD", 0, 1547146811357, "3610.85", "0.27413495", "buy", 5335307668, False, "tid", RECEIVED)]
    assert nxt == 1547146811357000


# -- runtime facts -----------------------------------------------------------------------------------
def test_keepalive_facts_reach_the_connection():
    from k2.feed.backoff import Backoff
    from k2.feed.connection import FeedConnection
    from k2.feed.recent import RecentTrades

    def conn(adapter):
        return FeedConnection(adapter, "ws://127.0.0.1:1/", ["X"], "t", None,
                              RecentTrades(adapter.symbol_index, adapter.trade_key_index), Backoff())

    assert conn(BYBIT).ping_interval_s == 20.0 and json.loads(BYBIT.ping_message(7)) == {"req_id": "7", "op": "ping"}
    assert conn(OKX).ping_interval_s == 20.0 and OKX.ping_message(1) == "ping"  # a text frame, not JSON
    assert conn(GEMINI).ping_interval_s == 30.0 and not hasattr(GEMINI, "ping_message")
    assert json.loads(BITFINEX.ping_message(3)) == {"event": "ping", "cid": 3}
    # Coinbase Advanced: one subscribe per channel, heartbeats included (quiet channels are closed)
    msgs = [json.loads(m) for _, _, m in ADVANCED.subscribe_requests(["BTC-USD"], 1)]
    assert [m["channel"] for m in msgs] == ["market_trades", "heartbeats"]
    # Bybit: at most 10 topics per subscribe request
    reqs = BYBIT.subscribe_requests([f"S{i}USDT" for i in range(23)], 5)
    assert [len(s) for _, s, _ in reqs] == [10, 10, 3] and [i for i, _, _ in reqs] == [5, 6, 7]
    assert [json.loads(m)["symbol"] for _, _, m in BITFINEX.subscribe_requests(["tBTCUSD", "tETHUSD"], 1)] == [
        "tBTCUSD", "tETHUSD"]


# -- SQL normalization ---------------------------------------------------------------------------------
@pytest.fixture
def loaded(clean_warehouse, load_frames, fixtures_dir):
    """Every new venue's session loaded (Coinbase: the Exchange feed) -> (warehouse, reference trades)."""
    wh, trades = clean_warehouse, []
    for name in ("coinbase", "bybit", "okx", "bitfinex", "gemini"):
        report = load_frames(wh, name, fixtures_dir / f"{name}_session.jsonl", name=f"{name}.jsonl")
        assert report.rejects == 0, name
        trades += v.REFERENCE[name](lines(fixtures_dir / f"{name}_session.jsonl"))
    return wh, trades


def by_key(rows):
    return {(r["exchange"], r["symbol"], r["trade_id"]): r for r in rows}


def assert_silver_equals(rows: list[dict], trades: list[ref.Trade]) -> None:
    got = by_key(rows)
    assert len(got) == len(rows) == len(trades)
    for t in trades:
        r = got[(t.exchange, t.symbol, t.trade_id)]
        base, quote = t.canonical.split("/")
        assert (r["canonical_symbol"], r["base"], r["quote"], r["currency"]) == (t.canonical, base, quote, quote), t
        assert (Decimal(r["price"]), Decimal(r["quantity"]), r["side"], r["ts_us"]) == (
            t.price, t.qty, t.side, t.ts_us), t
        assert r["vendor_data"] == t.raw, t
        assert r["is_valid"] is True and r["validation_errors"] == [], t


def test_silver_rows_equal_the_reference(loaded):
    wh, trades = loaded
    assert_silver_equals(k2db.silver_rows(wh), trades)
    assert len(trades) == 6 + 5 + 6 + 9 + 5  # replays and tu repeats stored once


def test_coinbase_advanced_silver_equals_the_reference(clean_warehouse, load_frames, fixtures_dir):
    wh = clean_warehouse
    path = fixtures_dir / "coinbase_advanced_session.jsonl"
    from k2.history.load import load_file

    report = load_file(wh, ADVANCED, path)
    assert (report.rejects, report.trades, report.written) == (0, 6, 5)  # one repeat of the snapshot
    assert_silver_equals(k2db.silver_rows(wh), v.coinbase_advanced_trades(lines(path)))
    assert wh.rows("SELECT DISTINCT toString(exchange), toString(bronze_table) FROM k2.silver_trades_v2") == [
        ["coinbase", "bronze_trades_coinbase_advanced"]]


def test_side_is_the_taker_side(loaded):
    wh, _ = loaded
    got = wh.rows("SELECT toString(bronze_table), multiIf(exchange = 'bybit', vendor_data['S'], exchange = 'bitfinex', "
                  "if(startsWith(vendor_data['AMOUNT'], '-'), 'negative', 'positive'), vendor_data['side']), "
                  "toString(side) FROM k2.silver_trades_v2 GROUP BY 1, 2, 3 ORDER BY 1, 2")
    assert got == [
        ["bronze_trades_bitfinex", "negative", "SELL"], ["bronze_trades_bitfinex", "positive", "BUY"],
        ["bronze_trades_bybit", "Buy", "BUY"], ["bronze_trades_bybit", "Sell", "SELL"],
        ["bronze_trades_coinbase", "buy", "SELL"], ["bronze_trades_coinbase", "sell", "BUY"],  # the MAKER's side
        ["bronze_trades_gemini", "buy", "BUY"], ["bronze_trades_gemini", "sell", "SELL"],
        ["bronze_trades_okx", "buy", "BUY"], ["bronze_trades_okx", "sell", "SELL"]]


def test_canonical_symbols_keep_the_true_quote(loaded):
    wh, _ = loaded
    got = {(r[0], r[1]): r[2:] for r in wh.rows(
        "SELECT DISTINCT toString(exchange), toString(symbol), canonical_symbol, quote, currency FROM k2.silver_trades_v2")}
    for exchange, symbol, canonical, quote in [
        ("coinbase", "BTC-USD", "BTC/USD", "USD"), ("coinbase", "BTC-USDT", "BTC/USDT", "USDT"),
        ("bybit", "ETHBTC", "ETH/BTC", "BTC"), ("okx", "ETH-USDT", "ETH/USDT", "USDT"),
        ("bitfinex", "tBTCUSD", "BTC/USD", "USD"), ("bitfinex", "tETHUST", "ETH/USDT", "USDT"),  # UST is Tether
        ("bitfinex", "tDOGE:USD", "DOGE/USD", "USD"), ("gemini", "ETHBTC", "ETH/BTC", "BTC"),
    ]:
        assert got[(exchange, symbol)] == [canonical, quote, quote], (exchange, symbol)


def test_unknown_pairs_fall_back_to_the_separator_or_are_flagged(clean_warehouse, load_frames):
    """Instruments missing from the table: separators still split (Coinbase, OKX, Bitfinex); Bybit and
    Gemini symbols have none, so they are kept but flagged unknown_instrument (never guessed)."""
    wh = clean_warehouse
    load_frames(wh, "coinbase", [v.cb_match(1, "sell", "1", "2.5", "NEWCOIN-EUR", v.iso(v.T0_MS), 1)], name="c.jsonl")
    load_frames(wh, "okx", [v.okx_push("NEW-USDC", [v.okx_trade("NEW-USDC", "1", "2.5", "1", "buy", v.T0_MS)])],
                name="o.jsonl")
    load_frames(wh, "bitfinex", [v.bfx_subscribed(1, "tNEWCOIN:UST"), v.bfx_te(1, "[1,1784116800000,1,2.5]"),
                                 v.bfx_subscribed(2, "tABCUDC"), v.bfx_te(2, "[2,1784116800000,1,2.5]")], name="b.jsonl")
    load_frames(wh, "bybit", [v.bybit_message("NEWCOINUSDT", v.T0_MS, [v.bybit_trade("1", v.T0_MS, "2.5", "1", "Buy",
                                                                                       "NEWCOINUSDT")])], name="y.jsonl")
    load_frames(wh, "gemini", [v._json(v.gem_trade("NEWCOINUSD", 1, v.T0_MS, "2.5", "1", "buy", 1))], name="g.jsonl")
    got = {r[0]: r[1:] for r in wh.rows("SELECT toString(symbol), canonical_symbol, is_valid, validation_errors "
                                        "FROM k2.silver_trades_v2")}
    assert got == {"NEWCOIN-EUR": ["NEWCOIN/EUR", True, []], "NEW-USDC": ["NEW/USDC", True, []],
                   "tNEWCOIN:UST": ["NEWCOIN/USDT", True, []], "tABCUDC": ["ABC/USDC", True, []],
                   "NEWCOINUSDT": ["NEWCOINUSDT", False, ["unknown_instrument"]],
                   "NEWCOINUSD": ["NEWCOINUSD", False, ["unknown_instrument"]]}


def test_timestamps_exact_to_the_microsecond(clean_warehouse, load_frames):
    wh = clean_warehouse
    times = ["2026-07-15T12:00:00.000001Z", "2026-07-15T12:00:00.999999Z", "2026-07-15T12:00:00.1Z",
             "2026-07-15T12:00:00.05Z", "2026-07-15T12:00:00Z", "2026-07-15T12:00:00.123456789Z",
             "2026-07-15T12:00:59.999999Z", "2026-07-15T12:01:00.000000Z"]
    load_frames(wh, "coinbase", [v.cb_match(i, "sell", "1", "1.0", "BTC-USD", t, i) for i, t in enumerate(times, 1)])
    got = dict(wh.rows("SELECT vendor_data['time'], toUnixTimestamp64Micro(timestamp) FROM k2.silver_trades_v2"))
    assert {t: int(us) for t, us in got.items()} == {t: v.rfc3339_us(t) for t in times}
    assert int(got["2026-07-15T12:00:00.123456789Z"]) == 1784116800123456  # beyond µs: truncated, never rounded up
    ms = [1784116800000, 1784116800001, 1784116800999, 1784116859999, 1784116860000]
    load_frames(wh, "okx", [v.okx_push("BTC-USDT", [v.okx_trade("BTC-USDT", str(i), "1", "1", "buy", t)])
                            for i, t in enumerate(ms)], name="o.jsonl")
    load_frames(wh, "bitfinex", [v.bfx_subscribed(1, "tBTCUSD")] + [
        v.bfx_te(1, f"[{i},{t},1,1]") for i, t in enumerate(ms)], name="b.jsonl")
    for exchange in ("okx", "bitfinex"):
        got = sorted(int(r[0]) for r in wh.rows("SELECT toUnixTimestamp64Micro(timestamp) FROM k2.silver_trades_v2 "
                                                 "WHERE exchange = {e:String}", {"e": exchange}))
        assert got == [t * 1000 for t in ms], exchange


@pytest.mark.parametrize("amount, price, quantity", [
    ("0.00000001", "97512", "0.00000001"), ("-123456789.123456789", "0.000000000000000001", "123456789.123456789"),
    ("1e-8", "5E+4", "0.00000001"), ("-2.5e3", "1.5", "2500"), ("99999999999999999999.999999999999999999", "0.000001",
                                                             "99999999999999999999.999999999999999999"),
])
def test_bitfinex_number_text_is_exact(clean_warehouse, load_frames, amount, price, quantity):
    wh = clean_warehouse
    load_frames(wh, "bitfinex", [v.bfx_subscribed(1, "tBTCUSD"), v.bfx_te(1, f"[1,1784116800000,{amount},{price}]")])
    (r,) = k2db.silver_rows(wh)
    assert Decimal(r["quantity"]) == Decimal(quantity) and Decimal(r["price"]) == Decimal(price)
    assert r["side"] == ("SELL" if amount.startswith("-") else "BUY") and r["is_valid"] is True
    assert (r["vendor_data"]["AMOUNT"], r["vendor_data"]["PRICE"]) == (amount, price)  # as sent


def test_values_beyond_decimal_38_18_and_zero_amounts_are_flagged(clean_warehouse, load_frames):
    wh = clean_warehouse
    load_frames(wh, "bitfinex", [v.bfx_subscribed(1, "tBTCUSD"),
                                 v.bfx_te(1, "[1,1784116800000,1.0000000000000000001,1]"),
                                 v.bfx_te(1, "[2,1784116800000,1.5e-19,1]"),
                                 v.bfx_te(1, "[3,1784116800000,0,1]"),
                                 v.bfx_te(1, "[4,1784116800000,1e20,1e20]")])
    load_frames(wh, "gemini", [v._json(v.gem_trade("BTCUSD", 1, v.T0_MS, "0", "1", "buy", 1))], name="g.jsonl")
    errors = {r["trade_id"] + r["exchange"]: r["validation_errors"] for r in k2db.silver_rows(wh)}
    assert "quantity_beyond_18_decimals" in errors["1bitfinex"]
    assert "quantity_beyond_18_decimals" in errors["2bitfinex"] or "quantity_not_positive" in errors["2bitfinex"]
    assert errors["3bitfinex"] == ["quantity_not_positive"]
    assert "notional_out_of_range" in errors["4bitfinex"]
    assert errors["1gemini"] == ["price_not_positive"]
    assert k2db.count(wh, "gold_ohlcv_1m") == 0


def test_bronze_keeps_the_native_format(loaded):
    wh, _ = loaded
    assert wh.rows("SELECT product_id, trade_id, toString(side), size, price, time, type FROM k2.bronze_trades_coinbase "
                   "WHERE trade_id = 871234568") == [
        ["BTC-USD", "871234568", "sell", "0.2", "97512.38", "2026-07-15T12:00:01.101871Z", "match"]]
    assert wh.rows("SELECT symbol, msg_type, amount, price, chan_id FROM k2.bronze_trades_bitfinex WHERE id = 1773456802") \
        == [["tDOGE:USD", "te", "1e-8", "0.18235", "17472"]]
    assert wh.rows("SELECT inst_id, trade_id, ts, count, trade_source, seq_id FROM k2.bronze_trades_okx "
                   "WHERE trade_id = '1051102135'") == [["BTC-USDT", "1051102135", "1784116800387", "3", "0",
                                                          "80559459961"]]
    assert wh.rows("SELECT symbol, exec_id, toString(side), is_rpi, seq FROM k2.bronze_trades_bybit "
                   "WHERE exec_id = '2280000000012345678'") == [["ETHUSDT", "2280000000012345678", "Sell", None, "-1"]]
    assert wh.rows("SELECT symbol, tid, is_snapshot FROM k2.bronze_trades_gemini ORDER BY tid LIMIT 1") == [
        ["BTCUSD", "2840140800042677", True]]


@pytest.mark.parametrize("interval", ["1m", "1h"])
def test_gold_equals_the_reference(loaded, interval):
    wh, trades = loaded
    for cross in (False, True):
        assert k2db.read_candles(wh, interval, cross) == k2db.as_view_candles(
            ref.candles(trades, interval, cross), cross), (interval, cross)


def test_open_close_follow_time_then_numeric_id(loaded):
    wh, _ = loaded
    okx = k2db.read_candles(wh, "1m", False, "BTC/USDT")[("okx", "BTC/USDT", mf.T0 + 60)]
    assert (okx["open_price"], okx["close_price"]) == (Decimal("97400"), Decimal("97400.1"))  # 999 before 1000


def test_cross_exchange_candles_combine_the_right_venues(clean_warehouse, load_frames, fixtures_dir):
    """BTC/USD from Kraken, Coinbase, Bitfinex and Gemini; BTC/USDT from Binance, Bybit and OKX -- and
    Bitfinex's tBTCUST joins BTC/USDT, not BTC/USD."""
    wh = clean_warehouse
    kraken = [mf.kraken_trades(1, "XBT/USD", [mf.KTrade("97500.00000", "0.10000000", "1784116830.000001", "b")])]
    binance = [mf.binance_trade("BTCUSDT", 1, "97490.00", "0.2", 1784116831000, False)]
    load_frames(wh, "kraken", kraken, name="k.jsonl")
    load_frames(wh, "binance", binance, name="b.jsonl")
    trades = ref.kraken_trades(kraken) + ref.binance_trades(binance)
    for name in ("coinbase", "bybit", "okx", "bitfinex", "gemini"):
        frames = [f for f in lines(fixtures_dir / f"{name}_session.jsonl")]
        load_frames(wh, name, frames, name=f"{name}.jsonl")
        trades += v.REFERENCE[name](frames)
    venues = {r[0]: r[1] for r in wh.rows("SELECT canonical_symbol, arraySort(groupUniqArray(toString(exchange))) "
                                          "FROM k2.gold_ohlcv_1h GROUP BY canonical_symbol")}
    assert venues["BTC/USD"] == ["bitfinex", "coinbase", "gemini", "kraken"]
    assert venues["BTC/USDT"] == ["binance", "bybit", "coinbase", "okx"]  # Coinbase lists BTC-USDT too
    cross = k2db.read_candles(wh, "1h", True)
    model = k2db.as_view_candles(ref.candles(trades, "1h", True), True)
    for symbol in ("BTC/USD", "BTC/USDT"):
        key = ("all", symbol, mf.T0)
        assert cross[key] == model[key], symbol
        assert cross[key]["exchanges"] == venues[symbol]
    # Bitfinex's Tether pair joins the USDT candles
    load_frames(wh, "bitfinex", [v.bfx_subscribed(7, "tBTCUST"), v.bfx_te(7, "[1773999999,1784116832000,-0.3,97495]")],
                name="ust.jsonl")
    after = k2db.read_candles(wh, "1h", True)
    assert after[("all", "BTC/USDT", mf.T0)]["exchanges"] == ["binance", "bitfinex", "bybit", "coinbase", "okx"]
    assert after[("all", "BTC/USD", mf.T0)] == cross[("all", "BTC/USD", mf.T0)]


def test_vendor_data_keeps_only_what_was_sent(clean_warehouse, load_frames):
    """REST rows and older wire formats lack fields: vendor_data has no made-up values for them."""
    wh = clean_warehouse
    rows, _ = COINBASE.parse_rest_trades(b'[{"time":"2026-07-15T12:00:01.101871Z","trade_id":5,"price":"1.5",'
                                         b'"size":"2","side":"buy"}]', "BTC-USD", RECEIVED)
    from k2.warehouse.bronze import BronzeWriter

    assert BronzeWriter(wh, COINBASE).write(rows, source="rest") == 1
    (r,) = k2db.silver_rows(wh)
    assert r["vendor_data"] == {"trade_id": "5", "side": "buy", "size": "2", "price": "1.5", "product_id": "BTC-USD",
                                "time": "2026-07-15T12:00:01.101871Z"}
    assert r["side"] == "SELL" and wh.scalar("SELECT toString(source) FROM k2.silver_trades_v2") == "rest"


# -- k2 validate ---------------------------------------------------------------------------------------
def test_validate_passes_then_names_a_broken_venue(clean_warehouse, fixtures_dir):
    """`k2 validate`'s checks (run here on this module's warehouse: chDB opens one data dir per process)."""
    from k2.history.load import load_file
    from k2.quality.validate import load_checks, report, run_checks

    wh = clean_warehouse
    load_file(wh, ADVANCED, fixtures_dir / "coinbase_advanced_session.jsonl")  # one Coinbase API per data dir
    own = [c for c in load_checks() if "coinbase_advanced" in c.id]
    assert [c.id for c in own] == ["bronze.coinbase_advanced.native", "silver.coinbase_advanced.normalized"]
    assert [wh.rows(c.sql)[0][0] for c in own] == ["0", "0"]
    k2db.truncate_all(wh)
    for name in ("coinbase", "bybit", "okx", "bitfinex", "gemini"):
        load_file(wh, adapter_of(name), fixtures_dir / f"{name}_session.jsonl")
    out, ok = report(run_checks(wh))
    assert ok, out
    for label in ("bronze.coinbase.native", "bronze.bitfinex.native", "silver.coinbase.normalized",
                  "silver.bybit.normalized", "silver.okx.normalized", "silver.bitfinex.normalized",
                  "silver.gemini.normalized", "quality.coinbase.sequential_ids"):
        assert f"PASS  {label}:" in out, label
    sections = [ln for ln in out.splitlines() if re.match(r"^\[\d ", ln)]
    assert sections == ["[1 bronze]", "[2 silver]", "[3 cross-exchange]", "[4 gold]", "[5 data quality]", "[6 history]",
                        "[7 reconciliation]"]
    # silver says the taker sold where Coinbase's maker sold (the taker bought); a Tether pair called USD;
    # a Coinbase trade id skipped
    wh.execute("ALTER TABLE k2.silver_trades_v2 UPDATE side = 'SELL' WHERE bronze_table = 'bronze_trades_coinbase' "
               "AND trade_id = '871234568' SETTINGS mutations_sync = 2")
    wh.execute("ALTER TABLE k2.silver_trades_v2 UPDATE quote = 'USD', currency = 'USD' "
               "WHERE bronze_table = 'bronze_trades_bitfinex' AND symbol = 'tETHUST' SETTINGS mutations_sync = 2")
    wh.execute("INSERT INTO k2.bronze_trades_coinbase (type, trade_id, maker_order_id, taker_order_id, side, size, price, "
               "product_id, sequence, time, received_at, source, batch_id) VALUES ('match', 871234580, '', '', 'buy', "
               "'1', '97000.00', 'BTC-USD', 1, '2026-07-15T12:00:05.000000Z', now64(6), 'test', 'manual')")
    out, ok = report(run_checks(wh))
    failed = set(re.findall(r"^\s+FAIL\s+(.+?): ", out, re.M))
    assert not ok
    assert {"silver.coinbase.normalized", "silver.bitfinex.normalized", "quality.coinbase.sequential_ids"} <= failed
    assert "871234568: side" in out and "tETHUST" in out


# -- the registry --------------------------------------------------------------------------------------
def test_every_registered_exchange_is_complete(fixtures_dir):
    """Adding an exchange means: an adapter, bronze + silver SQL, a simulator venue and fixtures."""
    from k2.simulator.runner import VENUES
    from k2.warehouse.schema import sql_files

    files = dict(sql_files())
    assert list(ADAPTERS) == ["binance", "kraken", "coinbase", "bybit", "okx", "bitfinex", "gemini"]
    assert set(ALL_ADAPTERS) == set(ADAPTERS.values()) | set(API_VARIANTS.values())
    assert len({a.bronze_table for a in ALL_ADAPTERS}) == len(ALL_ADAPTERS)
    for adapter in ALL_ADAPTERS:
        table = adapter.bronze_table
        bronze = [n for n, text in files.items() if f"CREATE TABLE IF NOT EXISTS k2.{table}\n" in text]
        silver = [n for n, text in files.items() if f"FROM k2.{table}\n" in text and "TO k2.silver_trades_v2" in text]
        assert len(bronze) == 1 and re.match(r"1\d-bronze-", bronze[0]), table
        assert len(silver) == 1 and re.match(r"2\d-silver-", silver[0]) and f"'{table}'" in files[silver[0]], table
        assert f"ALTER TABLE k2.{table} MODIFY SETTING merge_selector_base" in files["90-merge-policy.embedded.sql"]
        for method in ("parse", "subscribe_requests", "native_symbol", "instruments_path", "parse_instruments"):
            assert callable(getattr(adapter, method, None)), (table, method)
        assert adapter.fallback_instruments and adapter.exchange_time and adapter.bronze_time_sql, table
        if adapter.can_backfill:
            for method in ("rest_trades_path", "parse_rest_trades", "row_time_us"):
                assert getattr(type(adapter), method) is not getattr(ExchangeAdapter, method), (table, method)
        assert adapter.name in VENUES, adapter.name  # a variant is served by its exchange's venue
        api = getattr(adapter, "api", None)
        stem = adapter.name + (f"_{api}" if api else "")
        assert (fixtures_dir / f"{stem}_session.jsonl").is_file(), stem
        assert (fixtures_dir / f"{stem}_malformed.jsonl").is_file(), stem


@pytest.mark.parametrize("stem", sorted(v.SESSIONS))
def test_malformed_fixture_files_load_one_trade_and_reject_the_rest(clean_warehouse, fixtures_dir, stem):
    from k2.history.load import load_file

    wh = clean_warehouse
    report = load_file(wh, adapter_of(stem), fixtures_dir / f"{stem}_malformed.jsonl")
    assert (report.trades, report.written, report.rejects) == (1, 1, len(v.BAD[stem]))
    reasons = [r[0] for r in wh.rows("SELECT reason FROM k2.rejects ORDER BY origin")]
    assert len(reasons) == len(v.BAD[stem]) and all(reasons)


def _mutations(doc):
    """Copies of a decoded frame with one value replaced by a value of another JSON type."""
    others = ([], {}, None, 1.5, -1, True, "x", "")
    if isinstance(doc, dict):
        for k, val in doc.items():
            for o in others:
                yield {**doc, k: o}
            for m in _mutations(val):
                yield {**doc, k: m}
    elif isinstance(doc, list):
        for i, val in enumerate(doc):
            for o in others:
                yield doc[:i] + [o] + doc[i + 1:]
            for m in _mutations(val):
                yield doc[:i] + [m] + doc[i + 1:]


@pytest.mark.parametrize("name", sorted(v.SESSIONS))
def test_any_value_of_any_type_is_a_result_or_a_frame_error(name):
    """Every field of every fixture frame replaced by a list, object, null, number, bool or string:
    the parser answers or raises FrameError -- never another exception (that would be a parser bug)."""
    for frame in v.SESSIONS[name]:
        try:
            doc = json.loads(frame)
        except ValueError:
            continue
        for mutated in _mutations(doc):
            parser = adapter_of(name).session()
            if name == "bitfinex":
                for chan in (v.BFX_BTCUSD, v.BFX_ETHUST, v.BFX_DOGEUSD, 90001):
                    parser.parse(v.bfx_subscribed(chan, "tBTCUSD"), 0)
            try:
                parser.parse(json.dumps(mutated).encode(), 0)
            except FrameError:
                pass
