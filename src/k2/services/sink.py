"""`k2 sink`: the Kafka/Redpanda trade topics into the warehouse, as consumer group
`k2-bronze-sink` (the exactly-once consumer is k2.transport.kafka_consumer.KafkaSink).

Runs until SIGINT/SIGTERM or --duration, serving status and metrics on loopback; with the embedded
warehouse it also serves the reads (it holds the data dir), like `k2 run`.
"""

from __future__ import annotations

import logging
import threading
import time

from k2.config import Settings
from k2.services.api import ApiHandlers
from k2.services.lifecycle import ServiceEndpoint, stop_on_signals
from k2.services.store import open_for_writing
from k2.transport.kafka_common import DEFAULT_PARTITIONS, SINK_GROUP
from k2.transport.direct import resend_spool
from k2.transport.kafka_consumer import KafkaSink, SinkStats

log = logging.getLogger("k2.sink")


def run_sink(settings: Settings, bootstrap: str, group: str = SINK_GROUP, duration: float | None = None,
             partitions: int = DEFAULT_PARTITIONS, replication_factor: int | None = None) -> SinkStats:
    """Consume into the warehouse until SIGINT/SIGTERM (or `duration`); returns the sink's counts."""
    wh = open_for_writing(settings)
    stop = threading.Event()
    try:
        resend_spool(wh, settings.data_dir)  # rows a `k2 run` on this data dir could not write
        sink = KafkaSink(wh, bootstrap, settings.kafka_options, group, settings.batch_max_rows,
                         settings.batch_max_delay_s, partitions, replication_factor)
        with stop_on_signals(stop):
            sink.connect(stop)
            embedded = getattr(wh, "backend", "") == "embedded"  # then reads go through this process
            reads = wh.reads(settings.read)
            endpoint = ServiceEndpoint(settings.metrics_addr,
                                       ApiHandlers(sink.status, sink.metrics, sink.healthy, reads=reads, write=reads.write,
                                                   health=lambda: sink.health().as_dict()),
                                       data_dir=settings.data_dir, required=False, limits=settings.read,
                                       addr_source=settings.metrics_addr_source,
                                       run_info={"started_at": time.time(), "role": "kafka-sink"} if embedded else None)
            with endpoint:
                started = time.monotonic()
                last_log = started
                deadline = started + duration if duration else None
                while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
                    sink.step()
                    if time.monotonic() - last_log >= 30:
                        last_log = time.monotonic()
                        log.info("sink: %s written, %d duplicates skipped, %d rejects, lag %s",
                                 ", ".join(f"{k} {v:,}" for k, v in sink.stats.written.items()),
                                 sum(sink.stats.duplicates.values()), sink.stats.rejects_written,
                                 sum(sink.stats.lag.values()) if sink.stats.lag else "?")
                sink.close()
        return sink.stats
    finally:
        wh.close()
