"""Write parsed trade rows into an exchange's bronze table, exactly once.

Every batch becomes one INSERT: a columnar block (pyarrow) handed to ClickHouse, an anti-join on
the bronze key so that rows already stored are skipped whatever the batching, and a
deterministic deduplication token so that a retried batch is a no-op in bronze, silver and gold.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from k2.errors import K2Error
from k2.exchanges.base import ExchangeAdapter
from k2.monitoring.latency import exchange_times_of_column
from k2.rejects import Reject

log = logging.getLogger("k2.warehouse")


class PartsMayBeBroken(K2Error):
    """An INSERT succeeded but ClickHouse failed to write files of its parts (k2.warehouse.embedded):
    the writer stops; the next open finds the broken parts and repairs them (k2.warehouse.repair)."""

    exit_code = 1


_ARROW_TYPES = {
    "String": pa.string(), "Int64": pa.int64(), "UInt64": pa.uint64(), "Int32": pa.int32(),
    "UInt16": pa.uint16(), "Bool": pa.bool_(), "Nullable(Bool)": pa.bool_(),
}


@dataclass(slots=True)
class PreparedBatch:
    arrays: list[pa.Array]  # bronze columns (+ kafka_partition, kafka_offset)
    token: str
    n: int
    has_kafka: bool
    first_time_us: int = 0  # earliest exchange time in the batch (0: unknown), for the crash journal
    time_span: dict | None = None  # symbol -> (earliest, latest) exchange time in µs
    times_us: "np.ndarray | None" = None  # each row's exchange time in µs (None: unknown)
    has_repeats: bool = True  # until checked: may a key occur twice in the batch?
    symbol_pos: "np.ndarray | None" = None  # each row's symbol as its index in time_span (made once)


#: µs of slack when comparing times computed as float seconds (their rounding error is < 1 µs)
_TIME_SLACK_US = 5


class BronzeWriter:
    """One per exchange. Thread-compatible: callers serialize writes (one writer thread).

    `skip_probe_when_newer`: this process is the only writer (embedded). Then a trade newer than
    anything stored for its symbol cannot be stored already; one at the newest stored time is
    checked against the keys this writer stored at that time; only older ones go through the key
    probe, which costs a third of the database time of an insert. Re-loads, backfills and overlaps
    reach back in time and are still probed. A key repeated inside a batch is written once (its
    first row), found in C++ when the batch is prepared."""

    def __init__(self, wh, adapter: ExchangeAdapter, skip_probe_when_newer: bool = False):
        self.wh = wh
        self.adapter = adapter
        self.skip_probe_when_newer = skip_probe_when_newer and getattr(wh, "backend", "") == "embedded"
        self._newest: dict[str, float] | None = None  # symbol -> latest stored exchange time (µs)
        # symbol -> (time, keys): every key bronze holds at the symbol's latest time, known because
        # this writer wrote that time first (a restart does not know them and probes once)
        self._tail: dict[str, tuple[float, set]] = {}
        self._fields = [pa.field(c, _ARROW_TYPES[t]) for c, t in zip(adapter.columns, adapter.column_types)]
        self._schema = pa.schema(self._fields)
        self._struct = pa.struct(self._fields)
        spec = getattr(adapter, "exchange_time", None)
        self._time_idx = adapter.columns.index(spec[0]) if spec else None
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

    def columnar(self, rows: Sequence[tuple]) -> pa.StructArray:
        """Rows as one struct array (built in C++). `k2 load` turns its rows into these a few
        thousand at a time, so a batch waits as Arrow columns, not as Python tuples (~5x smaller)."""
        return pa.array(rows, type=self._struct)

    def prepare(self, rows: "Sequence[tuple] | list[pa.StructArray]", token: str | None = None,
                kafka_partitions: list[int] | None = None, kafka_offsets: list[int] | None = None) -> PreparedBatch:
        """The Python half of a write: the columnar block (rows -> one struct array in C++, then
        its columns), the token and the time span. Callers with a spare thread (k2 load) run it
        beside the database half."""
        if rows and isinstance(rows[0], pa.StructArray):  # already columnar (k2 load)
            struct = rows[0] if len(rows) == 1 else pa.concat_arrays(rows)
            n = len(struct)
        else:
            struct, n = self.columnar(rows), len(rows)
        arrays = struct.flatten()
        if kafka_partitions is not None:
            arrays += [pa.array(kafka_partitions, pa.int32()), pa.array(kafka_offsets, pa.int64())]
        token = token or self._token([arrays[i] for i in self._key_idx])
        times, span = self._times(arrays)
        first = int(min(v[0] for v in span.values())) if span else 0
        return self._first_of_each_key(
            PreparedBatch(arrays, token, n, kafka_partitions is not None, first, span, times))

    def _times(self, arrays: list[pa.Array]) -> tuple["np.ndarray | None", dict | None]:
        """Each row's exchange time in µs, and symbol -> (earliest, latest); Nones when unknown."""
        if self._time_idx is None:
            return None, None
        try:
            times = exchange_times_of_column(self.adapter, arrays[self._time_idx])
            if times is None or not len(times):
                return None, None
            times = times * 1_000_000
            agg = pa.table({"s": arrays[self.adapter.symbol_index], "t": pa.array(times)}).group_by(
                "s").aggregate([("t", "min"), ("t", "max")]).to_pydict()
            return times, {sym: (lo, hi) for sym, lo, hi in zip(agg["s"], agg["t_min"], agg["t_max"])}
        except Exception:  # an odd time value: "unknown" is always safe (the batch is probed)
            return None, None

    def _maybe_stored(self, batch: PreparedBatch) -> tuple[np.ndarray, set[int]] | None:
        """With `skip_probe_when_newer`: (rows to probe, rows known to be stored). Rows newer than
        the newest stored trade of their symbol are new; rows at that very time are decided from
        the keys this writer stored there (the previous batch's last millisecond, every batch of a
        live feed); older ones are probed. None: probe the whole batch."""
        if not self.skip_probe_when_newer or batch.times_us is None or not batch.time_span:
            return None
        if self._newest is None:
            # the archive tables count too: a trade an archive brought is stored already
            tables = (self.adapter.bronze_table, *self.adapter.archive_tables)
            self._newest = {r[0]: float(r[1]) for r in self.wh.rows(
                "SELECT toString(symbol), toUnixTimestamp64Micro(max(timestamp)) FROM k2.silver_trades_v2 "
                "WHERE has({b:Array(String)}, bronze_table) GROUP BY symbol",
                {"b": "[" + ",".join(f"'{t}'" for t in tables) + "]"})}
        if batch.has_repeats:  # _first_of_each_key could not tell (no skip_probe_when_newer)
            return None
        newest = self._per_row(batch, {sym: self._newest.get(sym, -1.0) for sym in batch.time_span})
        candidates = np.flatnonzero(batch.times_us <= newest + _TIME_SLACK_US)
        if not len(candidates) or not self._tail:
            return candidates, set()
        probe, known = [], set()
        times = batch.times_us[candidates].tolist()
        for i, t, sym, key in zip(candidates.tolist(), times, *self._keys_of(batch, candidates)):
            tail = self._tail.get(sym)
            if tail is None or abs(t - tail[0]) > _TIME_SLACK_US:
                probe.append(i)
            elif key in tail[1]:
                known.add(i)
        return np.array(probe, dtype=np.int64), known

    def _per_row(self, batch: PreparedBatch, per_symbol: dict[str, float]) -> np.ndarray:
        """`per_symbol[symbol of each row]`, without a per-row loop. Every symbol of the batch is a
        key of `time_span`; each row's position in it is found once per batch (in C++)."""
        if batch.symbol_pos is None:
            batch.symbol_pos = pc.index_in(batch.arrays[self.adapter.symbol_index],
                                           value_set=pa.array(list(batch.time_span))).to_numpy()
        return np.array([per_symbol[sym] for sym in batch.time_span])[batch.symbol_pos]

    def _keys_of(self, batch: PreparedBatch, rows: np.ndarray) -> tuple[list, list[tuple]]:
        """The symbol and the key of each of `rows`, as Python values."""
        take = pa.array(rows, pa.int64())
        symbols = batch.arrays[self.adapter.symbol_index].take(take).to_pylist()
        return symbols, list(zip(*[batch.arrays[i].take(take).to_pylist() for i in self._key_idx]))

    def _first_of_each_key(self, batch: PreparedBatch) -> PreparedBatch:
        """With `skip_probe_when_newer`: the batch without repeated keys, each key's first row kept
        (grouped in C++). A file or a reconnect replay may repeat trades; the callers need not
        filter them, and the batch can still skip the key probe."""
        if not self.skip_probe_when_newer or batch.times_us is None:
            return batch
        keys = pa.table({**{str(i): batch.arrays[i] for i in self._key_idx}, "row": np.arange(batch.n)})
        first = keys.group_by([str(i) for i in self._key_idx]).aggregate([("row", "min")]).column("row_min")
        if len(first) == batch.n:
            batch.has_repeats = False
            return batch
        take = np.sort(first.to_numpy())
        rows = pa.array(take)
        return PreparedBatch([a.take(rows) for a in batch.arrays], batch.token, len(take), batch.has_kafka,
                             batch.first_time_us, batch.time_span, batch.times_us[take], has_repeats=False)

    def _remember(self, batch: PreparedBatch) -> None:
        """After a write: every key of `batch` is stored now. Move each symbol's newest time, and
        keep the keys at it -- complete only when this writer was the first at that time."""
        if self._newest is None or not batch.time_span or batch.times_us is None:
            return
        his = self._per_row(batch, {sym: hi for sym, (_, hi) in batch.time_span.items()})
        at_hi = np.flatnonzero(np.abs(batch.times_us - his) <= _TIME_SLACK_US)
        keys_at_hi: dict[str, set] = {}
        for sym, key in zip(*self._keys_of(batch, at_hi)):
            keys_at_hi.setdefault(sym, set()).add(key)
        for sym, (_, hi) in batch.time_span.items():
            newest = self._newest.get(sym, -1.0)
            tail = self._tail.get(sym)
            if hi > newest + _TIME_SLACK_US:  # a new latest time: bronze holds exactly these keys at it
                self._newest[sym] = hi
                self._tail[sym] = (hi, keys_at_hi.get(sym, set()))
            elif tail is not None and abs(hi - tail[0]) <= _TIME_SLACK_US:
                tail[1].update(keys_at_hi.get(sym, ()))
            elif hi > newest:
                self._newest[sym] = hi

    def commit(self, batch: PreparedBatch, source: str) -> int:
        """The database half: skip keys bronze already holds (and repeats inside the batch),
        insert the rest under the batch's token. Returns how many rows were written."""
        if not batch.n:
            return 0
        arrays = batch.arrays
        maybe = self._maybe_stored(batch)
        if maybe is None:
            keep = self._rows_to_keep(batch)
        else:
            probe, known = maybe
            keep = self._rows_to_keep(batch, probe) if len(probe) else None
            if known:
                keep = [i for i in (range(batch.n) if keep is None else keep) if i not in known]
        if keep is not None:
            if not keep:
                return 0
            indices = pa.array(keep, pa.int64())
            arrays = [a.take(indices) for a in arrays]
        journal = getattr(self.wh, "journal", None)
        if journal is not None:
            journal.begin(self.adapter.bronze_table, batch.token, batch.first_time_us)
        written = self.insert(batch, arrays, source)
        if journal is not None:  # (after a failed write it stays: the next open repairs)
            journal.done()
        self._remember(batch)
        return written

    def new_rows(self, batch: PreparedBatch) -> list[pa.Array] | None:
        """The batch's columns without the rows bronze holds, when that is known without a probe
        (`skip_probe_when_newer`: every row newer than what this writer stored or was handed, or at
        that very time with its key known, and no key repeated); None when a probe is needed. Then
        the caller may `remember` the batch at once and `insert` these beside the previous batch's
        INSERT (`k2 load`'s second stream): no later decision waits for that INSERT to end."""
        if not batch.n or batch.has_repeats:
            return None
        maybe = self._maybe_stored(batch)
        if maybe is None or len(maybe[0]):
            return None
        known = maybe[1]
        if not known:
            return batch.arrays
        keep = pa.array([i for i in range(batch.n) if i not in known], pa.int64())
        return [a.take(keep) for a in batch.arrays]

    def remember(self, batch: PreparedBatch) -> None:
        """Count `batch` as stored for the decisions of the next batches (see `new_rows`)."""
        self._remember(batch)

    def insert(self, batch: PreparedBatch, arrays: list[pa.Array] | None = None, source: str = "file",
               via=None) -> int:
        """The INSERT alone: `arrays` (default: the whole batch) under the batch's token, through
        `via` (a connection with `insert_rows`; default the warehouse). Returns the rows stored.
        The caller decided which rows are new and keeps the crash journal."""
        arrays = batch.arrays if arrays is None else arrays
        names, select, targets = list(self.adapter.columns), self._select, self._targets
        if batch.has_kafka:
            names += ["kafka_partition", "kafka_offset"]
            select = [*select, "kafka_partition", "kafka_offset"]
            targets = [*targets, "kafka_partition", "kafka_offset"]
        table = pa.Table.from_arrays(arrays, names=names)
        outcome = (via or self.wh).insert_rows(self.adapter.bronze_table, table, select, targets,
                                               {"source": source, "batch_id": batch.token}, token=batch.token)
        if outcome is not None and outcome.write_failed:
            raise PartsMayBeBroken(
                f"ClickHouse could not write every file of the insert into {self.adapter.bronze_table} (a full "
                "disk?) although the INSERT succeeded: its parts may be broken; writing stops until a restart "
                "repairs them (the rows are kept)")
        if outcome is not None and outcome.deduplicated:
            return self._after_dropped_insert(table, select, targets, source, batch.token)
        return table.num_rows

    def _after_dropped_insert(self, table: pa.Table, select: list[str], targets: list[str], source: str,
                              token: str) -> int:
        """ClickHouse dropped the insert as a repeat of an earlier one with the same token, yet the
        key check had found its rows missing from bronze: bronze lost rows after they were written
        (a damaged part). Silver still has them: restore bronze from silver (no view runs, nothing
        is counted twice), then write what neither layer holds under a token of its own. Returns
        the rows written now -- what `write` counts is what was stored."""
        from k2.warehouse.repair import restore_bronze_from_silver

        restored = restore_bronze_from_silver(self.wh, self.adapter.bronze_table)
        probe = pa.Table.from_arrays([table.column(c) for c in self.adapter.key_columns],
                                     names=list(self.adapter.key_columns))
        stored, _ = self.wh.existing_keys(self.adapter.bronze_table, self.adapter.key_columns, probe)
        conv = self._key_converters
        stored_keys = {tuple(c(v) for c, v in zip(conv, k)) for k in stored}
        keys = zip(*[table.column(c).to_pylist() for c in self.adapter.key_columns])
        keep = [i for i, k in enumerate(keys) if k not in stored_keys]
        log.warning("%s: an insert of %d rows was dropped by ClickHouse as a repeat of an earlier one, but bronze "
                    "lacked them: %d rows restored from silver, %d written now", self.adapter.bronze_table,
                    table.num_rows, restored, len(keep))
        if keep:
            rest = table.take(pa.array(keep, pa.int64()))
            self.wh.insert_rows(self.adapter.bronze_table, rest, select, targets,
                                {"source": source, "batch_id": token}, token=f"{token}:after-loss:{uuid.uuid4().hex}")
        return len(keep)

    def _rows_to_keep(self, batch: PreparedBatch, candidates: np.ndarray | None = None) -> list[int] | None:
        """None when every row is new (the usual case); else the indexes of the rows to write:
        the first occurrence of each key in the batch, and only keys bronze does not hold.
        `candidates`: probe only those rows (the others are known new, and no key repeats).
        Both probes run in ClickHouse; Python only walks the keys in the rare case of a hit."""
        cols = [batch.arrays[i] for i in self._key_idx]
        if candidates is not None:
            take = pa.array(candidates, pa.int64())
            cols = [c.take(take) for c in cols]
        probe = pa.Table.from_arrays(cols, names=list(self.adapter.key_columns))
        # the archive tables count too: the same trades from an archive (k2 import) are stored already
        stored, distinct = self.wh.existing_keys(self.adapter.bronze_table, self.adapter.key_columns, probe,
                                                 also=self.adapter.archive_tables)
        if not stored and (candidates is not None or distinct == batch.n):
            return None
        positions = range(batch.n) if candidates is None else candidates.tolist()
        first: dict[tuple, int] = {}
        for i, key in zip(positions, zip(*[c.to_pylist() for c in cols])):
            first.setdefault(key, i)
        conv = self._key_converters
        for k in stored:
            first.pop(tuple(c(v) for c, v in zip(conv, k)), None)
        if candidates is None:
            return sorted(first.values())
        dropped = set(positions).difference(first.values())
        return [i for i in range(batch.n) if i not in dropped]

    def _token(self, keys: list[pa.Array]) -> str:
        """Deterministic token from the batch's key columns: same trades, same token. Hashes the
        arrays' values (fixed-width bytes, or string offsets and characters) without a Python loop."""
        h = hashlib.blake2b(digest_size=16)
        h.update(self.adapter.name.encode())
        for arr in keys:
            if pa.types.is_string(arr.type) or pa.types.is_binary(arr.type):
                offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=arr.offset * 4)
                h.update((offsets - offsets[0]).tobytes())
                h.update(memoryview(arr.buffers()[2])[offsets[0]:offsets[-1]])
            else:
                h.update(arr.to_numpy(zero_copy_only=False).tobytes())
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
        for r in rejects:  # the exchange too: one file loaded as two venues is two sets of rejects
            h.update(r.exchange.encode() + b"\x1f" + r.origin.encode() + b"\x1f")
            h.update(r.raw)
            h.update(b"\x1e")
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
    # a reject read from Kafka is known by its coordinates: a re-delivered one (a sink that died
    # before committing) is not kept twice, whatever batch it comes back in
    outcome = wh.insert_rows("rejects", batch, exprs, _REJECT_COLUMNS, token=token,
                             where="kafka_topic = '' OR (kafka_topic, kafka_partition, kafka_offset) NOT IN "
                                   "(SELECT kafka_topic, kafka_partition, kafka_offset FROM k2.rejects "
                                   "WHERE kafka_topic != '')")
    if outcome is not None and outcome.write_failed:
        raise PartsMayBeBroken("ClickHouse could not write every file of the insert into rejects (a full disk?) "
                               "although the INSERT succeeded: its part may be broken; writing stops until a "
                               "restart repairs it (the rejects are kept)")
