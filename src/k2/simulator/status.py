"""The venues' system-status endpoints as the real ones answer (k2.exchanges.status lists them),
driven by `k2 simulate --maintenance VENUE@A-B`: announced from the start, ongoing from A to B,
completed after. Without --maintenance every venue answers "online"."""

from __future__ import annotations

from typing import Any


def status_answer(exchange: str, phase: str, begin_ms: int = 0, end_ms: int = 0) -> tuple[int, Any]:
    """`phase`: none, scheduled, ongoing or completed."""
    ongoing = phase == "ongoing"
    if exchange == "binance":  # no notion of "announced": 0 normal, 1 system maintenance
        return 200, {"status": 1 if ongoing else 0, "msg": "system maintenance" if ongoing else "normal"}
    if exchange == "bitfinex":
        return 200, [0 if ongoing else 1]
    if exchange == "kraken":
        upcoming = [{"start_time": _iso(begin_ms), "end_time": _iso(end_ms), "title": "Scheduled maintenance"}] \
            if phase == "scheduled" else []
        return 200, {"error": [], "result": {"status": "maintenance" if ongoing else "online",
                                             "timestamp": _iso(begin_ms if ongoing else 0),
                                             "upcoming_maintenance": upcoming, "emergency": []}}
    events = [] if phase == "none" else [{
        "title": "Spot system upgrade", "state": phase, "begin": str(begin_ms), "end": str(end_ms), "href": "",
        "serviceType": "1", "system": "unified", "scheDesc": "", "maintType": "1", "env": "1"}]
    if exchange == "okx":
        return 200, {"code": "0", "msg": "", "data": events}
    if exchange == "bybit":
        for e in events:
            e.update(id="k2-sim-maintenance", serviceTypes=[1], product=[1], uidSuffix=[], maintainType=1, env=1)
        return 200, {"retCode": 0, "retMsg": "", "result": {"list": events}, "retExtInfo": {}, "time": end_ms}
    return 404, {"error": "no status endpoint"}


def _iso(ms: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime((ms or time.time() * 1000) / 1000))
