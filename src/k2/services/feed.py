"""`k2 feed`: live trades into Kafka/Redpanda, with no warehouse in this process.

The feed pipeline (k2.services.pipeline) with the Kafka producer and no store: gap-ledger versions
travel on the gaps topic for the sink to write. Before it subscribes, the feed reads what the
broker already holds (k2.transport.kafka_history): the last trade per symbol, so the trades of its
own downtime become a gap that REST backfill fills, and the gaps an earlier feed left open. Everything this module imports stays clear of
chDB, pyarrow and numpy (a feed has a 100 MB budget; tests/test_layout.py walks its imports).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from k2.config import Settings
from k2.errors import K2Error
from k2.services.lifecycle import stop_on_signals, tune_gc_for_streaming
from k2.services.pipeline import Pipeline, RunSummary, adapters_for
from k2.feed.runtime import resolve_symbols
from k2.transport.kafka_common import DEFAULT_PARTITIONS
from k2.transport.kafka_history import HISTORY_TIMEOUT_S, read_broker_history
from k2.transport.kafka_producer import KafkaTransport


def run_feed(settings: Settings, exchanges: list[str], bootstrap: str, duration: float | None = None,
             partitions: int = DEFAULT_PARTITIONS, replication_factor: int | None = None,
             progress: bool | None = None, history_timeout_s: float | None = None) -> RunSummary:
    """Wait for the broker (SIGINT/SIGTERM stop the wait), read what it holds, then run until stopped."""
    adapters = adapters_for(settings, exchanges)
    transport = KafkaTransport(bootstrap, settings.kafka_options, adapters,
                               Path(settings.data_dir), max_buffered=settings.queue_max_rows,
                               partitions=partitions, replication_factor=replication_factor)
    stop = threading.Event()
    with stop_on_signals(stop):
        transport.connect(stop)  # (re-sends the spool first: what it held counts as published)
        wanted = {a: resolve_symbols(a, settings.exchange(a.name).symbols) for a in adapters}
        history = read_broker_history(bootstrap, settings.kafka_options, wanted,
                                      history_timeout_s or HISTORY_TIMEOUT_S, stop)
        if stop.is_set():
            raise K2Error("kafka: stopped while reading what the broker holds")
    pipeline = Pipeline(settings, exchanges, transport, None, progress, history=history)
    tune_gc_for_streaming()
    return asyncio.run(pipeline.run(duration))
