"""`k2 feed`: live trades into Kafka/Redpanda, with no warehouse in this process.

The feed pipeline (k2.services.pipeline) with the Kafka producer and no store: gap-ledger versions
travel on the gaps topic for the sink to write. Everything this module imports stays clear of
chDB, pyarrow and numpy (a feed has a 100 MB budget; tests/test_layout.py walks its imports).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from k2.config import Settings
from k2.services.lifecycle import stop_on_signals, tune_gc_for_streaming
from k2.services.pipeline import Pipeline, RunSummary, adapters_for
from k2.transport.kafka_common import DEFAULT_PARTITIONS
from k2.transport.kafka_producer import KafkaTransport


def run_feed(settings: Settings, exchanges: list[str], bootstrap: str, duration: float | None = None,
             partitions: int = DEFAULT_PARTITIONS, replication_factor: int | None = None,
             progress: bool | None = None) -> RunSummary:
    """Wait for the broker (SIGINT/SIGTERM stop the wait), then run until stopped."""
    transport = KafkaTransport(bootstrap, settings.kafka_options, adapters_for(settings, exchanges),
                               Path(settings.data_dir), max_buffered=settings.queue_max_rows,
                               partitions=partitions, replication_factor=replication_factor)
    stop = threading.Event()
    with stop_on_signals(stop):
        transport.connect(stop)
    pipeline = Pipeline(settings, exchanges, transport, None, progress)
    tune_gc_for_streaming()
    return asyncio.run(pipeline.run(duration))
