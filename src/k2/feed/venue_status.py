"""Reads each venue's own system-status endpoint (k2.exchanges.status) every `status_poll_s`,
so health can say "in maintenance, announced by the venue" rather than "down".

One small GET per venue per minute by default, in a thread (urllib, TLS verified), never on the
event loop; a failed read is kept as the reason ("status unknown: ..."), never as "online".
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from dataclasses import dataclass

from k2.exchanges.status import STATUS_ENDPOINTS, VenueStatus

log = logging.getLogger("k2.feed")


@dataclass
class StatusReading:
    status: VenueStatus | None = None  # None: not read yet, or the last read failed
    error: str = ""
    read_at: float | None = None  # wall clock of the last answer (or failure)


class VenueStatusPoller:
    def __init__(self, exchange: str, rest_url: str, interval_s: float, timeout_s: float = 10.0):
        path, self.parse = STATUS_ENDPOINTS[exchange]
        self.exchange = exchange
        self.url = rest_url.rstrip("/") + path
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.reading = StatusReading()

    def read_once(self) -> StatusReading:
        req = urllib.request.Request(self.url, headers={"User-Agent": "k2"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                self.reading = StatusReading(self.parse(resp.read()), "", time.time())
        except Exception as exc:  # HTTP error, network, an answer the parser cannot read
            self.reading = StatusReading(None, f"{type(exc).__name__}: {exc}"[:200], time.time())
        return self.reading

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            before = self.reading.status
            reading = await asyncio.to_thread(self.read_once)
            if reading.status != before and reading.status is not None:
                log.info("%s: the venue reports %s%s", self.exchange, reading.status.state,
                         f" ({reading.status.detail})" if reading.status.detail else "")
            try:
                await asyncio.wait_for(stop.wait(), self.interval_s)
            except asyncio.TimeoutError:
                pass


def pollers_for(exchanges: list[tuple[str, str]], interval_s: float) -> dict[str, VenueStatusPoller]:
    """(exchange, rest_url) pairs -> a poller for each venue that publishes a status endpoint."""
    if interval_s <= 0:
        return {}
    return {name: VenueStatusPoller(name, rest, interval_s) for name, rest in exchanges if name in STATUS_ENDPOINTS}
