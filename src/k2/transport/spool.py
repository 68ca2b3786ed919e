"""The direct transport's spool: rows the warehouse would not take before a stop, kept as JSON
lines and re-sent at the next start, once.

Written only as a last resort, when the writer is stopping and its inserts kept failing (a dead
server, a full disk): `<data dir>/spool/unwritten-<time>-<pid>.jsonl`, or, when the data dir's
filesystem cannot take even that, the same file under the user's state directory
(`$XDG_STATE_HOME/k2/spool`, else `~/.local/state/k2/spool`), named after the data dir so that the
right data dir picks it up. One line per trade (its bronze table, source and native columns), per
reject (its raw bytes in base64, so they stay exact) or per gaps-ledger version (a gap found while
the warehouse could not take it would otherwise be forgotten: the next start retries open gaps
from the ledger).

Re-sending: a file is claimed by renaming it to `*.resending` (a run that dies while re-sending
leaves it there and the next start takes it again), its rows go to bronze through the usual
exactly-once writer (k2 run, k2 sink: a key bronze already holds is skipped, so a second pass adds
nothing) or to Kafka (k2 feed: the sink's key check does the same), and the file is deleted. This
module reads and writes the files only: `k2 feed` imports it and must not load the warehouse.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from k2.exchanges import ALL_ADAPTERS
from k2.exchanges.base import ExchangeAdapter
from k2.rejects import Reject

log = logging.getLogger("k2.transport")

PREFIX = "unwritten-"


def state_spool_dir() -> Path:
    """The user's own fallback spool folder (never a shared path such as /tmp)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "k2" / "spool"


def _data_dir_tag(data_dir: Path) -> str:
    return hashlib.blake2b(str(Path(data_dir).resolve()).encode(), digest_size=6).hexdigest()


@dataclass
class SpooledRows:
    """What one spool file holds: rows per (adapter, source), and rejects."""
    rows: dict[tuple[ExchangeAdapter, str], list[tuple]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    gaps: list[dict] = field(default_factory=list)  # ledger versions (queries/gap_upsert.sql parameters)
    damaged_lines: int = 0

    @property
    def count(self) -> int:
        return sum(map(len, self.rows.values())) + len(self.rejects) + len(self.gaps)


# -- writing ------------------------------------------------------------------------------------------
def _lines(taken: dict[tuple[ExchangeAdapter, str], list[tuple]], rejects: Iterable[Reject],
           gaps: Iterable[dict] = ()) -> Iterator[str]:
    for (adapter, source), rows in taken.items():
        head = {"exchange": adapter.name, "bronze_table": adapter.bronze_table, "source": source}
        cols = adapter.columns
        for row in rows:
            yield json.dumps({**head, "row": dict(zip(cols, row))}, ensure_ascii=False) + "\n"
    for r in rejects:
        yield json.dumps({"exchange": r.exchange, "reject": r.reason, "source": r.source,
                          "raw_b64": base64.b64encode(r.raw).decode(), "received_us": r.received_us,
                          "origin": r.origin}) + "\n"
    for g in gaps:
        yield json.dumps({"gap": g}, ensure_ascii=False) + "\n"


def write_spool(data_dir: Path, taken: dict[tuple[ExchangeAdapter, str], list[tuple]],
                rejects: list[Reject], gaps: list[dict] | None = None) -> Path:
    """Save unwritten rows (synced to disk); the data dir's spool first, then the user's state
    directory. Raises OSError when neither can take them."""
    name = f"{PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{time.time_ns() % 10**9:09d}.jsonl"
    errors = []
    for folder, fname in ((Path(data_dir) / "spool", name),
                          (state_spool_dir(), f"{PREFIX}{_data_dir_tag(data_dir)}-{name[len(PREFIX):]}")):
        path = folder / fname
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                if folder != Path(data_dir) / "spool":
                    f.write(json.dumps({"k2_spool_for": str(Path(data_dir).resolve())}) + "\n")
                f.writelines(_lines(taken, rejects, gaps or ()))
                f.flush()
                os.fsync(f.fileno())
            return path
        except OSError as exc:
            errors.append(f"{path}: {exc}")
            try:
                path.unlink()
            except OSError:
                pass
    raise OSError("; ".join(errors))


# -- reading --------------------------------------------------------------------------------------------
def pending_files(data_dir: Path) -> list[Path]:
    """Spool files of this data dir still to re-send (a `.resending` one a run did not finish
    included), oldest first."""
    found: list[Path] = []
    own = Path(data_dir) / "spool"
    if own.is_dir():
        found += sorted(own.glob(f"{PREFIX}*.jsonl")) + sorted(own.glob(f"{PREFIX}*.resending"))
    state = state_spool_dir()
    if state.is_dir():
        tag = _data_dir_tag(data_dir)
        found += sorted(state.glob(f"{PREFIX}{tag}-*.jsonl")) + sorted(state.glob(f"{PREFIX}{tag}-*.resending"))
    return found


def claim(path: Path) -> Path:
    """Rename a spool file to `*.resending` before its rows are sent (idempotent)."""
    if path.suffix == ".resending":
        return path
    target = path.with_suffix(".resending")
    os.replace(path, target)
    return target


def _adapter_for(rec: dict) -> ExchangeAdapter | None:
    table = rec.get("bronze_table")
    if table:
        return next((a for a in ALL_ADAPTERS if a.bronze_table == table), None)
    # spool lines of K2 before the bronze table was written: the columns tell the API variant
    cols = set(rec) - {"exchange", "source"}
    return next((a for a in ALL_ADAPTERS if a.name == rec.get("exchange") and set(a.columns) == cols), None)


def read_spool(path: Path) -> SpooledRows:
    out = SpooledRows()
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if "k2_spool_for" in rec:
                    continue
                if "gap" in rec:
                    out.gaps.append(dict(rec["gap"]))
                    continue
                if "reject" in rec:
                    raw = base64.b64decode(rec["raw_b64"]) if "raw_b64" in rec else rec["raw"].encode()
                    out.rejects.append(Reject(rec["exchange"], rec.get("source", "ws"), rec["reject"], raw,
                                              int(rec.get("received_us") or time.time_ns() // 1000),
                                              rec.get("origin", "")))
                    continue
                adapter = _adapter_for(rec)
                if adapter is None:
                    raise ValueError(f"no adapter for {rec.get('bronze_table') or rec.get('exchange')!r}")
                cols = rec["row"] if "row" in rec else rec
                out.rows.setdefault((adapter, rec.get("source", "ws")), []).append(
                    tuple(cols[c] for c in adapter.columns))
            except (ValueError, KeyError, TypeError) as exc:
                out.damaged_lines += 1
                log.error("spool %s: a damaged line kept aside (%s)", path, exc)
    return out


def keep_damaged(path: Path) -> None:
    """A file with lines that could not be read is kept (renamed `.damaged`) for a person to look at."""
    os.replace(path, path.with_suffix(".damaged"))
