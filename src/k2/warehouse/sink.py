"""Write parsed trade rows into an exchange's bronze table, exactly once.

Every batch becomes one INSERT: a columnar block (pyarrow) handed to ClickHouse, an anti-join on
the bronze key so that rows already stored are skipped whatever the batching, and a
deterministic deduplication token so that a retried batch is a no-op in bronze, silver and gold.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Sequence

import pyarrow as pa

from k2.exchanges.base import ExchangeAdapter
from k2.metrics import exchange_times_s

_ARROW_TYPES = {
    "String": pa.string(), "Int64": pa.int64(), "UInt64": pa.uint64(), "Int32": pa.int32(),
    "UInt16": pa.uint16(), "Bool": pa.bool_(), "Nullable(Bool)": pa.bool_(),
}


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


@dataclass(slots=True)
class PreparedBatch:
    columns: list[tuple]  # the rows transposed
    arrays: list[pa.Array]  # bronze columns (+ kafka_partition, kafka_offset)
    token: str
    n: int
    has_kafka: bool
    first_time_us: int = 0  # earliest exchange time in the batch (0: unknown), for the crash journal


class BronzeWriter:
    """One per exchange. Thread-compatible: callers serialize writes (one writer thread)."""

    def __init__(self, wh, adapter: ExchangeAdapter):
        self.wh = wh
        self.adapter = adapter
        self._fields = [pa.field(c, _ARROW_TYPES[t]) for c, t in zip(adapter.columns, adapter.column_types)]
        self._schema = pa.schema(self._fields)
        exprs = [
            "fromUnixTimestamp64Micro(received_at, 'UTC')" if c == "received_at" else c
            for c in adapter.columns
        ]
        self._select = [*exprs, "{source:String}", "{batch_id:String}"]
        self._targets = [*adapter.columns, "source", "batch_id"]
        self._key_idx = [adapter.columns.index(k) for k in adapter.key_columns]
        # stored keys come back as JSON (64-bit ints as strings): convert to the row's types
        self._key_converters = [
            int if "Int" in adapter.column_types[i] else str for i in self._key_idx
        ]

    def write(self, rows: Sequence[tuple], *, source: str, token: str | None = None,
              kafka_partitions: list[int] | None = None, kafka_offsets: list[int] | None = None) -> int:
        """Insert the rows not yet in bronze. Returns how many were written."""
        if not rows:
            return 0
        return self.commit(self.prepare(rows, token, kafka_partitions, kafka_offsets), source)

    def prepare(self, rows: Sequence[tuple], token: str | None = None,
                kafka_partitions: list[int] | None = None, kafka_offsets: list[int] | None = None) -> PreparedBatch:
        """The Python half of a write: transpose once, build the columnar block and the token.
        Callers with a spare thread (k2 load) run it beside the database half."""
        columns = list(zip(*rows))
        arrays = [pa.array(col, type=f.type) for col, f in zip(columns, self._fields)]
        if kafka_partitions is not None:
            arrays += [pa.array(kafka_partitions, pa.int32()), pa.array(kafka_offsets, pa.int64())]
        token = token or self._token([columns[i] for i in self._key_idx])
        return PreparedBatch(columns, arrays, token, len(rows), kafka_partitions is not None, self._first_time_us(rows))

    def _first_time_us(self, rows: Sequence[tuple]) -> int:
        try:
            times = exchange_times_s(self.adapter, rows)
            return int(times.min() * 1_000_000) if times is not None and len(times) else 0
        except Exception:  # an odd time value: fall back to "unknown", which is always safe
            return 0

    def commit(self, batch: PreparedBatch, source: str) -> int:
        """The database half: skip keys bronze already holds (and repeats inside the batch),
        insert the rest under the batch's token. Returns how many rows were written."""
        arrays = batch.arrays
        keep = self._rows_to_keep(batch)
        if keep is not None:
            if not keep:
                return 0
            indices = pa.array(keep, pa.int64())
            arrays = [a.take(indices) for a in arrays]
        names, select, targets = list(self.adapter.columns), self._select, self._targets
        if batch.has_kafka:
            names += ["kafka_partition", "kafka_offset"]
            select = [*select, "kafka_partition", "kafka_offset"]
            targets = [*targets, "kafka_partition", "kafka_offset"]
        table = pa.Table.from_arrays(arrays, names=names)
        journal = getattr(self.wh, "journal", None)
        if journal is not None:
            journal.begin(self.adapter.bronze_table, batch.token, batch.first_time_us)
        self.wh.insert_rows(self.adapter.bronze_table, table, select, targets,
                            {"source": source, "batch_id": batch.token}, token=batch.token)
        if journal is not None:
            journal.done()
        return table.num_rows

    def _rows_to_keep(self, batch: PreparedBatch) -> list[int] | None:
        """None when every row is new (the usual case); else the indexes of the rows to write:
        the first occurrence of each key in the batch, and only keys bronze does not hold.
        Both probes run in ClickHouse; Python only walks the keys in the rare case of a hit."""
        idx = self._key_idx
        probe = pa.Table.from_arrays([batch.arrays[i] for i in idx], names=list(self.adapter.key_columns))
        stored, distinct = self.wh.existing_keys(self.adapter.bronze_table, self.adapter.key_columns, probe)
        if not stored and distinct == batch.n:
            return None
        keys = list(zip(*[batch.columns[i] for i in idx]))
        conv = self._key_converters
        first = dict(zip(reversed(keys), range(batch.n - 1, -1, -1)))
        for k in stored:
            first.pop(tuple(c(v) for c, v in zip(conv, k)), None)
        return sorted(first.values())

    def _token(self, keycols: list[tuple]) -> str:
        """Deterministic token from the batch's keys: same trades, same token."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.adapter.name.encode())
        for col in keycols:
            h.update("\x1f".join(map(str, col)).encode("utf-8", "surrogatepass"))
            h.update(b"\x1e")
        return h.hexdigest()


_REJECT_COLUMNS = ("exchange", "source", "reason", "raw", "received_at", "origin",
                   "kafka_topic", "kafka_partition", "kafka_offset", "batch_id")


def write_rejects(wh, rejects: Sequence[Reject], token: str | None = None) -> None:
    """Keep unparseable frames with their raw bytes. The token makes a re-load a no-op."""
    if not rejects:
        return
    if token is None:
        h = hashlib.blake2b(digest_size=16)
        for r in rejects:
            h.update(r.origin.encode())
            h.update(r.raw)
        token = "rej-" + h.hexdigest()
    batch = pa.table({
        "exchange": [r.exchange for r in rejects],
        "source": [r.source for r in rejects],
        "reason": [r.reason for r in rejects],
        "raw": pa.array([r.raw for r in rejects], type=pa.binary()),
        "received_at": [r.received_us for r in rejects],
        "origin": [r.origin for r in rejects],
        "kafka_topic": [r.kafka_topic for r in rejects],
        "kafka_partition": pa.array([r.kafka_partition for r in rejects], type=pa.int32()),
        "kafka_offset": [r.kafka_offset for r in rejects],
        "batch_id": [token] * len(rejects),
    })
    exprs = ["fromUnixTimestamp64Micro(received_at, 'UTC')" if c == "received_at" else c
             for c in _REJECT_COLUMNS]
    wh.insert_rows("rejects", batch, exprs, _REJECT_COLUMNS, token=token)
