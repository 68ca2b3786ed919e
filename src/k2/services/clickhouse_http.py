"""ClickHouse's HTTP interface, as its clients use it, over K2's read door.

`clickhouse-connect`, `clickhouse-client --protocol http`-style tools, the Grafana ClickHouse
datasource (HTTP protocol), DBeaver and `curl` talk to `k2 run` / `k2 serve` as to a ClickHouse
server (https://clickhouse.com/docs/interfaces/http):

* the query in `?query=` or the POST body (or both: the body follows); `FORMAT` in the query or
  `default_format`; `param_<name>` values for `{name:Type}`; `database`; `query_id`;
* settings in the URL: output settings and lower limits are taken, anything else is refused as a
  read-only ClickHouse user is refused (k2.warehouse.reads.read_settings);
* `GET /ping` and `GET /` answer `Ok.`; the response carries `X-ClickHouse-Format`,
  `X-ClickHouse-Query-Id`, `X-ClickHouse-Timezone`, `X-ClickHouse-Server-Display-Name` and
  `X-ClickHouse-Summary`; an error is ClickHouse's text (`Code: N. DB::Exception: ... (NAME)`) with
  `X-ClickHouse-Exception-Code` and the HTTP status ClickHouse would give;
* gzip when the client asks (`enable_http_compression=1` and `Accept-Encoding: gzip`), and
  gzip-encoded request bodies.

Sessions (`session_id`) are accepted and ignored: every read has a session of its own.
"""

from __future__ import annotations

import gzip
import json
import uuid
import zlib
from typing import Any

from k2.config import ReadSettings
from k2.errors import K2Error, QueryError
from k2.services.api import Request, Response, Route

#: what `SELECT version()` answers in chDB 4.4 / the server K2 speaks for
SERVER_NAME = "k2"
#: URL parameters that belong to the HTTP transport, not to ClickHouse settings
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "query_id", "user", "password", "quota_key", "session_id",
    "session_timeout", "session_check", "compress", "decompress", "enable_http_compression",
    "http_zlib_compression_level", "send_progress_in_http_headers", "http_headers_progress_interval_ms",
    "wait_end_of_query", "buffer_size", "client_protocol_version", "role", "http_response_buffer_size",
    "http_native_compression_disable_checksumming_on_decompress", "add_http_cors_header",
    "cancel_http_readonly_queries_on_client_close", "max_query_size", "http_wait_end_of_query",
})
#: Content-Type of each output format, as ClickHouse sends it
_TEXT = "text/plain; charset=UTF-8"
CONTENT_TYPES = {
    "TabSeparated": "text/tab-separated-values; charset=UTF-8", "TSV": "text/tab-separated-values; charset=UTF-8",
    "TabSeparatedWithNames": "text/tab-separated-values; charset=UTF-8",
    "TSVWithNames": "text/tab-separated-values; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent", "CSVWithNames": "text/csv; charset=UTF-8; header=present",
    "JSON": "application/json; charset=UTF-8", "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8", "JSONCompactEachRow": "application/x-ndjson; charset=UTF-8",
    "Native": "application/octet-stream", "RowBinary": "application/octet-stream",
    "Arrow": "application/octet-stream", "ArrowStream": "application/octet-stream",
    "Parquet": "application/octet-stream",
}
#: HTTP status ClickHouse answers for an error code (the rest are 500, syntax-like ones 400)
_STATUS = {
    516: 401, 192: 401, 193: 401, 194: 401, 164: 403, 497: 403, 358: 403, 60: 404, 81: 404,
    202: 503, 159: 500, 241: 500, 396: 500, 394: 500,
}
_BAD_REQUEST = {62, 36, 47, 46, 43, 53, 73, 115, 456, 457, 26, 27, 6, 32, 38, 41, 44, 48, 117, 386}


def error_text(code: int, name: str, message: str) -> bytes:
    return f"Code: {code}. DB::Exception: {message}. ({name or 'UNKNOWN'})\n".encode()


def error_response(code: int, name: str, message: str) -> Response:
    status = _STATUS.get(code, 400 if code in _BAD_REQUEST else 500)
    return Response(status, error_text(code, name, message), _TEXT, {"X-ClickHouse-Exception-Code": str(code)})


def _failed(exc: BaseException) -> bytes:
    if isinstance(exc, QueryError):
        return error_text(exc.code, exc.name, str(exc))
    return error_text(1002, "UNKNOWN_EXCEPTION", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


def _body_text(req: Request) -> str:
    data = req.body
    enc = req.header("Content-Encoding").lower()
    if data and enc in ("gzip", "x-gzip"):
        data = gzip.decompress(data)
    elif data and enc == "deflate":
        data = zlib.decompress(data)
    elif data and enc and enc != "identity":
        raise QueryError(f"Content-Encoding {enc} is not supported (gzip, deflate)", 1, "UNSUPPORTED_METHOD")
    return data.decode("utf-8")


def clickhouse_routes(reads: Any, limits: ReadSettings) -> list[Route]:
    """The routes of ClickHouse's HTTP interface over `reads` (a read door, or None: no warehouse)."""

    def ping(_req: Request) -> Response:
        return Response(200, b"Ok.\n", _TEXT)

    def query(req: Request) -> Response:
        try:
            sql = req.params.get("query", "")
            if req.method == "POST":
                body = _body_text(req)
                sql = f"{sql}\n{body}" if sql and body else (sql or body)
        except (OSError, ValueError, zlib.error) as exc:
            return error_response(27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED", f"cannot read the request body: {exc}")
        except QueryError as exc:
            return error_response(exc.code, exc.name, str(exc))
        if not sql.strip():
            if req.method in ("GET", "HEAD"):
                return ping(req)
            return error_response(62, "SYNTAX_ERROR", "Empty query")
        if reads is None:
            return error_response(1002, "UNKNOWN_EXCEPTION", "this process has no warehouse (k2 feed): "
                                                             "ask the process that holds the data")
        params = {k[6:]: v for k, v in req.params.items() if k.startswith("param_")}
        settings = {k: v for k, v in req.params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        query_id = req.params.get("query_id") or str(uuid.uuid4())
        try:
            stream = reads.stream(sql, req.params.get("default_format") or "TabSeparated", params, settings,
                                  req.params.get("database") or "k2")
        except QueryError as exc:
            return error_response(exc.code, exc.name, str(exc))
        except K2Error as exc:
            return error_response(1002, "UNKNOWN_EXCEPTION", str(exc))
        summary = {"read_rows": "0", "read_bytes": "0", "written_rows": "0", "written_bytes": "0",
                   "total_rows_to_read": "0", "result_rows": "0", "result_bytes": "0", "elapsed_ns": "0"}
        summary.update({k: str(v) for k, v in stream.summary.items()})
        headers = {
            "X-ClickHouse-Server-Display-Name": SERVER_NAME,
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Format": stream.format,
            "X-ClickHouse-Timezone": "UTC",
            "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
            "Keep-Alive": f"timeout={int(limits.idle_timeout_s)}",
        }
        wants_gzip = (req.params.get("enable_http_compression") in ("1", "true")
                      and "gzip" in req.header("Accept-Encoding").lower())
        return Response(200, stream, CONTENT_TYPES.get(stream.format, _TEXT), headers, gzip=wants_gzip,
                        on_close=stream.close, error_text=_failed)

    return [
        Route("GET", "/ping", ping),
        Route("GET", "/", query, "reader"),
        Route("POST", "/", query, "reader"),
    ]
