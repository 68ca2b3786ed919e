"""`k2 chart`: candlesticks with volume as PNG (matplotlib) and self-contained HTML (inline SVG)."""

from __future__ import annotations

import random
import re

import pytest

from fixtures import make_frames as mf
from k2.read.charts import chart
from k2.errors import K2Error


def _binance_walk(symbol: str, n: int, seed: int, start_price: float, first_id: int = 1) -> list[bytes]:
    """n trades over about an hour, a random walk in price."""
    rng = random.Random(seed)
    price, frames = start_price, []
    for i in range(n):
        price *= 1 + rng.uniform(-0.002, 0.002)
        t_ms = (mf.T0 + i * 3600 // n) * 1000 + rng.randrange(1000)
        frames.append(mf.binance_trade(symbol, first_id + i, f"{price:.2f}", f"{rng.uniform(0.001, 2):.5f}",
                                       t_ms, rng.random() < 0.5))
    return frames


@pytest.fixture
def candles_wh(clean_warehouse, load_frames):
    load_frames(clean_warehouse, "binance", _binance_walk("BTCUSDT", 600, 1, 97000.0), name="btc.jsonl")
    return clean_warehouse


def test_png_chart(candles_wh, tmp_path):
    out = tmp_path / "btc.png"
    done = chart(candles_wh, "BTC/USDT", "1m", out, "binance")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert done["candles"] == 60 and done["panels"] == ["binance"]
    assert out.stat().st_size > 10_000  # a picture, not an empty canvas


def test_html_chart_holds_every_candle_exactly(candles_wh, tmp_path):
    out = tmp_path / "btc.html"
    chart(candles_wh, "BTC/USDT", "5m", out)  # cross-exchange
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http://" not in page.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")  # self-contained, no JavaScript, nothing fetched
    assert page.count('<g class="candle"') == 12
    expected = candles_wh.rows("SELECT formatDateTime(window_start, '%Y-%m-%d %H:%i'), toString(open_price), "
                               "toString(close_price), toString(volume) FROM k2.ohlcv_5m_cross "
                               "WHERE canonical_symbol = 'BTC/USDT' ORDER BY window_start")
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>[^<]+</td><td>[^<]+</td><td>([^<]+)</td>"
                      r"<td>([^<]+)</td>", page)
    assert [list(r) for r in rows] == expected


def test_one_panel_per_exchange(candles_wh, load_frames, tmp_path):
    out = tmp_path / "two.html"
    load_frames(candles_wh, "binance", _binance_walk("ETHUSDT", 120, 2, 3500.0, 10_000), name="eth.jsonl")
    with pytest.raises(K2Error, match="no 1h candles for BTC/USDT"):
        chart(candles_wh, "BTC/USDT", "1h", out, "binance", since="2030-01-01")
    done = chart(candles_wh, "BTC/USDT", "15m", out, "binance,binance", max_candles=2)
    assert done["candles"] == 2


@pytest.mark.parametrize("args, message", [
    (["--out", "x.jpg"], "--out must end in .png or .html"),
    (["--out", "x.html", "--exchange", "nasdaq"], "unknown exchange"),
])
def test_cli_mistakes_are_one_line(k2_cli, tmp_path, args, message):
    r = k2_cli("chart", "BTC/USD", "--interval", "1m", "--data-dir", tmp_path / "d", *args)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_writes_a_chart(k2_cli, tmp_path, fixtures_dir):
    data = tmp_path / "data"
    loaded = k2_cli("load", fixtures_dir / "kraken_session.jsonl", "--exchange", "kraken", "--data-dir", data)
    assert loaded.returncode == 0, loaded.stderr
    r = k2_cli("chart", "BTC/USD", "--interval", "1m", "--data-dir", data, "--out", tmp_path / "c.html")
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and (tmp_path / "c.html").read_text().count('<g class="candle"') >= 1
