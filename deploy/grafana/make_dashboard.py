#!/usr/bin/env python3
"""Writes deploy/grafana/dashboards/k2.json, the provisioned "K2" dashboard (the JSON is committed;
edit this file and run it again). Panels over K2's Prometheus metrics (feeds, ingest, sink,
process) and over the ClickHouse warehouse (candles, trades/s per exchange, rejects); and
k2-embedded.json, the same with its warehouse panels on K2's own read endpoint (k2 run, k2 serve).
tests/test_deploy.py checks that every PromQL expression names metrics K2 exposes."""

from __future__ import annotations

import json
from pathlib import Path

PROM = {"type": "prometheus", "uid": "k2-prometheus"}
CH = {"type": "grafana-clickhouse-datasource", "uid": "k2-clickhouse"}
#: the embedded store's datasource: K2's own ClickHouse-compatible endpoint (k2 run, k2 serve)
EMBEDDED = {"type": "grafana-clickhouse-datasource", "uid": "k2-embedded"}
OUT = Path(__file__).parent / "dashboards" / "k2.json"
OUT_EMBEDDED = Path(__file__).parent / "dashboards" / "k2-embedded.json"
CH_TIMESERIES, CH_TABLE = 0, 1  # the ClickHouse plugin's query formats

_ids = iter(range(1, 1000))


def prom(expr: str, legend: str = "", ref: str = "A") -> dict:
    return {"refId": ref, "datasource": PROM, "expr": expr, "legendFormat": legend, "range": True}


def ch(sql: str, fmt: int = CH_TIMESERIES, ref: str = "A") -> dict:
    return {"refId": ref, "datasource": CH, "editorType": "sql", "format": fmt,
            "queryType": "timeseries" if fmt == CH_TIMESERIES else "table", "rawSql": " ".join(sql.split())}


def panel(title: str, kind: str, targets: list[dict], x: int, y: int, w: int = 12, h: int = 8,
          unit: str = "short", description: str = "", **extra) -> dict:
    p = {
        "id": next(_ids), "title": title, "type": kind, "description": description,
        "datasource": targets[0]["datasource"], "targets": targets,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
    }
    if kind == "timeseries":
        p["options"] = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull", "max"]},
                        "tooltip": {"mode": "multi"}}
    p.update(extra)
    return p


def row(title: str, y: int) -> dict:
    return {"id": next(_ids), "type": "row", "title": title, "collapsed": False,
            "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []}


def build() -> dict:
    panels = [
        row("Feeds", 0),
        panel("Connections up", "stat", [prom('sum(k2_feed_connected{exchange=~"$exchange"})', "up")], 0, 1, 4, 4,
              description="WebSocket connections currently up.",
              fieldConfig={"defaults": {"unit": "short", "thresholds": {"mode": "absolute", "steps": [
                  {"color": "red", "value": None}, {"color": "green", "value": 1}]}}, "overrides": []}),
        panel("Connections down", "stat", [prom('count(k2_feed_connected{exchange=~"$exchange"} == 0) or vector(0)',
                                                "down")], 4, 1, 4, 4,
              fieldConfig={"defaults": {"unit": "short", "thresholds": {"mode": "absolute", "steps": [
                  {"color": "green", "value": None}, {"color": "red", "value": 1}]}}, "overrides": []}),
        panel("Healthy processes", "stat", [prom("sum(k2_up)", "healthy")], 8, 1, 4, 4,
              description="Processes whose /healthz is 200 (every feed connected and fresh)."),
        panel("Reconnects (1 h)", "stat", [prom('sum(increase(k2_reconnects_total{exchange=~"$exchange"}[1h]))',
                                                "reconnects")], 12, 1, 4, 4),
        panel("Rejects (1 h)", "stat", [prom('sum(increase(k2_rejects_total{exchange=~"$exchange"}[1h]))',
                                             "rejects")], 16, 1, 4, 4),
        panel("Sink lag", "stat", [prom("sum(k2_sink_lag_messages) or vector(0)", "messages")], 20, 1, 4, 4),
        panel("Trades/s received and written", "timeseries", [
            prom('sum by (exchange) (rate(k2_trades_received_total{exchange=~"$exchange"}[1m]))', "{{exchange}} received"),
            prom('sum by (exchange) (rate(k2_trades_written_total{exchange=~"$exchange"}[1m]))', "{{exchange}} written",
                 "B"),
        ], 0, 5, unit="ops"),
        panel("Trades/s by symbol", "timeseries", [
            prom('sum by (exchange, symbol) (rate(k2_trades_received_total{exchange=~"$exchange"}[1m]))',
                 "{{exchange}} {{symbol}}"),
        ], 12, 5, unit="ops"),
        panel("Seconds since last trade", "timeseries", [
            prom('k2_last_trade_age_seconds{exchange=~"$exchange"}', "{{exchange}} {{symbol}}"),
        ], 0, 13, unit="s", description="Alert K2SymbolStale fires when a symbol is silent for longer than its own "
                                         "trade rate allows (Markets row: stale ratio)."),
        panel("Connection state", "state-timeline", [
            prom('k2_feed_connected{exchange=~"$exchange"}', "{{connection}}"),
        ], 12, 13, fieldConfig={"defaults": {"unit": "short", "mappings": [
            {"type": "value", "options": {"0": {"text": "down", "color": "red"}, "1": {"text": "up", "color": "green"}}}
        ]}, "overrides": []}),
        row("Ingest", 21),
        panel("Ingest latency (insert time - exchange time)", "timeseries", [
            prom('histogram_quantile(0.5, sum by (exchange, le) (rate(k2_ingest_latency_seconds_bucket{exchange=~"$exchange"}[5m])))',
                 "{{exchange}} p50"),
            prom('histogram_quantile(0.99, sum by (exchange, le) (rate(k2_ingest_latency_seconds_bucket{exchange=~"$exchange"}[5m])))',
                 "{{exchange}} p99", "B"),
        ], 0, 22, unit="s", description="Alert K2IngestLatencyHigh fires when p99 > 1 s for 5 minutes."),
        panel("Rejects by reason", "timeseries", [
            prom('sum by (exchange, reason) (rate(k2_rejects_total{exchange=~"$exchange"}[5m])) * 60',
                 "{{exchange}} {{reason}}"),
        ], 12, 22, unit="short", description="Rejected frames per minute (kept in the rejects table)."),
        panel("Writer", "timeseries", [
            prom("k2_transport_buffered", "{{instance}} buffered"),
            prom("rate(k2_writer_insert_errors_total[5m]) * 60", "{{instance}} insert errors/min", "B"),
        ], 0, 30, unit="short"),
        panel("Gaps", "timeseries", [
            prom('sum by (exchange, state) (k2_gaps_total{exchange=~"$exchange"})', "{{exchange}} {{state}}"),
        ], 12, 30, unit="short"),
        panel("Sink lag by topic", "timeseries", [
            prom("sum by (topic) (k2_sink_lag_messages)", "{{topic}}"),
        ], 0, 38, unit="short", description="Alert K2SinkLagGrowing fires above 10k messages and growing."),
        panel("Process memory and CPU", "timeseries", [
            prom("process_resident_memory_bytes{job=~\"k2.*\"}", "{{instance}} RSS"),
        ], 12, 38, unit="bytes"),
        row("Warehouse (ClickHouse)", 46),
        panel("Candles: $symbol ($interval, all venues)", "candlestick", [
            ch("""SELECT window_start AS time, toFloat64(open_price) AS open, toFloat64(high_price) AS high,
                  toFloat64(low_price) AS low, toFloat64(close_price) AS close, toFloat64(volume) AS volume
                  FROM k2.ohlcv_${interval}_cross
                  WHERE canonical_symbol = '${symbol}' AND $__timeFilter(window_start)
                  ORDER BY time""", CH_TABLE),
        ], 0, 47, 24, 12, unit="none",
            description="Gold candles from the cross-exchange view (display only: Float64 here, exact "
                        "decimals in the warehouse).",
            options={"mode": "candles+volume", "candleStyle": "candles", "colorStrategy": "open-close",
                     "colors": {"up": "green", "down": "red"}, "includeAllFields": False}),
        panel("Trades/s per exchange (silver)", "timeseries", [
            ch("""SELECT $__timeInterval(timestamp) AS time, exchange, count() / $__interval_s AS trades_per_s
                  FROM k2.silver_trades_v2 WHERE $__timeFilter(timestamp)
                  GROUP BY time, exchange ORDER BY time"""),
        ], 0, 59, unit="ops", description="Counted from silver by exchange time."),
        panel("Volume per exchange: $symbol", "timeseries", [
            ch("""SELECT window_start AS time, exchange, toFloat64(volume) AS volume
                  FROM k2.ohlcv_${interval}
                  WHERE canonical_symbol = '${symbol}' AND $__timeFilter(window_start)
                  ORDER BY time"""),
        ], 12, 59, unit="short"),
        panel("Latest candles: $symbol", "table", [
            ch("""SELECT window_start, exchange, open_price, high_price, low_price, close_price, volume,
                  trade_count, vwap FROM k2.ohlcv_${interval}
                  WHERE canonical_symbol = '${symbol}' ORDER BY window_start DESC, exchange LIMIT 50""", CH_TABLE),
        ], 0, 67, 12, 10, unit="none"),
        panel("Rejects (warehouse)", "table", [
            ch("""SELECT exchange, source, reason, count() AS n, max(received_at) AS last
                  FROM k2.rejects WHERE $__timeFilter(received_at)
                  GROUP BY exchange, source, reason ORDER BY n DESC LIMIT 50""", CH_TABLE),
        ], 12, 67, 12, 10, unit="none"),
        panel("Reconciliation with the venues' candles", "timeseries", [
            prom('sum by (exchange, verdict) (increase(k2_reconcile_windows_total{exchange=~"$exchange"}[1h]))',
                 "{{exchange}} {{verdict}}"),
        ], 0, 77, unit="short",
            description="1m windows k2 run compared with the venue's own candles (K2_RECONCILE=on), by verdict. "
                        "Alert K2ReconcileUnexplained fires on missing, extra or unexplained windows."),
        panel("Reconciliation: windows not explained", "table", [
            ch("""SELECT window_start, exchange, symbol, interval, toString(verdict) AS verdict, cause,
                  arrayStringConcat(fields, ' ') AS fields, checked_at
                  FROM k2.reconciliation FINAL WHERE verdict IN ('missing', 'extra', 'unexplained')
                  ORDER BY window_start DESC LIMIT 50""", CH_TABLE),
        ], 12, 77, 12, 8, unit="none",
            description="The last check of each window (k2 reconcile, or k2 run with K2_RECONCILE=on)."),
        row("Markets: venue health and cross-venue dislocations", 85),
        panel("Venue health", "state-timeline", [
            prom('k2_venue_healthy{exchange=~"$exchange"} + 2 * k2_venue_maintenance{exchange=~"$exchange"}',
                 "{{exchange}}"),
        ], 0, 86, description="k2 health per venue: unhealthy = down or symbols stale; maintenance = the venue's "
                              "own status endpoint says so (alerts K2VenueUnhealthy, K2VenueMaintenance).",
            fieldConfig={"defaults": {"unit": "short", "mappings": [
                {"type": "value", "options": {"0": {"text": "unhealthy", "color": "red"},
                                              "1": {"text": "healthy", "color": "green"},
                                              "2": {"text": "maintenance", "color": "blue"},
                                              "3": {"text": "maintenance", "color": "blue"}}}]}, "overrides": []}),
        panel("Silence against each symbol's own rate", "timeseries", [
            prom('k2_symbol_stale_ratio{exchange=~"$exchange"}', "{{exchange}} {{symbol}}"),
        ], 12, 86, unit="short", description="Seconds since the last trade over the symbol's stale threshold (10 "
                                             "typical intervals, at least 5 s): 1 or more is stale (K2SymbolStale)."),
        panel("Live spreads between venues (last trades, bp)", "timeseries", [
            prom("k2_spread_bps", "{{symbol}} {{venue_b}} over {{venue_a}}"),
            prom('k2_price_divergence_bps{exchange=~"$exchange"}', "{{exchange}} {{symbol}} vs median", "B"),
        ], 0, 94, unit="short", description="From each venue's last trade: a signal (no quotes, fees or transfer "
                                            "time), not a tradeable edge. K2Dislocation fires above 50 bp for 2 min."),
        panel("Spreads per minute: $symbol (warehouse, bp)", "timeseries", [
            ch("""SELECT window_start AS time, concat(venue_b, ' over ', venue_a) AS pair,
                  toFloat64(last_spread_bps) AS bps
                  FROM k2.spreads_1m WHERE canonical_symbol = '${symbol}' AND $__timeFilter(window_start)
                  ORDER BY time"""),
        ], 12, 94, unit="short", description="spreads_1m: exact decimals in the warehouse (Float64 for display); "
                                             "k2 spreads prints the windows with both sides' prices and counts."),
    ]
    templating = [
        {"name": "exchange", "label": "Exchange", "type": "query", "datasource": PROM,
         "query": {"query": "label_values(k2_trades_received_total, exchange)", "refId": "exchange"},
         "definition": "label_values(k2_trades_received_total, exchange)",
         "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
         "current": {"text": "All", "value": "$__all"}},
        {"name": "symbol", "label": "Symbol", "type": "query", "datasource": CH,
         "query": "SELECT DISTINCT canonical_symbol FROM k2.gold_ohlcv_1h ORDER BY canonical_symbol",
         "definition": "SELECT DISTINCT canonical_symbol FROM k2.gold_ohlcv_1h ORDER BY canonical_symbol",
         "refresh": 1, "current": {"text": "BTC/USD", "value": "BTC/USD"}},
        {"name": "interval", "label": "Candle", "type": "custom", "query": "1m,5m,15m,1h,1d",
         "current": {"text": "1m", "value": "1m"},
         "options": [{"text": i, "value": i, "selected": i == "1m"} for i in ("1m", "5m", "15m", "1h", "1d")]},
    ]
    return {
        "uid": "k2-overview", "title": "K2", "tags": ["k2", "crypto", "clickhouse"],
        "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": True, "graphTooltip": 1,
        "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": templating}, "annotations": {"list": []}, "links": [],
        "panels": panels,
    }


def build_embedded() -> dict:
    """The same dashboard with its warehouse panels on the "K2 (embedded)" datasource: the
    ClickHouse-compatible read endpoint of `k2 run` / `k2 serve` (no ClickHouse server needed)."""
    board = json.loads(json.dumps(build()).replace(f'"uid": "{CH["uid"]}"', f'"uid": "{EMBEDDED["uid"]}"'))
    board.update(uid="k2-embedded", title="K2 (embedded: k2 run / k2 serve)")
    return board


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    OUT_EMBEDDED.write_text(json.dumps(build_embedded(), indent=2) + "\n")
    print(f"wrote {OUT} and {OUT_EMBEDDED}")


if __name__ == "__main__":
    main()
