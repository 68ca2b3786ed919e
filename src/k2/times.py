"""Times as users write them, turned into what the warehouse's queries take.

Every command that accepts `--since`/`--until` goes through here, so a time means the same thing
to `k2 ohlcv`, `k2 trades`, `k2 chart`, `k2 rejects`, `k2 rebuild` and the Python API:

    2026-07-15, 2026-07-15T12:00:00Z, 2026-07-15 12:00+02:00     ISO-8601 (no zone = UTC)
    1784116800, 1784116800.25                                     epoch seconds
    1784116800000                                                 epoch milliseconds (>= 10^11)
    30m, 1h, 7d, 2w, 90s                                          that long before now
    now

A time outside what the warehouse stores (1970 to 2199) is an error, not an empty answer.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from k2.errors import K2Error

#: the bounds used when a range is open on one side
EPOCH = "1970-01-01 00:00:00.000000"
FAR_FUTURE = "2200-01-01 00:00:00.000000"

_FORMAT = "%Y-%m-%d %H:%M:%S.%f"
_LOWEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_HIGHEST = datetime(2200, 1, 1, tzinfo=timezone.utc)
_RELATIVE = re.compile(r"([0-9]{1,9})\s*(s|sec|m|min|h|d|w)", re.ASCII | re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_EPOCH_NUMBER = re.compile(r"[0-9]{1,20}(\.[0-9]{1,9})?", re.ASCII)
#: an epoch number at or above this is milliseconds (10^11 s would be the year 5138)
_MS_FROM = 10**11
_EXAMPLES = "e.g. 2026-07-15T12:00:00Z, 1784116800, 1784116800000 or 1h"


def to_datetime(value: str, what: str, now: datetime | None = None) -> datetime:
    """A user's time (see the module docstring) -> an aware UTC datetime; K2Error when it is not
    one of the accepted forms or lies outside 1970..2199."""
    text = value.strip()
    now = now or datetime.now(timezone.utc)
    rel = _RELATIVE.fullmatch(text)
    if text.lower() == "now":
        ts = now
    elif rel:
        seconds = int(rel.group(1)) * _UNIT_SECONDS[rel.group(2).lower()]
        try:
            ts = now - timedelta(seconds=seconds)
        except OverflowError:
            ts = _LOWEST - timedelta(days=1)  # reported as out of range below
    elif _EPOCH_NUMBER.fullmatch(text):
        number = float(text)
        if number >= _MS_FROM:
            number /= 1000
        try:
            ts = datetime.fromtimestamp(number, timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise K2Error(f"{what}: {value!r} is out of range (1970-01-01 .. 2199-12-31)") from None
    else:
        iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
        try:
            ts = datetime.fromisoformat(iso)
        except ValueError:
            raise K2Error(f"{what}: not a time: {value!r} ({_EXAMPLES})") from None
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=timezone.utc)
        try:
            ts = ts.astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:00+01:00 has no UTC equivalent
            raise K2Error(f"{what}: {value!r} is out of range (1970-01-01 .. 2199-12-31)") from None
    if not _LOWEST <= ts < _HIGHEST:
        raise K2Error(f"{what}: {value!r} is out of range (1970-01-01 .. 2199-12-31)")
    return ts


def parse_time(value: str | None, what: str, default: str, now: datetime | None = None) -> str:
    """A user's time -> UTC 'YYYY-MM-DD HH:MM:SS.ffffff' (the queries' DateTime64 parameter);
    `default` when none is given."""
    if value is None or value.strip() == "":
        return default
    return to_datetime(value, what, now).strftime(_FORMAT)


def parse_range(since: str | None, until: str | None, now: datetime | None = None) -> tuple[str, str]:
    """(since, until) for a query, open ends filled in. `--since` at or after `--until` can only
    answer nothing, so it is an error rather than an empty result."""
    now = now or datetime.now(timezone.utc)  # one "now" for both ends: --since 2h --until 1h
    lo = parse_time(since, "--since", EPOCH, now)
    hi = parse_time(until, "--until", FAR_FUTURE, now)
    if lo >= hi:
        raise K2Error(f"--since ({lo[:19]} UTC) is not before --until ({hi[:19]} UTC)")
    return lo, hi


def to_microseconds(text: str) -> int:
    """'YYYY-MM-DD HH:MM:SS.ffffff' (from parse_time) -> µs since the epoch."""
    ts = datetime.strptime(text, _FORMAT).replace(tzinfo=timezone.utc)
    return (ts - _LOWEST) // timedelta(microseconds=1)
