"""`k2 chart`: candlestick charts with volume from the gold candles.

    k2 chart BTC/USD --interval 1m --out btc.html                    # cross-exchange, self-contained HTML
    k2 chart BTC/USD --interval 5m --exchange kraken,coinbase --out btc.png   # one panel per exchange

HTML is one file with inline SVG and no JavaScript: every candle carries a tooltip with its exact
values, and a table below the chart lists them as stored (exact decimals). PNG uses matplotlib
(the optional `charts` extra). Prices are converted to float for drawing only.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

from k2.errors import K2Error
from k2.read import queries

FORMATS = (".png", ".html", ".htm")
#: candles drawn when --max-candles is not given (the newest; 0 = all)
DEFAULT_MAX_CANDLES = 1000
UP, DOWN = "#26a69a", "#ef5350"


@dataclass
class Candle:
    t: datetime
    open: str
    high: str
    low: str
    close: str
    volume: str
    buy_volume: str
    sell_volume: str
    trade_count: int
    vwap: str

    @property
    def o(self) -> float:
        return float(self.open)

    @property
    def h(self) -> float:
        return float(self.high)

    @property
    def l(self) -> float:  # noqa: E743 (candle vocabulary)
        return float(self.low)

    @property
    def c(self) -> float:
        return float(self.close)

    @property
    def v(self) -> float:
        return float(self.volume)


@dataclass
class Series:
    label: str  # exchange name, or "all venues"
    candles: list[Candle]
    available: int = 0  # candles in the range; more than len(candles) when --max-candles cut it


def check_output(path: Path) -> str:
    """The output kind; refuses a name K2 cannot write before any work (no folder is created)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise K2Error(f"--out must end in .png or .html (got {path.name!r})")
    if path.is_dir():
        raise K2Error(f"--out {path} is a directory")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise K2Error(f"--out {path}: folder {parent} does not exist")
    return "html" if suffix in (".html", ".htm") else "png"


def exchanges_arg(value: str | None) -> list[str]:
    """'all' (cross-exchange) or a comma list of exchanges, one panel each."""
    if value is None or value.strip().lower() in ("", "all"):
        return ["all"]
    names = [queries.check_exchange(v) for v in value.split(",") if v.strip()]
    return list(dict.fromkeys(names)) or ["all"]


def load_series(reader, symbol: str, interval: str, exchanges: Sequence[str], since: str | None,
                until: str | None, max_candles: int) -> list[Series]:
    out = []
    for ex in exchanges:
        page = queries.ohlcv_page(reader, symbol, interval, ex, since, until, fmt="json", limit=max_candles)
        candles = []
        for line in page.text.splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            candles.append(Candle(
                datetime.strptime(r["bucket"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc),
                str(r["open"]), str(r["high"]), str(r["low"]), str(r["close"]), str(r["volume"]),
                str(r.get("buy_volume", "0")), str(r.get("sell_volume", "0")), int(r.get("trade_count", 0)),
                str(r.get("vwap", "")),
            ))
        out.append(Series("all venues" if ex == "all" else ex, candles, page.total))
    if not any(s.candles for s in out):
        where = "cross-exchange" if list(exchanges) == ["all"] else ", ".join(exchanges)
        raise K2Error(f"no {interval} candles for {symbol} ({where}) in that time range")
    return [s for s in out if s.candles]


def title_of(symbol: str, interval: str, series: list[Series]) -> str:
    first = min(s.candles[0].t for s in series)
    last = max(s.candles[-1].t for s in series)
    return f"{symbol} {interval} candles, {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC"


# -- PNG --------------------------------------------------------------------------------------------
def render_png(series: list[Series], title: str, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
    except ImportError:
        raise K2Error("PNG charts need matplotlib: pip install 'k2[charts]' (or write --out FILE.html)") from None
    n = len(series)
    fig, axes = plt.subplots(2 * n, 1, figsize=(12, 4.2 * n + 0.6), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * n})
    for i, s in enumerate(series):
        ax, vax = axes[2 * i][0], axes[2 * i + 1][0]
        xs = [mdates.date2num(c.t) for c in s.candles]
        width = (min(b - a for a, b in zip(xs, xs[1:])) if len(xs) > 1 else 1 / 1440) * 0.7
        for x, c in zip(xs, s.candles):
            color = UP if c.c >= c.o else DOWN
            ax.vlines(x, c.l, c.h, color=color, linewidth=0.8)
            body = max(abs(c.c - c.o), (c.h - c.l) * 0.002 or 1e-12)
            ax.add_patch(Rectangle((x - width / 2, min(c.o, c.c)), width, body, facecolor=color, edgecolor=color))
            vax.bar(x, c.v, width=width, color=color, alpha=0.6)
        lo, hi = min(c.l for c in s.candles), max(c.h for c in s.candles)
        pad = (hi - lo) * 0.05 or abs(hi) * 0.001 or 1.0
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(xs[0] - width, xs[-1] + width)
        ax.set_ylabel(f"{s.label}\nprice")
        vax.set_ylabel("volume")
        for a in (ax, vax):
            a.grid(alpha=0.25)
    axes[-1][0].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    fig.autofmt_xdate()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- HTML (inline SVG, no JavaScript) ---------------------------------------------------------------
def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:,.8g}"


def svg_panel(s: Series, width: int = 1100, height: int = 420) -> str:
    left, right, top = 80, 20, 24
    price_h, gap, vol_h, bottom = int(height * 0.68), 14, int(height * 0.2), 36
    cs = s.candles
    lo, hi = min(c.l for c in cs), max(c.h for c in cs)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.001 or 1.0
    lo, hi = lo - pad, hi + pad
    vmax = max(c.v for c in cs) or 1.0
    plot_w = width - left - right
    step = plot_w / len(cs)
    body_w = max(1.0, step * 0.7)

    def py(p: float) -> float:
        return top + (hi - p) / (hi - lo) * price_h

    vtop = top + price_h + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
             f'role="img" aria-label="{html.escape(s.label)} candles">',
             f'<text x="{left}" y="16" class="label">{html.escape(s.label)}</text>']
    for t in _ticks(lo, hi):
        y = py(t)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" class="axis" text-anchor="end">{_fmt(t)}</text>')
    parts.append(f'<text x="{left - 6}" y="{vtop + 10}" class="axis" text-anchor="end">{_fmt(vmax)}</text>')
    label_every = max(1, len(cs) // 8)
    for i, c in enumerate(cs):
        x = left + (i + 0.5) * step
        color = UP if c.c >= c.o else DOWN
        y1, y2 = py(max(c.o, c.c)), py(min(c.o, c.c))
        vh = c.v / vmax * vol_h
        tip = (f"{c.t:%Y-%m-%d %H:%M} UTC&#10;open {c.open}&#10;high {c.high}&#10;low {c.low}&#10;close {c.close}"
               f"&#10;volume {c.volume} ({c.trade_count} trades)&#10;vwap {c.vwap}")
        parts.append(
            f'<g class="candle" data-t="{c.t:%Y-%m-%dT%H:%M:%SZ}"><title>{tip}</title>'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{py(c.h):.1f}" y2="{py(c.l):.1f}" stroke="{color}"/>'
            f'<rect x="{x - body_w / 2:.1f}" y="{y1:.1f}" width="{body_w:.1f}" height="{max(1.0, y2 - y1):.1f}" '
            f'fill="{color}"/>'
            f'<rect x="{x - body_w / 2:.1f}" y="{vtop + vol_h - vh:.1f}" width="{body_w:.1f}" height="{vh:.1f}" '
            f'fill="{color}" opacity="0.55"/></g>')
        if i % label_every == 0:
            parts.append(f'<text x="{x:.1f}" y="{height - bottom + 18}" class="axis" text-anchor="middle">'
                         f'{c.t:%m-%d %H:%M}</text>')
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{vtop + vol_h}" y2="{vtop + vol_h}" class="axisline"/>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(series: list[Series], title: str, path: Path) -> None:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for s in series:
        body.append(f'<section><h2>{html.escape(s.label)}</h2>{svg_panel(s)}')
        rows = "".join(
            f"<tr><td>{c.t:%Y-%m-%d %H:%M}</td><td>{c.open}</td><td>{c.high}</td><td>{c.low}</td><td>{c.close}</td>"
            f"<td>{c.volume}</td><td>{c.buy_volume}</td><td>{c.sell_volume}</td><td>{c.trade_count}</td>"
            f"<td>{c.vwap}</td></tr>" for c in s.candles)
        body.append(f"<details><summary>{len(s.candles)} candles (exact values)</summary><table><thead><tr>"
                    "<th>window (UTC)</th><th>open</th><th>high</th><th>low</th><th>close</th><th>volume</th>"
                    "<th>buy volume</th><th>sell volume</th><th>trades</th><th>vwap</th></tr></thead>"
                    f"<tbody>{rows}</tbody></table></details></section>")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="generator" content="k2 chart">
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }}
h1 {{ font-size: 18px; }} h2 {{ font-size: 15px; margin: 18px 0 4px; }}
svg .grid {{ stroke: #e5e5e5; }} svg .axisline {{ stroke: #999; }}
svg .axis {{ font-size: 11px; fill: #666; }} svg .label {{ font-size: 13px; fill: #333; font-weight: 600; }}
svg .candle:hover {{ opacity: 0.7; }}
table {{ border-collapse: collapse; font: 12px ui-monospace, monospace; margin-top: 8px; }}
td, th {{ border-bottom: 1px solid #eee; padding: 2px 8px; text-align: right; }}
</style></head><body>
{"".join(body)}
<p style="color:#888;font-size:12px">Hover a candle for its exact values. Generated by k2 chart.</p>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def chart(reader, symbol: str, interval: str, out: Path, exchange: str | None = "all", since: str | None = None,
          until: str | None = None, max_candles: int = DEFAULT_MAX_CANDLES) -> dict[str, Any]:
    """Draw the newest `max_candles` candles of each panel (0: all); returns what was drawn and how
    many candles the range held (for the CLI's report, which says when the chart was cut)."""
    kind = check_output(out)
    queries.check_interval(interval)
    if max_candles < 0:
        raise K2Error("--max-candles must be 0 (all) or a positive number")
    if kind == "png":  # fail before querying when matplotlib is missing
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise K2Error("PNG charts need matplotlib: pip install 'k2[charts]' (or write --out FILE.html)") from None
    series = load_series(reader, symbol, interval, exchanges_arg(exchange), since, until, max_candles)
    title = title_of(symbol.upper(), interval, series)
    (render_png if kind == "png" else render_html)(series, title, out)
    return {"path": str(out), "panels": [s.label for s in series], "candles": sum(len(s.candles) for s in series),
            "available": sum(s.available for s in series)}
