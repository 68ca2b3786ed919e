"""`k2 chart`: candlesticks with volume as PNG (matplotlib) and one self-contained interactive HTML
file (TradingView Lightweight Charts inlined)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

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


def _chart_data(page: str) -> dict:
    m = re.search(r'<script id="k2-data" type="application/json">(.*?)</script>', page, re.S)
    assert m, "no chart data in the page"
    return json.loads(m.group(1))


def test_html_chart_holds_every_candle_exactly(candles_wh, tmp_path):
    out = tmp_path / "btc.html"
    chart(candles_wh, "BTC/USDT", "5m", out)  # cross-exchange
    page = out.read_text()
    # one self-contained file: the charting library inline, nothing fetched (works offline)
    assert page.startswith("<!DOCTYPE html>") and "LightweightCharts" in page and "createChart" in page
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=", page, re.I)
    assert "@import" not in page and "fetch(" not in page.split("<script>", 1)[0]
    data = _chart_data(page)
    assert data["overlay"] is False and [s["label"] for s in data["series"]] == ["all venues"]
    candles = data["series"][0]["candles"]
    assert len(candles) == 12 and all(a["time"] + 300 == b["time"] for a, b in zip(candles, candles[1:]))
    expected = candles_wh.rows("SELECT formatDateTime(window_start, '%Y-%m-%d %H:%i'), toString(open_price), "
                               "toString(close_price), toString(volume) FROM k2.ohlcv_5m_cross "
                               "WHERE canonical_symbol = 'BTC/USDT' ORDER BY window_start")
    rows = re.findall(r"<tr><td>([^<]+)</td><td>([^<]+)</td><td>[^<]+</td><td>[^<]+</td><td>([^<]+)</td>"
                      r"<td>([^<]+)</td>", page)
    assert [list(r) for r in rows] == expected  # the exact values, as stored
    assert [[c["open"], c["close"]] for c in candles] == [[float(r[1]), float(r[2])] for r in expected]
    assert [v["value"] for v in data["series"][0]["volume"]] == [float(r[3]) for r in expected]
    assert page.count("<h1>") == 1 and "<h2>" not in page  # titles written once (the script adds panel names)


def test_venues_overlaid_on_one_price_axis(candles_wh, tmp_path):
    out = tmp_path / "over.html"
    done = chart(candles_wh, "BTC/USDT", "15m", out, "binance,all", overlay=True)
    data = _chart_data(out.read_text())
    assert data["overlay"] is True and [s["label"] for s in data["series"]] == ["binance", "all venues"]
    assert done["panels"] == ["binance", "all venues"]
    png = tmp_path / "over.png"
    chart(candles_wh, "BTC/USDT", "15m", png, "binance,all", overlay=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_png_time_ticks_fall_on_whole_times(candles_wh):
    """The bottom axis' ticks are whole minutes/hours from matplotlib's date locator, each label once."""
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from k2.read.charts import load_series, render_png

    series = load_series(candles_wh, "BTC/USDT", "1m", ["all"], None, None, 0)
    captured = {}
    real_savefig = plt.Figure.savefig

    def keep(fig, *a, **k):
        fig.canvas.draw()
        ax = fig.axes[-1]
        captured["ticks"] = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        captured["labels"] = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        return real_savefig(fig, *a, **k)

    plt.Figure.savefig = keep
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            render_png(series, "t", Path(d) / "x.png")
    finally:
        plt.Figure.savefig = real_savefig
    ticks, labels = captured["ticks"], captured["labels"]
    assert 3 <= len(ticks) <= 10, ticks
    import matplotlib.dates as mdates

    for t in ticks:
        when = mdates.num2date(t)
        assert when.second == 0 and when.microsecond == 0 and when.minute % 5 == 0, when
    assert len(labels) == len(set(labels)), labels  # no label repeated


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
    assert "wrote" in r.stdout and len(_chart_data((tmp_path / "c.html").read_text())["series"][0]["candles"]) >= 1
