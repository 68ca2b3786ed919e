"""The venues' own system-status / maintenance endpoints, and what their answers say.

Five of the seven venues publish one on their public REST API (no key):

    binance   GET /sapi/v1/system/status      {"status": 0, "msg": "normal"}  (1 = system maintenance)
    kraken    GET /0/public/SystemStatus      {"result": {"status": "online" | "maintenance" |
                                              "cancel_only" | "post_only", "upcoming_maintenance": [...]}}
    okx       GET /api/v5/system/status       {"data": [{"state": "scheduled" | "ongoing" | "pre_open" |
                                              "completed" | "canceled", "begin", "end", "title", ...}]}
    bybit     GET /v5/system/status           {"result": {"list": [{"state", "begin", "end", "title"}]}}
    bitfinex  GET /v2/platform/status         [1] operative, [0] maintenance

Coinbase and Gemini publish theirs only on a hosted status page (status.coinbase.com,
status.gemini.com), not on the exchange's API: K2 does not poll those; their health comes from
what the feed sees. Parsers are pure: bytes in, a `VenueStatus` out, a ValueError for an answer
they cannot read (the poller reports it as "status unknown", never as "online").
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class VenueStatus:
    #: "online", "maintenance" (the venue says it is in maintenance now), "limited" (cancel-only,
    #: post-only, pre-open: trading restricted) or "scheduled" (online, maintenance announced)
    state: str
    detail: str = ""


def _ms_text(ms: Any) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(ms) / 1000))
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None


def parse_binance(body: bytes) -> VenueStatus:
    doc = _json(body)
    if not isinstance(doc, dict) or doc.get("status") not in (0, 1):
        raise ValueError(f"unexpected answer: {str(doc)[:120]}")
    return VenueStatus("online" if doc["status"] == 0 else "maintenance", str(doc.get("msg", ""))[:200])


def parse_kraken(body: bytes) -> VenueStatus:
    doc = _json(body)
    result = doc.get("result") if isinstance(doc, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("status"), str):
        raise ValueError(f"unexpected answer: {str(doc)[:120]}")
    status = result["status"]
    upcoming = result.get("upcoming_maintenance") or []
    if status == "maintenance":
        return VenueStatus("maintenance", "status maintenance")
    if status in ("cancel_only", "post_only", "limit_only", "reduce_only"):
        return VenueStatus("limited", f"status {status}")
    if status != "online":
        raise ValueError(f"unknown status {status!r}")
    if isinstance(upcoming, list) and upcoming:
        first = upcoming[0] if isinstance(upcoming[0], dict) else {}
        when = first.get("start_time") or first.get("begin") or first.get("start") or "?"
        return VenueStatus("scheduled", f"maintenance announced from {when}")
    return VenueStatus("online")


def _events(items: Any) -> VenueStatus:
    """OKX and Bybit: a list of maintenance events, each with a state and begin/end (ms)."""
    if not isinstance(items, list):
        raise ValueError(f"unexpected answer: {str(items)[:120]}")
    ongoing = [e for e in items if isinstance(e, dict) and e.get("state") == "ongoing"]
    pre_open = [e for e in items if isinstance(e, dict) and e.get("state") == "pre_open"]
    scheduled = [e for e in items if isinstance(e, dict) and e.get("state") == "scheduled"]
    if ongoing:
        e = ongoing[0]
        return VenueStatus("maintenance", f"{e.get('title') or 'maintenance'} until {_ms_text(e.get('end'))}"[:200])
    if pre_open:
        return VenueStatus("limited", f"pre-open until {_ms_text(pre_open[0].get('end'))}")
    if scheduled:
        e = scheduled[0]
        return VenueStatus("scheduled", f"{e.get('title') or 'maintenance'} from {_ms_text(e.get('begin'))} "
                                        f"to {_ms_text(e.get('end'))}"[:200])
    return VenueStatus("online")


def parse_okx(body: bytes) -> VenueStatus:
    doc = _json(body)
    if not isinstance(doc, dict) or str(doc.get("code")) != "0":
        raise ValueError(f"unexpected answer: {str(doc)[:120]}")
    return _events(doc.get("data"))


def parse_bybit(body: bytes) -> VenueStatus:
    doc = _json(body)
    if not isinstance(doc, dict) or doc.get("retCode") != 0 or not isinstance(doc.get("result"), dict):
        raise ValueError(f"unexpected answer: {str(doc)[:120]}")
    return _events(doc["result"].get("list"))


def parse_bitfinex(body: bytes) -> VenueStatus:
    doc = _json(body)
    if not isinstance(doc, list) or not doc or doc[0] not in (0, 1):
        raise ValueError(f"unexpected answer: {str(doc)[:120]}")
    return VenueStatus("online" if doc[0] == 1 else "maintenance", "" if doc[0] == 1 else "platform status 0")


#: exchange name -> (path on its REST URL, parser)
STATUS_ENDPOINTS: dict[str, tuple[str, Callable[[bytes], VenueStatus]]] = {
    "binance": ("/sapi/v1/system/status", parse_binance),
    "kraken": ("/0/public/SystemStatus", parse_kraken),
    "okx": ("/api/v5/system/status", parse_okx),
    "bybit": ("/v5/system/status", parse_bybit),
    "bitfinex": ("/v2/platform/status", parse_bitfinex),
}
