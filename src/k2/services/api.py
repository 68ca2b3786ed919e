"""The loopback HTTP endpoint every service serves: reads, status, `/metrics`, `/healthz`.

While `k2 run` holds the data dir, `k2 ohlcv/trades/query/validate/status` send their (already
validated, parameterized) queries here (k2.read.remote is the client). The endpoint binds to
127.0.0.1 unless configured; reads need the token written in `<data dir>/k2.run.json` (mode 0600),
so another local user cannot query the warehouse. `/metrics` and `/healthz` need no token.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from k2.errors import K2Error


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise K2Error(f"address must be HOST:PORT, got {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


@dataclass
class ApiHandlers:
    query: Callable[[str, str, dict | None], str]
    status: Callable[[], dict]
    metrics: Callable[[], bytes]
    healthy: Callable[[], bool]
    #: the conditions behind `healthy` (k2.monitoring.health.Health.as_dict), for /healthz's body
    health: Callable[[], dict] | None = None


class ApiServer:
    def __init__(self, addr: str, handlers: ApiHandlers):
        self.token = secrets.token_hex(16)
        host, port = parse_addr(addr)
        handlers_ref, token = handlers, self.token

        class Handler(BaseHTTPRequestHandler):
            server_version = "k2"

            def log_message(self, *args: Any) -> None:  # quiet: no per-request logging
                pass

            def _send(self, code: int, body: bytes, ctype: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, handlers_ref.metrics(), "text/plain; version=0.0.4")
                elif path == "/healthz":
                    body = handlers_ref.health() if handlers_ref.health else {"healthy": handlers_ref.healthy()}
                    self._send(200 if body["healthy"] else 503, json.dumps(body).encode())
                elif path == "/api/status":
                    if self.headers.get("X-K2-Token") != token:
                        return self._send(403, b'{"error":"bad token"}')
                    self._send(200, json.dumps(handlers_ref.status(), default=str).encode())
                else:
                    self._send(404, b'{"error":"not found"}')

            def do_POST(self) -> None:
                if self.path != "/api/query":
                    return self._send(404, b'{"error":"not found"}')
                if self.headers.get("X-K2-Token") != token:
                    return self._send(403, b'{"error":"bad token"}')
                try:
                    length = int(self.headers.get("Content-Length", "0"))
                    req = json.loads(self.rfile.read(min(length, 10_000_000)))
                    text = handlers_ref.query(req["sql"], req.get("fmt", "TabSeparated"), req.get("params"))
                except Exception as exc:
                    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    return self._send(400, json.dumps({"error": msg[:2000]}).encode())
                self._send(200, text.encode(), "text/plain; charset=utf-8")

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="k2-http", daemon=True)

    def start(self) -> "ApiServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
