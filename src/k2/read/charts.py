"""`k2 chart`: candlestick charts with volume from the gold candles.

    k2 chart BTC/USD --interval 1m --out btc.html                    # cross-exchange, self-contained HTML
    k2 chart BTC/USD --interval 5m --exchange kraken,coinbase --out btc.png   # one panel per exchange

HTML is one self-contained file (TradingView Lightweight Charts and the data inline, nothing
fetched: it works offline): zoom, pan, crosshair with an OHLCV legend, a volume pane, a UTC time
axis; venues stacked (linked time axes) or overlaid on one price axis (--overlay). Tables under
the chart list the candles as stored (exact decimals). PNG uses matplotlib (the optional `charts`
extra). Prices are converted to float for drawing only.
"""

from __future__ import annotations

import html
import json
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
def render_png(series: list[Series], title: str, path: Path, overlay: bool = False) -> None:
    """Candles over volume per venue (stacked), or the venues' closes on one price axis (overlay).
    Time ticks come from matplotlib's date locator (whole minutes, hours, days) and are written
    once, under the last axis, concisely (the date only where it changes)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.dates as mdates
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle
        from matplotlib.ticker import EngFormatter, StrMethodFormatter
    except ImportError:
        raise K2Error("PNG charts need matplotlib: pip install 'k2[charts]' (or write --out FILE.html)") from None
    overlay = overlay and len(series) > 1
    groups = [series] if overlay else [[s] for s in series]
    n = len(groups)
    fig, axes = plt.subplots(2 * n, 1, figsize=(12, 4.2 * n + 0.6), sharex=True, squeeze=False,
                             gridspec_kw={"height_ratios": [3, 1] * n})
    for i, group in enumerate(groups):
        ax, vax = axes[2 * i][0], axes[2 * i + 1][0]
        lo = min(c.l for s in group for c in s.candles)
        hi = max(c.h for s in group for c in s.candles)
        for k, s in enumerate(group):
            xs = [mdates.date2num(c.t) for c in s.candles]
            width = (min(b - a for a, b in zip(xs, xs[1:])) if len(xs) > 1 else 1 / 1440) * 0.7
            if overlay:
                color = PALETTE[k % len(PALETTE)]
                ax.plot(xs, [c.c for c in s.candles], color=color, linewidth=1.4, label=s.label)
                vax.bar(xs, [c.v for c in s.candles], width=width, color=color, alpha=0.45, label=s.label)
                continue
            for x, c in zip(xs, s.candles):
                color = UP if c.c >= c.o else DOWN
                ax.vlines(x, c.l, c.h, color=color, linewidth=0.8)
                body = max(abs(c.c - c.o), (c.h - c.l) * 0.002 or 1e-12)
                ax.add_patch(Rectangle((x - width / 2, min(c.o, c.c)), width, body, facecolor=color,
                                       edgecolor=color))
                vax.bar(x, c.v, width=width, color=color, alpha=0.6)
            ax.set_xlim(xs[0] - width, xs[-1] + width)
        pad = (hi - lo) * 0.05 or abs(hi) * 0.001 or 1.0
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_ylabel("close" if overlay else f"{group[0].label}\nprice")
        ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.2f}"))
        vax.set_ylabel("volume")
        vax.yaxis.set_major_formatter(EngFormatter(sep=""))
        vax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(3))
        if overlay:
            ax.legend(loc="upper left", fontsize=9, frameon=False)
        for a in (ax, vax):
            a.grid(alpha=0.25)
    bottom = axes[-1][0]
    locator = mdates.AutoDateLocator(minticks=4, maxticks=9, tz=timezone.utc)
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=timezone.utc, show_offset=True))
    bottom.set_xlabel("UTC")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# -- HTML (TradingView Lightweight Charts, inlined) ---------------------------------------------------
#: the charting library, vendored (Apache-2.0, its licence beside it): inlined into every page, so
#: one file works offline and fetches nothing (docs/adr/0024)
LIBRARY = Path(__file__).with_name("vendor") / "lightweight-charts.standalone.production.js"
#: venue colours when several are overlaid on one price axis
PALETTE = ("#2962ff", "#ff6d00", "#2e7d32", "#8e24aa", "#c62828", "#00838f", "#6d4c41", "#f9a825")


def _places(values: list[str]) -> int:
    """Decimal places the prices need (trailing zeros dropped), 2 to 8: the price axis and legend."""
    need = max((len(v.partition(".")[2].rstrip("0")) for v in values), default=2)
    return min(max(need, 2), 8)


def _series_json(s: Series) -> dict[str, Any]:
    cs = s.candles
    return {
        "label": s.label,
        "places": _places([v for c in cs for v in (c.open, c.high, c.low, c.close)]),
        # drawing needs numbers; the exact values are the table under the chart
        "candles": [{"time": int(c.t.timestamp()), "open": c.o, "high": c.h, "low": c.l, "close": c.c} for c in cs],
        "volume": [{"time": int(c.t.timestamp()), "value": c.v} for c in cs],
        "exact": [[f"{c.t:%Y-%m-%d %H:%M}", c.open, c.high, c.low, c.close, c.volume, c.trade_count, c.vwap]
                  for c in cs],
    }


_SCRIPT = """
(function () {
  const K = LightweightCharts, data = JSON.parse(document.getElementById("k2-data").textContent);
  const UP = "%(up)s", DOWN = "%(down)s", PALETTE = %(palette)s;
  const pad = (n) => String(n).padStart(2, "0");
  const utc = (t) => { const d = new Date(t * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " " +
           pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + " UTC"; };
  const options = (places) => ({
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#333", fontSize: 12,
              panes: { separatorColor: "#ddd", enableResize: true } },
    grid: { vertLines: { color: "#f0f0f0" }, horzLines: { color: "#f0f0f0" } },
    crosshair: { mode: K.CrosshairMode.Normal },
    rightPriceScale: { borderColor: "#ccc" },
    timeScale: { borderColor: "#ccc", timeVisible: true, secondsVisible: false },
    localization: { timeFormatter: utc, priceFormatter: (p) => p.toLocaleString("en-US",
                    { minimumFractionDigits: places, maximumFractionDigits: places }) },
  });
  const fmtVol = (v) => v.toLocaleString("en-US", { maximumSignificantDigits: 6 });
  const charts = [];
  function panel(el, legend, series, overlay) {
    const places = Math.max(...series.map((s) => s.places));
    const chart = K.createChart(el, options(places));
    const priceSeries = series.map((s, i) => {
      const color = PALETTE[i %% PALETTE.length];
      const price = overlay
        ? chart.addSeries(K.LineSeries, { color, lineWidth: 2, title: s.label,
                                          priceFormat: { type: "price", precision: places, minMove: Math.pow(10, -places) } })
        : chart.addSeries(K.CandlestickSeries, { upColor: UP, downColor: DOWN, borderVisible: false,
                                                 wickUpColor: UP, wickDownColor: DOWN,
                                                 priceFormat: { type: "price", precision: places, minMove: Math.pow(10, -places) } });
      price.setData(overlay ? s.candles.map((c) => ({ time: c.time, value: c.close })) : s.candles);
      const vol = chart.addSeries(K.HistogramSeries, { priceFormat: { type: "volume" }, priceLineVisible: false,
                                                       lastValueVisible: false, title: overlay ? s.label : "volume" }, 1);
      vol.setData(s.volume.map((v, j) => ({ time: v.time, value: v.value,
        color: overlay ? color + "99" : (s.candles[j].close >= s.candles[j].open ? UP + "99" : DOWN + "99") })));
      return { s, price, vol, color };
    });
    chart.panes()[1].setHeight(Math.round(el.clientHeight * 0.22));
    chart.timeScale().fitContent();
    const show = (param) => {
      const parts = priceSeries.map(({ s, price, vol, color }) => {
        const p = param && param.seriesData ? param.seriesData.get(price) : null;
        const v = param && param.seriesData ? param.seriesData.get(vol) : null;
        const c = p || s.candles[s.candles.length - 1];
        const o = c.open !== undefined ? c : s.candles.find((x) => x.time === c.time);
        const f = (x) => x.toLocaleString("en-US", { minimumFractionDigits: places, maximumFractionDigits: places });
        const vv = v ? v.value : s.volume[s.volume.length - 1].value;
        return '<b style="color:' + (overlay ? color : "#333") + '">' + s.label + "</b> " +
          "O " + f(o.open) + " H " + f(o.high) + " L " + f(o.low) + " C " + f(o.close) + " V " + fmtVol(vv);
      });
      const t = param && param.time ? param.time : series[0].candles[series[0].candles.length - 1].time;
      legend.innerHTML = utc(t) + " &middot; " + parts.join(" &middot; ");
    };
    chart.subscribeCrosshairMove(show);
    show(null);
    charts.push(chart);
  }
  const root = document.getElementById("k2-charts");
  const groups = data.overlay ? [data.series] : data.series.map((s) => [s]);
  groups.forEach((series) => {
    const box = document.createElement("section");
    const h = document.createElement("h2");
    h.textContent = data.overlay ? "overlaid: " + series.map((s) => s.label).join(", ") : series[0].label;
    const legend = document.createElement("div"); legend.className = "legend";
    const el = document.createElement("div"); el.className = "chart";
    box.append(h, legend, el); root.append(box);
    panel(el, legend, series, data.overlay);
  });
  // stacked panels move together: zoom or pan one, the others follow
  charts.forEach((c) => c.timeScale().subscribeVisibleLogicalRangeChange((range) => {
    if (!range) return;
    charts.forEach((o) => { if (o !== c) o.timeScale().setVisibleLogicalRange(range); });
  }));
})();
"""


def render_html(series: list[Series], title: str, path: Path, overlay: bool = False) -> None:
    """One self-contained page: the library and the data inline, nothing fetched. Stacked (a chart
    per venue, time axes linked) or overlaid (venues' closes on one price axis); each chart has a
    volume pane, zoom (wheel), pan (drag), a crosshair with an OHLCV legend and a UTC time axis.
    The exact stored values follow in a table per venue."""
    doc = {"overlay": overlay and len(series) > 1, "series": [_series_json(s) for s in series]}
    tables = []
    for s in series:
        rows = "".join(
            f"<tr><td>{c.t:%Y-%m-%d %H:%M}</td><td>{c.open}</td><td>{c.high}</td><td>{c.low}</td><td>{c.close}</td>"
            f"<td>{c.volume}</td><td>{c.buy_volume}</td><td>{c.sell_volume}</td><td>{c.trade_count}</td>"
            f"<td>{c.vwap}</td></tr>" for c in s.candles)
        tables.append(f"<details><summary>{html.escape(s.label)}: {len(s.candles)} candles (exact values)</summary>"
                      "<table><thead><tr><th>window (UTC)</th><th>open</th><th>high</th><th>low</th><th>close</th>"
                      "<th>volume</th><th>buy volume</th><th>sell volume</th><th>trades</th><th>vwap</th></tr>"
                      f"</thead><tbody>{rows}</tbody></table></details>")
    script = _SCRIPT % {"up": UP, "down": DOWN, "palette": json.dumps(PALETTE)}
    data = json.dumps(doc, separators=(",", ":")).replace("</", "<\\/")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<meta name="generator" content="k2 chart">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 14px system-ui, sans-serif; margin: 20px; color: #222; background: #fff; }}
h1 {{ font-size: 18px; margin: 0 0 8px; }} h2 {{ font-size: 15px; margin: 16px 0 2px; }}
.chart {{ height: 460px; width: 100%; }}
.legend {{ font: 12px ui-monospace, monospace; color: #444; min-height: 1.4em; }}
table {{ border-collapse: collapse; font: 12px ui-monospace, monospace; margin-top: 8px; }}
td, th {{ border-bottom: 1px solid #eee; padding: 2px 8px; text-align: right; }}
.hint {{ color: #888; font-size: 12px; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<div id="k2-charts"></div>
<p class="hint">Wheel or pinch to zoom, drag to pan, double-click the time axis to reset. Times are UTC.
Charts by TradingView Lightweight Charts (Apache-2.0).</p>
{"".join(tables)}
<script id="k2-data" type="application/json">{data}</script>
<script>{LIBRARY.read_text(encoding="utf-8")}</script>
<script>{script}</script>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def chart(reader, symbol: str, interval: str, out: Path, exchange: str | None = "all", since: str | None = None,
          until: str | None = None, max_candles: int = DEFAULT_MAX_CANDLES, overlay: bool = False) -> dict[str, Any]:
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
    if kind == "png":
        render_png(series, title, out, overlay)
    else:
        render_html(series, title, out, overlay)
    return {"path": str(out), "panels": [s.label for s in series], "candles": sum(len(s.candles) for s in series),
            "available": sum(s.available for s in series)}
