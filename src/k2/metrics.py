"""Prometheus text exposition of the running pipeline's counters (no client library needed:
the values already live in the feed's and writer's stats objects)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Iterable


def _esc(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(name: str, labels: dict[str, Any], value: float) -> str:
    if labels:
        inner = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


class Exposition:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, Any], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        self.lines.extend(_sample(name, labels, value) for labels, value in samples)

    def render(self) -> bytes:
        return ("\n".join(self.lines) + "\n").encode()


def render(pipeline) -> bytes:
    now = time.time()
    stats = pipeline.runtime.connection_stats()
    e = Exposition()
    e.family("k2_trades_received_total", "counter", "Trades received from the exchange (after de-duplication).",
             (({"exchange": s.exchange, "symbol": sym}, n) for s in stats for sym, n in s.trades_by_symbol.items()))
    writer = getattr(pipeline.transport, "stats", None)
    if writer is not None:
        e.family("k2_trades_written_total", "counter", "Trades written to bronze.",
                 (({"exchange": ex}, n) for ex, n in writer.written.items()))
    e.family("k2_feed_connected", "gauge", "1 when the connection is up.",
             (({"exchange": s.exchange, "connection": s.connection}, int(s.connected)) for s in stats))
    reconnects: dict[str, int] = defaultdict(int)
    rejects: dict[str, int] = defaultdict(int)
    for s in stats:
        reconnects[s.exchange] += s.reconnects
        rejects[s.exchange] += s.rejects
    e.family("k2_reconnects_total", "counter", "Reconnects per exchange.",
             (({"exchange": ex}, n) for ex, n in reconnects.items()))
    e.family("k2_last_trade_age_seconds", "gauge", "Seconds since the last trade of each symbol.",
             (({"exchange": s.exchange, "symbol": sym}, round(now - t, 3))
              for s in stats for sym, t in s.last_trade_by_symbol.items()))
    e.family("k2_rejects_total", "counter", "Frames that could not be parsed (kept in the rejects table).",
             (({"exchange": ex}, n) for ex, n in rejects.items()))
    return e.render()
