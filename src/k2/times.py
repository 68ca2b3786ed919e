"""Times as users write them, turned into what the warehouse's queries take.

Every command that accepts `--since`/`--until` goes through here, so a time means the same thing
to `k2 ohlcv`, `k2 rebuild` and the Python API.
"""

from __future__ import annotations

from datetime import datetime, timezone

from k2.errors import K2Error

#: the bounds used when a range is open on one side
EPOCH = "1970-01-01 00:00:00.000000"
FAR_FUTURE = "2200-01-01 00:00:00.000000"


def parse_time(value: str | None, what: str, default: str) -> str:
    """ISO-8601 (2026-07-15, 2026-07-15T12:00:00Z, ...+02:00) -> UTC 'YYYY-MM-DD HH:MM:SS.ffffff'."""
    if value is None or value == "":
        return default
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        ts = datetime.fromisoformat(text)
    except ValueError:
        raise K2Error(f"{what}: not an ISO-8601 time: {value!r} (e.g. 2026-07-15T12:00:00Z)") from None
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
