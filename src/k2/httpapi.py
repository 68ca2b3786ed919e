"""The running pipeline's loopback HTTP endpoint, and the client the CLI uses to reach it.

chDB lets one process open a data dir. While `k2 run` holds it, `k2 ohlcv/trades/query/validate/
status` send their (already validated, parameterized) queries here instead. The endpoint binds to
127.0.0.1 unless configured; reads need the token written in `<data dir>/k2.run.json` (mode 0600),
so another local user cannot query the warehouse. `/metrics` and `/healthz` need no token.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable


from k2.warehouse import RowReads
from k2.errors import K2Error

RUN_FILE = "k2.run.json"


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise K2Error(f"address must be HOST:PORT, got {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


# -- run file -------------------------------------------------------------------------------------
def write_run_info(data_dir: Path, info: dict[str, Any]) -> None:
    path = Path(data_dir) / RUN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)


def read_run_info(data_dir: Path) -> dict[str, Any] | None:
    """The running pipeline's endpoint, or None when nothing (alive) runs on this data dir."""
    path = Path(data_dir) / RUN_FILE
    try:
        info = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def remove_run_info(data_dir: Path) -> None:
    try:
        (Path(data_dir) / RUN_FILE).unlink()
    except FileNotFoundError:
        pass


# -- server ---------------------------------------------------------------------------------------
@dataclass
class ApiHandlers:
    query: Callable[[str, str, dict | None], str]
    status: Callable[[], dict]
    metrics: Callable[[], bytes]
    healthy: Callable[[], bool]


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
                    ok = handlers_ref.healthy()
                    self._send(200 if ok else 503, json.dumps({"healthy": ok}).encode())
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


# -- client ---------------------------------------------------------------------------------------
class RemoteReader(RowReads):
    """Reads through a running pipeline. Same interface as the warehouse's read methods."""

    backend = "remote"

    def __init__(self, info: dict[str, Any]):
        self.base = f"http://{info['addr']}"
        self.token = info["token"]

    def _post(self, body: dict) -> str:
        req = urllib.request.Request(
            self.base + "/api/query", data=json.dumps(body).encode(), method="POST",
            headers={"X-K2-Token": self.token, "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read()).get("error", str(exc))
            except ValueError:
                msg = str(exc)
            raise K2Error(f"query failed: {msg}") from None
        except OSError as exc:
            raise K2Error(f"cannot reach the running k2 at {self.base}: {exc}") from None

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None) -> str:
        return self._post({"sql": sql, "fmt": fmt, "params": params})



    def status(self) -> dict:
        req = urllib.request.Request(self.base + "/api/status", headers={"X-K2-Token": self.token})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return json.loads(resp.read())
        except OSError as exc:
            raise K2Error(f"cannot reach the running k2 at {self.base}: {exc}") from None

    def close(self) -> None:
        pass


def open_reader(data_dir: Path, warehouse_url: str | None = None):
    """The running pipeline when one holds this data dir, else the warehouse itself."""
    if not warehouse_url:
        info = read_run_info(data_dir)
        if info is not None:
            return RemoteReader(info)
    from k2.warehouse import open_warehouse

    return open_warehouse(data_dir, url=warehouse_url)
