"""A frame K2 could not use, on its way to the `rejects` table with its raw bytes and the reason.

Kept apart from the warehouse writer so that `k2 feed`, which only hands rejects to Kafka, never
imports pyarrow or numpy (40 MB of its 100 MB budget).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(slots=True)
class Reject:
    exchange: str
    source: str
    reason: str
    raw: bytes
    received_us: int
    origin: str = ""
    kafka_topic: str = ""
    kafka_partition: int = -1
    kafka_offset: int = -1
