"""Frames K2 must not store as trades, and trades it must not lose (issue 23, items 6 and the
Gemini tid): symbols in the form each venue documents (printable ASCII), channels of other kinds
known as such, bounded free text, rejects with their exact bytes, Gemini trades without tid.
"""

from __future__ import annotations

import json

import pytest

from k2.errors import FrameError
from k2.exchanges import ALL_ADAPTERS, get_adapter
from k2.exchanges.base import FrameKind

#: (bronze table, fixture, a symbol its trade frames carry)
VENUES = [
    ("bronze_trades_binance", "binance_session.jsonl", "BTCUSDT"),
    ("bronze_trades_kraken", "kraken_session.jsonl", "XBT/USD"),
    ("bronze_trades_coinbase", "coinbase_session.jsonl", "BTC-USD"),
    ("bronze_trades_bybit", "bybit_session.jsonl", "BTCUSDT"),
    ("bronze_trades_okx", "okx_session.jsonl", "BTC-USDT"),
    ("bronze_trades_bitfinex", "bitfinex_session.jsonl", "tBTCUSD"),
    ("bronze_trades_gemini", "gemini_session.jsonl", "BTCUSD"),
    ("bronze_trades_kraken_v2", "kraken_v2_session.jsonl", "BTC/USD"),
    ("bronze_trades_coinbase_advanced", "coinbase_advanced_session.jsonl", "BTC-USD"),
]
#: invisible or look-alike characters: zero-width space, right-to-left override, BOM, Cyrillic A
POISON = ["\u200b", "\u202e", "\ufeff", "\u0410"]


def _adapter(table: str):
    return next(a for a in ALL_ADAPTERS if a.bronze_table == table)


def _parse_all(adapter, frames: list[bytes]) -> tuple[list[tuple], list[str]]:
    parser, rows, reasons = adapter.session(), [], []
    for frame in frames:
        try:
            parsed = parser.parse(frame, 1)
        except FrameError as exc:
            reasons.append(str(exc))
        else:
            if parsed.kind is FrameKind.TRADES:
                rows.extend(parsed.rows)
    return rows, reasons


@pytest.mark.parametrize("table, fixture, symbol", VENUES, ids=[v[0][14:] for v in VENUES])
@pytest.mark.parametrize("char", POISON, ids=["zero-width", "bidi", "bom", "cyrillic"])
@pytest.mark.parametrize("escaped", [True, False], ids=["json-escape", "utf8"])
def test_a_symbol_with_invisible_unicode_is_never_a_trade(fixtures_dir, table, fixture, symbol, char, escaped):
    """Every adapter: the poisoned frames are rejected, every stored symbol is printable ASCII, and
    the other trades still parse. (One adapter stored such a symbol as a valid trade with candles.)"""
    adapter = _adapter(table)
    frames = (fixtures_dir / fixture).read_bytes().splitlines()
    clean_rows, _ = _parse_all(adapter, frames)
    poisoned_symbol = symbol[:3] + char + symbol[3:]
    text = json.dumps(poisoned_symbol)[1:-1] if escaped else poisoned_symbol
    poisoned = [f.replace(f'"{symbol}"'.encode(), f'"{text}"'.encode()) for f in frames]
    assert poisoned != frames
    rows, reasons = _parse_all(adapter, poisoned)
    symbols = {r[adapter.symbol_index] for r in rows}
    assert all(s.isascii() and s.isprintable() for s in symbols), symbols
    assert symbol not in symbols and reasons  # its trades were rejected, with a reason
    assert len(rows) == len([r for r in clean_rows if r[adapter.symbol_index] != symbol])


def test_bitfinex_book_and_ticker_channels_of_a_recording_are_not_rejects():
    """They were rejected as "trades on channel N, which no subscribed event named", although the
    recording's own `subscribed` event named that channel."""
    parser = get_adapter("bitfinex").session()
    frames = [b'{"event":"subscribed","channel":"book","chanId":5,"symbol":"tBTCUSD","prec":"P0","freq":"F0"}',
              b'[5,[[97000,1,0.5],[97001,2,-0.3]]]', b'[5,[97002,1,0.1]]', b'[5,"hb"]',
              b'{"event":"subscribed","channel":"ticker","chanId":6,"symbol":"tBTCUSD","pair":"BTCUSD"}',
              b'[6,[97000,1,97001,2,5,0.01,97001,100,97500,96000]]',
              b'{"event":"subscribed","channel":"trades","chanId":7,"symbol":"fUSD"}', b'[7,"fte",[1,2,3,4,5]]',
              b'{"event":"subscribed","channel":"trades","chanId":8,"symbol":"tBTCUSD","pair":"BTCUSD"}',
              b'[8,"te",[1773456795,1784116800122,-0.0012,97508]]']
    kinds = [parser.parse(f, 1).kind for f in frames]
    assert kinds.count(FrameKind.OTHER) == 4 and kinds[-1] is FrameKind.TRADES
    with pytest.raises(FrameError, match="no `subscribed` event"):  # a channel nobody named still is one
        parser.parse(b'[9,"te",[1,1784116800122,1,97508]]', 1)


def test_a_huge_free_text_field_is_rejected_and_kept_whole(clean_warehouse, load_frames):
    """A 5 MB Kraken `misc` was stored whole in bronze (and in the trade key and id hash)."""
    wh = clean_warehouse
    big = "x" * (5 << 20)
    good = b'[1,[["97600.0","0.01","1784116900.000001","b","l",""]],"trade","XBT/USD"]'
    huge = b'[1,[["97600.0","0.01","1784116900.000002","b","l","' + big.encode() + b'"]],"trade","XBT/USD"]'
    report = load_frames(wh, "kraken", [good, huge])
    assert (report.trades, report.rejects) == (1, 1)
    assert wh.rows("SELECT max(length(misc)) FROM k2.bronze_trades_kraken") == [["0"]]
    assert wh.rows("SELECT length(raw), reason FROM k2.rejects") == [
        [str(len(huge)), f"misc is {len(big):,} characters long (at most 256 kept in bronze; the frame is kept "
                         "whole here)"]]
    assert wh.scalar("SELECT raw = {r:String} FROM k2.rejects", {"r": huge.decode()}) in (True, "true", 1, "1")
    coinbase = get_adapter("coinbase")
    with pytest.raises(FrameError, match="maker_order_id is 300 characters long"):
        coinbase.parse(json.dumps({"type": "match", "trade_id": 1, "maker_order_id": "m" * 300, "taker_order_id": "t",
                                   "side": "buy", "size": "1", "price": "1", "product_id": "BTC-USD", "sequence": 1,
                                   "time": "2026-07-15T12:00:00Z"}).encode(), 1)


GEMINI_NO_TID = (b'{"type":"trade","symbol":"BTCUSD","event_id":291838479999,"timestamp":1784116800122,'
                 b'"price":"97512.40","quantity":"0.04","side":"buy"}')


def test_gemini_trades_without_tid_are_named_by_event_id(clean_warehouse, load_frames, fixtures_dir):
    """Real captures carry event_id and no tid; they were all rejected. Bronze says which id."""
    wh = clean_warehouse
    load_frames(wh, "gemini", fixtures_dir / "gemini_session.jsonl")
    report = load_frames(wh, "gemini", [GEMINI_NO_TID], name="no-tid.jsonl")
    assert (report.trades, report.written, report.rejects) == (1, 1, 0)
    assert wh.rows("SELECT tid, id_field FROM k2.bronze_trades_gemini WHERE event_id = 291838479999") == [
        ["291838479999", "event_id"]]
    assert set(r[0] for r in wh.rows("SELECT DISTINCT id_field FROM k2.bronze_trades_gemini")) == {"tid", "event_id"}
    silver = wh.rows("SELECT trade_id, vendor_data['event_id'], mapContains(vendor_data, 'tid'), is_valid "
                     "FROM k2.silver_trades_v2 WHERE trade_id = '291838479999'")
    assert silver == [["291838479999", "291838479999", False, True]]
    from k2.quality.validate import run_checks

    failed = [r.label for r in run_checks(wh) if r.status == "FAIL"]
    assert failed == []
    # loading it again stores nothing twice; a trade without either id is still no trade
    assert load_frames(wh, "gemini", [GEMINI_NO_TID], name="again.jsonl").written == 0
    with pytest.raises(FrameError, match="tid is not a non-negative integer"):
        get_adapter("gemini").parse(GEMINI_NO_TID.replace(b'"event_id":291838479999', b'"event_id":0'), 1)
