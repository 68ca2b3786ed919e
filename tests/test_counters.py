"""Counters mean one thing everywhere (issue 23, items 7 and 8): the run summary says what the
metrics say; a reconnect is a connection that was up and went down, a failed attempt is counted
apart (so an outage is no "reconnect storm"); a network failure is one log line with the endpoint
and the next retry, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from types import SimpleNamespace

from k2.exchanges import get_adapter
from k2.feed.backoff import Backoff
from k2.feed.connection import FeedConnection
from k2.feed.recent import RecentTrades
from k2.monitoring.metrics import render
from k2.services.pipeline import Pipeline
from k2.simulator.process import SimulatorProcess


class _Sink:
    def __init__(self) -> None:
        self.trades = 0

    def submit(self, adapter, rows, source: str = "ws") -> None:
        self.trades += len(rows)

    def submit_reject(self, reject) -> None:
        pass


def _connection(url: str, backoff: Backoff, symbols=("XBT/USD",)) -> FeedConnection:
    adapter = get_adapter("kraken")
    return FeedConnection(adapter, url, list(symbols), "kraken-0", _Sink(),
                          RecentTrades(adapter.symbol_index, adapter.trade_key_index, len(symbols)), backoff)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _run_for(conn: FeedConnection, seconds: float) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(conn.run(stop))
    try:
        await asyncio.wait_for(asyncio.shield(task), seconds)
    except asyncio.TimeoutError:
        stop.set()
        await asyncio.wait_for(task, 30)


def test_failed_attempts_are_not_reconnects_and_each_is_one_line(caplog):
    url = f"ws://127.0.0.1:{_closed_port()}"
    conn = _connection(url, Backoff(0.05, 0.1, max_attempts=3))
    with caplog.at_level(logging.INFO, logger="k2.feed"):
        asyncio.run(_run_for(conn, 30))
    assert conn.stats.gave_up
    assert (conn.stats.reconnects, conn.stats.connect_failures) == (0, 4)
    lines = [r for r in caplog.records if r.name == "k2.feed" and r.levelno >= logging.WARNING]
    assert len(lines) == 4 and all(r.exc_info is None for r in lines)  # no traceback
    for n, record in enumerate(lines[:3], 1):
        assert re.fullmatch(rf"kraken-0: cannot connect to {url}: connection refused; retry {n} in \d+\.\d s",
                            record.getMessage()), record.getMessage()
    assert lines[-1].getMessage() == f"kraken-0: cannot connect to {url}: connection refused; giving up after 3 attempts"


def test_reconnects_count_connections_that_were_up_and_went_down(caplog):
    with SimulatorProcess("--exchange", "kraken", "--rate", "20", "--drop-every", "1") as sim:
        conn = _connection(sim.urls["kraken"]["ws"], Backoff(0.05, 0.1))
        with caplog.at_level(logging.INFO, logger="k2.feed"):
            asyncio.run(_run_for(conn, 4.5))
    assert conn.stats.reconnects >= 2 and conn.stats.connect_failures == 0, vars(conn.stats)
    lost = [r.getMessage() for r in caplog.records if "connection to" in r.getMessage()]
    assert lost and all(re.fullmatch(r"kraken-0: connection to ws://\S+ lost( \(.*\))?; reconnecting in \S+ s", m)
                        for m in lost), lost


def _metric(text: str, name: str, exchange: str) -> int:
    m = re.search(rf'^{name}{{exchange="{exchange}"}} (\d+)$', text, re.M)
    assert m, f"{name} for {exchange} not in the exposition"
    return int(m.group(1))


def test_the_run_summary_says_what_the_metrics_say():
    """It printed the writer's count as "duplicates dropped" (0) while the metric said thousands."""
    conns = [SimpleNamespace(exchange="kraken", connection=f"kraken-{i}", connected=True, last_message_at=1.0,
                             trades=1000, trades_by_symbol={"XBT/USD": 1000}, last_trade_by_symbol={"XBT/USD": 1.0},
                             reconnects=3, connect_failures=28, rejects=2, duplicates=1234 + i, ever_connected=True)
             for i in range(2)]
    writer = SimpleNamespace(written={"kraken": 2000}, duplicates={"kraken": 0}, insert_errors=0, batches=4,
                             last_insert_s=0.1, rejects_written=4, rejects_by_reason={}, lag={})
    pipeline = SimpleNamespace(
        runtime=SimpleNamespace(connection_stats=lambda: conns, healthy=lambda: True, gaps=[]),
        transport=SimpleNamespace(stats=writer, name="direct", buffered=0), store=None, exchanges=["kraken"])
    summary = Pipeline._summary(pipeline, 10.0, 0)
    text, metrics = summary.text(), render(pipeline).decode()
    dropped = _metric(metrics, "k2_feed_duplicates_dropped_total", "kraken")
    assert dropped == 2469 and "2,469 duplicates dropped" in text
    assert _metric(metrics, "k2_reconnects_total", "kraken") == 6 and "reconnects: 6" in text
    assert _metric(metrics, "k2_connect_failures_total", "kraken") == 56 and "failed connection attempts: 56" in text
    assert "already stored" not in text  # the writer skipped none
