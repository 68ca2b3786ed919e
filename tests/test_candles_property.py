"""Property: for random trade sets, the gold candles of every interval, per exchange and
cross-exchange, equal candles computed in Python with decimal.Decimal (fixtures/reference.py);
and loading the same frames again, shuffled and in small batches, changes no candle.

Trade sets mix both exchanges and symbols including pairs traded on both (BTC/USDT: Binance
BTCUSDT and Kraken XBT/USDT; ETH/BTC: ETHBTC and ETH/XBT) and one only Kraken has (BTC/USD from
XBT/USD); prices and quantities with up to 8 decimals printed with random trailing zeros;
timestamps over several days including interval boundaries and ties at the same millisecond and
microsecond (across exchanges too); Binance ids crossing digit lengths; identical Kraken trades
inside one frame; replayed frames. One warehouse serves the module; each example starts from
empty tables.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures import k2db
from fixtures import make_frames as mf
from fixtures import reference as ref
from k2.exchanges import get_adapter
from k2.history.load import load_file

DAY_US = 86_400_000_000
BASE_US = 1784073600_000000  # 2026-07-15 00:00:00 UTC
SPAN_US = 3 * DAY_US + 7_654_321  # a little over three days
#: instants that many trades share: interval and day boundaries, one µs either side, and
#: millisecond-aligned instants where a Binance (ms) and a Kraken (µs) trade can tie exactly
ANCHORS = [BASE_US, BASE_US + DAY_US, BASE_US + DAY_US - 1, BASE_US + 3_600_000_000, BASE_US + 899_999_999,
           BASE_US + 900_000_000, BASE_US + 900_000_001, BASE_US + 300_000_000, BASE_US + 60_000_000,
           BASE_US + 2 * DAY_US + 12_345_000, BASE_US + 2 * DAY_US + 12_345_001]
#: (exchange, native symbol)
SYMBOLS = [("binance", "BTCUSDT"), ("binance", "ETHBTC"), ("binance", "ETHUSDT"),
           ("kraken", "XBT/USD"), ("kraken", "XBT/USDT"), ("kraken", "ETH/XBT"), ("kraken", "XDG/USD")]

timestamps = st.one_of(st.sampled_from(ANCHORS), st.integers(BASE_US, BASE_US + SPAN_US))
# an integer number of 1e-8 units: up to 8 decimals
prices = st.one_of(st.integers(1, 10**14), st.sampled_from([10**8, 97512_34000000, 1]))
quantities = st.one_of(st.integers(1, 10**12), st.sampled_from([1, 10**8, 5 * 10**7]))
binance_ids = st.one_of(st.integers(1, 12_000), st.sampled_from([9, 10, 99, 100, 999, 1000, 9999, 10000]),
                        st.integers(5_000_000_000, 5_000_000_100))


def decimal_text(units: int, pad: int) -> str:
    """units * 1e-8 as a decimal string, with `pad` trailing zeros beyond the significant digits."""
    whole, frac = divmod(units, 10**8)
    frac_text = f"{frac:08d}".rstrip("0")
    frac_text = (frac_text + "0" * pad)[: max(len(frac_text), min(8, len(frac_text) + pad))]
    return f"{whole}.{frac_text}" if frac_text else str(whole)


trade = st.fixed_dictionaries({
    "symbol": st.sampled_from(SYMBOLS), "ts": timestamps, "price": prices, "qty": quantities,
    "sell": st.booleans(), "pad_p": st.integers(0, 8), "pad_q": st.integers(0, 8),
    "market": st.booleans(), "repeat": st.integers(0, 2), "replay": st.booleans(),
})


@st.composite
def trade_sets(draw):
    """-> {exchange: frames in file order}."""
    trades = draw(st.lists(trade, min_size=1, max_size=40))
    frames: dict[str, list[bytes]] = {"binance": [], "kraken": []}
    used_ids: dict[str, set] = {}
    kraken_pending: dict[str, list] = {}
    for t in trades:
        exchange, symbol = t["symbol"]
        p, q = decimal_text(t["price"], t["pad_p"]), decimal_text(t["qty"], t["pad_q"])
        if exchange == "binance":
            ids = used_ids.setdefault(symbol, set())
            tid = draw(binance_ids)
            while tid in ids:  # Binance ids are unique per symbol
                tid += 1
            ids.add(tid)
            frame = mf.binance_trade(symbol, tid, p, q, t["ts"] // 1000, t["sell"])
            if t["repeat"] == 2:
                frame = mf.binance_combined(frame)
            frames["binance"].append(frame)
            if t["replay"]:
                frames["binance"].append(frame)
        else:
            kt = mf.KTrade(p, q, mf.kraken_time(t["ts"]), "s" if t["sell"] else "b", "m" if t["market"] else "l")
            pending = kraken_pending.setdefault(symbol, [])
            pending.extend([kt] * (1 + (t["repeat"] == 2)))  # an identical trade in the same frame
            if t["repeat"] == 0 or len(pending) >= 4:  # close the frame
                frame = mf.kraken_trades(119930881, symbol, pending)
                frames["kraken"].append(frame)
                if t["replay"]:
                    frames["kraken"].append(frame)
                kraken_pending[symbol] = []
    for symbol, pending in kraken_pending.items():
        if pending:
            frames["kraken"].append(mf.kraken_trades(119930881, symbol, pending))
    return frames


def load_all(wh, tmp, frames_by_exchange, batch_size=100_000, tag="a") -> None:
    for exchange, frames in frames_by_exchange.items():
        if frames:
            path = mf.write_lines(tmp / f"{tag}-{exchange}.jsonl", frames)
            report = load_file(wh, get_adapter(exchange), path, batch_size=batch_size)
            assert report.rejects == 0


def all_candles(wh) -> dict:
    return {(i, cross): k2db.read_candles(wh, i, cross) for i in ref.INTERVALS for cross in (False, True)}


@pytest.fixture(scope="module")
def frames_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("property-frames")


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frames=trade_sets(), seed=st.integers(0, 2**32 - 1), batch_size=st.integers(1, 6))
def test_gold_candles_equal_python_candles(warehouse, frames_dir, frames, seed, batch_size):
    wh, tmp = warehouse, frames_dir
    trades = ref.binance_trades(frames["binance"]) + ref.kraken_trades(frames["kraken"])
    expected = {(i, cross): k2db.as_view_candles(ref.candles(trades, i, cross), cross)
                for i in ref.INTERVALS for cross in (False, True)}

    k2db.truncate_all(wh)
    load_all(wh, tmp, frames)
    assert k2db.count(wh, "silver_trades_v2") == len(trades)
    got = all_candles(wh)
    for key in expected:
        assert got[key] == expected[key], key

    # the same frames again from scratch, shuffled, in batches of a few frames
    k2db.truncate_all(wh)
    rng = random.Random(seed)
    shuffled = {e: rng.sample(f, len(f)) for e, f in frames.items()}
    load_all(wh, tmp, shuffled, batch_size=batch_size, tag="b")
    assert all_candles(wh) == got


def test_decimal_text():
    assert decimal_text(1, 0) == "0.00000001"
    assert decimal_text(10**8, 0) == "1"
    assert decimal_text(10**8, 3) == "1.000"
    assert decimal_text(150_000_000, 0) == "1.5"
    assert decimal_text(150_000_000, 9) == "1.50000000"
    assert decimal_text(97512_34000000, 6) == "97512.34000000"
