"""`k2 run --kafka`: the feed publishes to Kafka/Redpanda and a sink thread in this process writes
what comes back into the warehouse (k2.transport.kafka_consumer.KafkaRunTransport), so one
process exercises the whole scale-out path. Otherwise as `k2 run` (k2.services.run).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from k2.config import Settings
from k2.services.lifecycle import stop_on_signals, tune_gc_for_streaming
from k2.services.pipeline import Pipeline, RunSummary, adapters_for
from k2.services.store import WarehouseStore, open_for_writing
from k2.transport.kafka_common import DEFAULT_PARTITIONS, SINK_GROUP
from k2.transport.kafka_consumer import KafkaRunTransport, KafkaSink
from k2.transport.direct import resend_spool
from k2.transport.kafka_producer import KafkaTransport


def run_kafka(settings: Settings, exchanges: list[str], bootstrap: str, duration: float | None = None,
              group: str = SINK_GROUP, partitions: int = DEFAULT_PARTITIONS, replication_factor: int | None = None,
              progress: bool | None = None) -> RunSummary:
    """`k2 run --kafka`: the feed publishes to Kafka and a sink thread in this process writes what
    comes back into the warehouse."""
    wh = open_for_writing(settings)
    try:
        resend_spool(wh, settings.data_dir)  # straight into bronze: this process holds the warehouse
        producer = KafkaTransport(bootstrap, settings.kafka_options, adapters_for(settings, exchanges),
                                  Path(settings.data_dir), max_buffered=settings.queue_max_rows,
                                  partitions=partitions, replication_factor=replication_factor)
        sink = KafkaSink(wh, bootstrap, settings.kafka_options, group, settings.batch_max_rows,
                         settings.batch_max_delay_s, partitions, replication_factor)
        transport = KafkaRunTransport(producer, sink)
        stop = threading.Event()
        with stop_on_signals(stop):
            transport.connect(stop)
        pipeline = Pipeline(settings, exchanges, transport, WarehouseStore(wh, settings.read), progress)
        tune_gc_for_streaming()
        return asyncio.run(pipeline.run(duration))
    finally:
        wh.close()
