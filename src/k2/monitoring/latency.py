"""Ingest latency of written trades: the exchange's trade time of each row, and the histogram
update after an insert. numpy and pyarrow work on whole batches; only the writers (k2 run,
k2 sink, k2 load) import this module, never `k2 feed`."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from k2.monitoring.metrics import INGEST_LATENCY, Histogram


def exchange_times_s(adapter, rows) -> Any:
    """Exchange trade times of bronze rows, as a numpy array of epoch seconds (float64), computed
    column-wise (one list comprehension, then C loops). The adapter says which column holds the
    time and how it is written: `exchange_time = (column, unit)` with unit "ms" (integer ms),
    "s" (decimal seconds string, Kraken v1) or "iso" (RFC 3339 string, Kraken v2). None when the
    adapter declares no time column."""
    spec = getattr(adapter, "exchange_time", None)
    if not spec or not rows:
        return None
    i = adapter.columns.index(spec[0])
    return exchange_times_of_column(adapter, [r[i] for r in rows])


def exchange_times_of_column(adapter, col) -> Any:
    """The same from the time column alone (a list, or a pyarrow array of the bronze type)."""
    spec = getattr(adapter, "exchange_time", None)
    if not spec:
        return None
    unit = spec[1]
    if unit == "ms":
        return np.asarray(col, dtype=np.int64) / 1000.0
    if unit == "s":
        return pc.cast(pa.array(col, pa.string()), pa.float64()).to_numpy(zero_copy_only=False)
    if unit == "iso":
        ts = pc.cast(pa.array(col, pa.string()), pa.timestamp("us", tz="UTC"))
        return pc.cast(ts, pa.int64()).to_numpy(zero_copy_only=False) / 1e6
    raise ValueError(f"unknown exchange_time unit {unit!r}")


def observe(hist: Histogram, key: str, values) -> None:
    """Add an array of observations (seconds) to `hist` in one vectorized step; a negative value
    (a clock a little behind the exchange's) counts as 0."""
    values = np.maximum(np.asarray(values, dtype=np.float64), 0.0)
    if values.size == 0:
        return
    idx = np.searchsorted(np.asarray(hist.buckets, dtype=np.float64), values, side="left")  # bucket i: v <= edges[i]
    hist.add(key, np.bincount(idx, minlength=len(hist.buckets) + 1).tolist(), float(values.sum()), int(values.size))


def observe_ingest(exchange: str, times_us, now: float | None = None, hist: Histogram | None = None) -> None:
    """Record ingest latency (now - exchange time) for trades just written, from the exchange
    times (µs) their batch was prepared with (`PreparedBatch.times_us`; None: unknown, skipped)."""
    if times_us is None:
        return
    observe(hist or INGEST_LATENCY, exchange, (time.time() if now is None else now) - times_us / 1e6)
