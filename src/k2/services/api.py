"""The loopback HTTP endpoint every service serves: `/metrics`, `/healthz`, K2's own routes under
`/api/`, and ClickHouse's HTTP interface at `/` (k2.services.clickhouse_http) over the read door.

Routes are a table, (method, path) -> function(Request) -> Response, each with who may call it:

    "open"    anyone who can reach the address (/metrics, /healthz, /ping)
    "token"   K2's own commands: the token of `<data dir>/k2.run.json` (mode 0600), so another
              local user cannot use them (/api/status, /api/write)
    "reader"  ClickHouse clients: the read password (K2_READ_PASSWORD) when one is set, or the token

A service adds a route with `ApiServer.add_route` (or `ApiHandlers.routes`) before it starts.

The server is bounded: at most `max_connections` open connections (more are answered 503 at once
and closed, without a thread), each closed after `idle_timeout_s` without a request. Reads are
further bounded by the read door's slots and limits (k2.warehouse.reads).
"""

from __future__ import annotations

import gzip
import json
import secrets
import socket
import threading
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import parse_qsl, urlsplit

from k2.config import ReadSettings
from k2.errors import K2Error

#: bodies K2 accepts (a query, a command); anything larger is refused before it is read
MAX_BODY_BYTES = 16 * 1024 * 1024


def parse_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise K2Error(f"address must be HOST:PORT, got {addr!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


# -- requests, responses, routes ----------------------------------------------------------------------
@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]        # the URL's query string (last value of each name)
    headers: Any                  # http.client.HTTPMessage: case-insensitive get()
    body: bytes
    client: str

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default) or default


@dataclass
class Response:
    status: int = 200
    body: bytes | Iterable[bytes] = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    #: gzip the body (the route decided the client asked for it)
    gzip: bool = False
    #: called once the body is sent or the client went away (e.g. stop a query, free its slot)
    on_close: Callable[[], None] | None = None
    #: when a streamed body fails midway: the text to end it with (the connection is then cut, so the
    #: client sees an incomplete response, never a short one that looks whole)
    error_text: Callable[[BaseException], bytes] | None = None


def json_response(status: int, doc: Any) -> Response:
    return Response(status, json.dumps(doc, default=str).encode())


@dataclass
class Route:
    method: str
    path: str
    fn: Callable[[Request], Response]
    auth: str = "open"  # open | token | reader


@dataclass
class ApiHandlers:
    """What a service plugs into its endpoint."""

    status: Callable[[], dict]
    metrics: Callable[[], bytes]
    healthy: Callable[[], bool]
    #: the read door (k2.warehouse.reads); None in a process without a warehouse (k2 feed)
    reads: Any = None
    #: `k2 query --write`: one statement in a session of its own, not read-only (token only)
    write: Callable[[str, str], str] | None = None
    routes: list[Route] = field(default_factory=list)
    #: the conditions behind `healthy` (k2.monitoring.health.Health.as_dict), for /healthz's body
    health: Callable[[], dict] | None = None


# -- the bounded server --------------------------------------------------------------------------------
class BoundedHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with a ceiling on open connections: a connection past it is answered
    503 and closed by the accepting thread, so a flood of idle clients cannot pile up threads."""

    daemon_threads = True
    request_queue_size = 128  # accept promptly, so a connection past the ceiling is told so at once
    busy_body = b"Code: 202. DB::Exception: too many open connections to K2's endpoint. (TOO_MANY_SIMULTANEOUS_QUERIES)\n"

    def __init__(self, addr: tuple[str, int], handler: type, max_connections: int):
        self.max_connections = max_connections
        self.active = 0
        self._count_lock = threading.Lock()
        super().__init__(addr, handler)

    def process_request(self, request, client_address) -> None:
        with self._count_lock:
            full = self.active >= self.max_connections
            if not full:
                self.active += 1
        if full:
            try:
                request.settimeout(1.0)
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                                b"X-ClickHouse-Exception-Code: 202\r\nConnection: close\r\n"
                                b"Content-Length: " + str(len(self.busy_body)).encode() + b"\r\n\r\n" + self.busy_body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            with self._count_lock:
                self.active -= 1
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.active -= 1


class ApiServer:
    def __init__(self, addr: str, handlers: ApiHandlers, limits: ReadSettings | None = None):
        from k2.services.clickhouse_http import clickhouse_routes

        self.token = secrets.token_hex(16)
        self.limits = limits or ReadSettings()
        self.handlers = handlers
        self.routes: dict[tuple[str, str], Route] = {}
        for route in self._builtin_routes() + clickhouse_routes(handlers.reads, self.limits) + list(handlers.routes):
            self.add_route(route)
        host, port = parse_addr(addr)
        server = self

        class Handler(_Handler):
            api = server
            timeout = self.limits.idle_timeout_s

        self.httpd = BoundedHTTPServer((host, port), Handler, self.limits.max_connections)
        self.address = f"{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="k2-http", daemon=True)

    def add_route(self, route: Route) -> None:
        self.routes[(route.method, route.path)] = route

    def _builtin_routes(self) -> list[Route]:
        h = self.handlers

        def healthz(_req: Request) -> Response:
            body = h.health() if h.health else {"healthy": h.healthy()}
            return json_response(200 if body["healthy"] else 503, body)

        def write(req: Request) -> Response:
            if h.write is None:
                return json_response(404, {"error": "this process cannot run writing SQL"})
            try:
                doc = json.loads(req.body or b"{}")
                text = h.write(doc["sql"], doc.get("fmt", "TabSeparated"))
            except K2Error as exc:
                return json_response(400, {"error": str(exc)})
            except (ValueError, KeyError, TypeError):
                return json_response(400, {"error": "body must be JSON with 'sql'"})
            return Response(200, text.encode(), "text/plain; charset=utf-8")

        return [
            Route("GET", "/metrics", lambda _r: Response(200, h.metrics(), "text/plain; version=0.0.4")),
            Route("GET", "/healthz", healthz),
            Route("GET", "/api/status", lambda _r: json_response(200, h.status()), "token"),
            Route("POST", "/api/write", write, "token"),
        ]

    def authorized(self, route: Route, req: Request) -> bool:
        if route.auth == "open":
            return True
        token = req.header("X-K2-Token") or _password_of(req)
        if secrets.compare_digest(token, self.token):
            return True
        if route.auth == "reader":
            expected = self.limits.password
            return secrets.compare_digest(token, expected) if expected else token == ""
        return False

    def start(self) -> "ApiServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _password_of(req: Request) -> str:
    """The password a ClickHouse client sends: X-ClickHouse-Key, basic auth, or ?password=."""
    import base64

    key = req.header("X-ClickHouse-Key")
    if key:
        return key
    auth = req.header("Authorization")
    if auth.lower().startswith("basic "):
        try:
            return base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return ""
    return req.params.get("password", "")


class _Handler(BaseHTTPRequestHandler):
    """One connection: requests one after another (HTTP/1.1 keep-alive) until idle or closed."""

    api: ApiServer
    server_version = "k2"
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # quiet: no per-request logging
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            return self._send(Response(413, b"request body too large\n", "text/plain"))
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = self._read_chunked()
            if body is None:
                self.close_connection = True
                return self._send(Response(413, b"request body too large\n", "text/plain"))
        else:
            body = self.rfile.read(length) if length else b""
        req = Request(method, url.path, dict(parse_qsl(url.query, keep_blank_values=True)), self.headers, body,
                      self.client_address[0])
        route = self.api.routes.get(("GET" if method == "HEAD" else method, url.path))
        if route is None:
            known = {p for (_m, p) in self.api.routes}
            status = 405 if url.path in known else 404
            return self._send(json_response(status, {"error": "method not allowed" if status == 405 else "not found"}))
        if not self.api.authorized(route, req):
            if route.auth == "reader":
                from k2.services.clickhouse_http import error_response

                return self._send(error_response(516, "AUTHENTICATION_FAILED",
                                                 "k2: Authentication failed: password is incorrect"))
            return self._send(json_response(403, {"error": "bad token"}))
        try:
            resp = route.fn(req)
        except Exception as exc:  # a route's own bug: one line for the client, the service goes on
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            resp = json_response(500, {"error": msg[:2000]})
        self._send(resp, head=method == "HEAD")

    def _read_chunked(self) -> bytes | None:
        parts, total = [], 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                return None
            parts.append(self.rfile.read(size))
            self.rfile.readline()

    def _send(self, resp: Response, head: bool = False) -> None:
        try:
            self._write(resp, head)
        except (ConnectionError, socket.timeout, OSError):
            self.close_connection = True
        finally:
            if resp.on_close is not None:
                resp.on_close()

    def _write(self, resp: Response, head: bool) -> None:
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.content_type)
        for k, v in resp.headers.items():
            self.send_header(k, v)
        if isinstance(resp.body, (bytes, bytearray)):
            body = gzip.compress(bytes(resp.body), 1) if resp.gzip else bytes(resp.body)
            if resp.gzip:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)
            return
        # a stream: chunked, gzip as it goes when asked
        if resp.gzip:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if head:
            self.wfile.write(b"0\r\n\r\n")
            return
        packer = zlib.compressobj(1, zlib.DEFLATED, 31) if resp.gzip else None
        try:
            for chunk in _pieces(resp.body):
                data = packer.compress(chunk) if packer else chunk
                if len(data) >= 65536:  # large: header, body and CRLF apart, the body not copied
                    self.wfile.write(b"%x\r\n" % len(data))
                    self.wfile.write(data)
                    self.wfile.write(b"\r\n")
                elif data:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            if packer:
                tail = packer.flush()
                if tail:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
            self.wfile.write(b"0\r\n\r\n")
        except (ConnectionError, socket.timeout) as exc:
            raise exc
        except Exception as exc:  # the read failed midway: say why, then cut the connection
            text = resp.error_text(exc) if resp.error_text else str(exc).encode()
            data = packer.compress(text) + packer.flush(zlib.Z_SYNC_FLUSH) if packer else text
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            finally:
                self.close_connection = True


def _pieces(body: Iterable[bytes]) -> Iterator[bytes | memoryview]:
    """A streamed body in pieces of at most 4 MiB (views, not copies: a chunk can be large)."""
    step = 4 << 20
    for chunk in body:
        if len(chunk) <= step:
            yield chunk
        else:
            view = memoryview(chunk)
            for i in range(0, len(view), step):
                yield view[i:i + step]
