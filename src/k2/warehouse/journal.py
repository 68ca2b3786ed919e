"""Crash safety of the embedded store: a journal of the insert in flight.

One INSERT writes bronze, silver and gold through materialized views, but ClickHouse commits each
table's part on its own. A process killed in the middle can leave bronze holding a batch whose
silver rows or gold states never landed (or the reverse), and bronze's key check would then skip
the batch forever. So before each bronze insert the writer notes (table, token, first trade time)
in `<data dir>/inflight.json` and removes it afterwards. When the data dir is opened and the note
is still there, the exchange's silver and gold are recomputed from bronze from that hour on
(`k2 rebuild`), which makes the three layers consistent again whatever the crash interrupted.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from k2.errors import K2Error
from k2.exchanges import ALL_ADAPTERS
from k2.warehouse.rebuild import rebuild_from_us

log = logging.getLogger("k2.warehouse")

JOURNAL = "inflight.json"


class InflightJournal:
    def __init__(self, data_dir: Path):
        self.path = Path(data_dir) / JOURNAL

    def begin(self, bronze_table: str, token: str, first_time_us: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"bronze_table": bronze_table, "token": token, "first_time_us": first_time_us}))
        os.replace(tmp, self.path)

    def done(self) -> None:
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass

    def pending(self) -> dict | None:
        """The note of an interrupted insert, or None. A note K2 cannot have written (valid JSON of
        another shape) is refused in one line: repairing from a guess could hide a real crash."""
        try:
            entry = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        if not (isinstance(entry, dict) and isinstance(entry.get("bronze_table"), str)
                and type(entry.get("first_time_us", 0)) is int):  # noqa: E721
            raise K2Error(f"{self.path} is not K2's insert journal (expected an object with bronze_table, token "
                          "and first_time_us); if a k2 process was killed here, remove the file and run k2 rebuild")
        return entry


def interrupted_insert(wh) -> tuple[str, int] | None:
    """(exchange, first trade time µs) of the insert a stop interrupted, or None."""
    journal = getattr(wh, "journal", None)
    entry = journal.pending() if journal else None
    adapter = next((a for a in ALL_ADAPTERS if a.bronze_table == entry.get("bronze_table")), None) if entry else None
    return (adapter.name, int(entry.get("first_time_us") or 0)) if adapter else None


def repair_interrupted_insert(wh) -> str | None:
    """Finish the job of an insert a crash interrupted. Returns what was done, or None."""
    journal = getattr(wh, "journal", None)
    if not (journal and journal.pending()):
        return None
    interrupted = interrupted_insert(wh)
    if interrupted is None:  # a table K2 no longer has
        journal.done()
        return None
    exchange, first = interrupted
    log.warning("the last run stopped in the middle of an insert into %s's bronze; recomputing its silver and gold "
                "from bronze since %s", exchange, first)
    rebuild_from_us(wh, [exchange], first, progress=False)
    journal.done()
    return f"repaired {exchange} from {first}"
