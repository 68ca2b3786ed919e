"""What every long-running service shares, written once: stopping on SIGINT/SIGTERM, the
loopback API server and its run file, and the process settings of a streaming service.

`k2 run`, `k2 feed`, `k2 sink` (and `k2 record`) differ in which parts they plug together; the
way they start, announce themselves and stop is this module's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import gc
import ipaddress
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Any, Callable

from k2.config import ReadSettings
from k2.errors import K2Error
from k2.runfile import remove_run_info, write_run_info
from k2.services.api import ApiHandlers, ApiServer, parse_addr

log = logging.getLogger("k2.service")

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


# -- stopping ---------------------------------------------------------------------------------------
class stop_on_signals:
    """Context manager: SIGINT/SIGTERM set a threading.Event (a service whose main loop is a plain
    thread, or the wait for a broker before the event loop starts). Restores the old handlers."""

    def __init__(self, stop: threading.Event):
        self.stop = stop
        self._old: dict = {}

    def __enter__(self) -> "stop_on_signals":
        if threading.current_thread() is threading.main_thread():
            for sig in _STOP_SIGNALS:
                self._old[sig] = signal.signal(sig, lambda *_: self.stop.set())
        return self

    def __exit__(self, *exc: object) -> bool:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


class stop_loop_on_signals:
    """Context manager: SIGINT/SIGTERM call `on_stop` on the running event loop (asyncio services)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_stop: Callable[[], Any]):
        self.loop, self.on_stop = loop, on_stop
        self._installed: list = []

    def __enter__(self) -> "stop_loop_on_signals":
        for sig in _STOP_SIGNALS:
            try:
                self.loop.add_signal_handler(sig, self.on_stop)
                self._installed.append(sig)
            except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
                pass
        return self

    def __exit__(self, *exc: object) -> bool:
        for sig in self._installed:
            try:
                self.loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError):
                pass
        return False


# -- the API server and the run file -----------------------------------------------------------------
class ServiceEndpoint:
    """The service's loopback API (reads, status, /metrics, /healthz) for the life of a `with`.

    `run_info`: the service holds an embedded data dir, so the read commands must find it: its
    address and token go to `<data dir>/k2.run.json` (0600) and are removed at the end. A service
    that holds no data dir (k2 feed, a sink on a ClickHouse server) can live without /metrics:
    when the address is taken it says so and goes on (`required=False`)."""

    def __init__(self, addr: str, handlers: ApiHandlers, *, data_dir: Path | None = None,
                 run_info: dict[str, Any] | None = None, required: bool = True, limits: ReadSettings | None = None,
                 addr_source: str = ""):
        self.addr, self.handlers, self.data_dir = addr, handlers, data_dir
        self.addr_source = addr_source  # where the address was set ("--metrics-addr", "K2_METRICS_ADDR"...)
        self.run_info, self.required, self.limits = run_info, required, limits
        self.server: ApiServer | None = None

    @property
    def address(self) -> str | None:
        return self.server.address if self.server else None

    def __enter__(self) -> "ServiceEndpoint":
        handlers = self.handlers
        if not serves_reads(self.addr):
            # beyond this machine, over plain HTTP: never K2's token routes (status, writes, jobs);
            # ClickHouse reads only with a read password (read-only and limited like every read)
            password = bool(self.limits and self.limits.password)
            handlers = dataclasses.replace(handlers, write=None, routes=[],
                                           reads=handlers.reads if password else None,
                                           status=lambda: {"error": "status is served on loopback only"})
            self.run_info = None  # nothing to tell the read commands
            log.warning("%s is not a loopback address: serving /metrics and /healthz%s only (status and K2's own "
                        "commands stay on loopback; put a TLS proxy in front)", self.addr,
                        ", and read-only queries with the read password" if password else "")
        try:
            self.server = ApiServer(self.addr, handlers, self.limits).start()
        except OSError as exc:  # a name that does not resolve, an address in use or not ours
            reason = exc.strerror or str(exc)
            source = f"from {self.addr_source}" if self.addr_source else "K2_METRICS_ADDR or metrics_addr in k2.toml"
            hint = ""
            if exc.errno == errno.EADDRINUSE:
                hint = ("; another k2 (or another program) listens there: give this one another address with "
                        "--metrics-addr HOST:PORT (127.0.0.1:0 picks a free port), K2_METRICS_ADDR or metrics_addr "
                        "in k2.toml")
            if self.required:
                raise K2Error(f"cannot listen on {self.addr} ({source}): {reason}{hint}") from None
            log.warning("no /metrics: cannot listen on %s (%s): %s; set --metrics-addr or K2_METRICS_ADDR",
                        self.addr, source, reason)
            return self
        if self.run_info is not None and self.data_dir is not None:
            write_run_info(self.data_dir, {"pid": os.getpid(), "addr": self.server.address,
                                           "token": self.server.token, **self.run_info})
            log.info("serving reads (ClickHouse HTTP interface), status and metrics on http://%s", self.server.address)
        else:
            log.info("serving status and metrics on http://%s", self.server.address)
        return self

    def __exit__(self, *exc: object) -> bool:
        self.close()
        return False

    def close(self) -> None:
        if self.server is None:
            return
        self.server.stop()
        self.server = None
        if self.run_info is not None and self.data_dir is not None:
            remove_run_info(self.data_dir)


def serves_reads(addr: str) -> bool:
    """Reads and status (token-protected, plain HTTP) are served on a loopback address only."""
    host = parse_addr(addr)[0]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


# -- process settings ---------------------------------------------------------------------------------
def tune_gc_for_streaming() -> None:
    """A feed allocates a few objects per trade, nearly all short-lived and acyclic. The objects
    made at startup are frozen out of the cyclic collector's scans and young collections run
    every 50,000 allocations instead of 700; cycles are still collected."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
