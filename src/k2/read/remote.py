"""Where a read goes: the running pipeline's endpoint, a ClickHouse server, or the data dir itself.

chDB lets one process open a data dir. While `k2 run` (or `k2 sink`, `k2 serve`) holds it, the read
commands and the Python API find its address and token in `<data dir>/k2.run.json` (k2.runfile)
and ask it over ClickHouse's HTTP interface (k2.services.clickhouse_http), with Arrow IPC on the
wire for Arrow results; otherwise they open the directory and read through its read door. Either
way a read is read-only and limited (k2.warehouse.reads).

`ClickHouseHTTP` is the client side of that interface; it talks to a K2 endpoint and to a real
ClickHouse server alike.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlencode

from k2.config import ReadSettings
from k2.errors import K2Error, QueryError
from k2.runfile import read_run_info
from k2.warehouse import RowReads, open_warehouse
from k2.warehouse.reads import query_error, tsv_escape


class ClickHouseHTTP(RowReads):
    """A client of ClickHouse's HTTP interface: `query` (text), `arrow_batches` (ArrowStream),
    `rows`/`scalar` (RowReads). Errors are QueryErrors with ClickHouse's code and name."""

    backend = "remote"

    def __init__(self, base: str, user: str = "default", password: str = "", database: str = "k2",
                 timeout: float = 300.0, token: str = ""):
        self.base = base.rstrip("/")
        self.user, self.password, self.database = user, password, database
        self.timeout = timeout
        self.token = token

    def _headers(self) -> dict[str, str]:
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {auth}", "Content-Type": "text/plain; charset=utf-8"}

    def open(self, sql: str, fmt: str, params: dict[str, Any] | None = None,
             settings: dict[str, Any] | None = None) -> "_Response":
        """The HTTP response of one query (a file: read it, then close it). A read that fails
        midway raises the error the endpoint ended the response with."""
        url_params: dict[str, str] = {"database": self.database, "default_format": fmt}
        for k, v in (settings or {}).items():
            url_params[k] = str(int(v)) if isinstance(v, bool) else str(v)
        for k, v in (params or {}).items():
            url_params[f"param_{k}"] = tsv_escape(str(v))
        req = urllib.request.Request(f"{self.base}/?{urlencode(url_params)}", data=sql.encode("utf-8"),
                                     method="POST", headers=self._headers())
        try:
            return _Response(urllib.request.urlopen(req, timeout=self.timeout))
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace").strip()
            code = exc.headers.get("X-ClickHouse-Exception-Code")
            err = query_error(text or f"HTTP {exc.code}")
            if code and code.isdigit():
                err.code = int(code)
            raise err from None
        except OSError as exc:
            raise K2Error(f"cannot reach {self.base}: {getattr(exc, 'reason', exc)}") from None

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
              settings: dict[str, Any] | None = None) -> str:
        with self.open(sql, fmt, params, settings) as resp:
            return resp.read().decode("utf-8", "replace")

    def stream(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
               settings: dict[str, Any] | None = None) -> Iterator[bytes]:
        with self.open(sql, fmt, params, settings) as resp:
            while True:
                data = resp.read(1 << 20)
                if not data:
                    return
                yield data

    def arrow_batches(self, sql: str, params: dict | None = None, settings: dict[str, Any] | None = None,
                      check: bool = False):
        """(schema, batches) of an ArrowStream answer, read as it arrives."""
        import pyarrow as pa

        resp = self.open(sql, "ArrowStream", params, settings)
        try:
            reader = pa.ipc.open_stream(resp)
        except Exception as exc:
            resp.close()
            raise K2Error(f"bad Arrow stream from {self.base}: {exc}") from None
        return reader.schema, _ResponseBatches(reader, resp)

    def arrow(self, sql: str, params: dict | None = None, settings: dict[str, Any] | None = None,
              check: bool = False):
        import pyarrow as pa

        schema, batches = self.arrow_batches(sql, params, settings)
        try:
            return pa.Table.from_batches(list(batches), schema=schema)
        finally:
            batches.close()

    def close(self) -> None:
        pass


class _Response(io.RawIOBase):
    """An HTTP response body as a file; when the endpoint cut it midway (after writing ClickHouse's
    error text, the way ClickHouse does), reading raises that error as a QueryError."""

    def __init__(self, resp):
        self._resp = resp
        self._tail = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            n = self._resp.readinto(b)
        except http.client.IncompleteRead as exc:
            raise self._failed(exc.partial) from None
        except OSError as exc:
            raise K2Error(f"the read failed midway: {exc}") from None
        if n >= 4096:
            self._tail = bytes(b[n - 4096:n])
        elif n:
            self._tail = (self._tail + bytes(b[:n]))[-4096:]
        return n

    def _failed(self, partial: bytes) -> K2Error:
        text = (self._tail + (partial or b""))[-4096:].decode("utf-8", "replace")
        at = text.rfind("Code: ")
        if at >= 0:
            return query_error(text[at:])
        return K2Error("the read failed midway: the endpoint cut the response")

    def close(self) -> None:
        self._resp.close()
        super().close()


class _ResponseBatches:
    def __init__(self, reader, resp):
        self._reader, self._resp = reader, resp

    def __iter__(self):
        return self

    def __next__(self):
        try:
            return self._reader.read_next_batch()
        except StopIteration:
            self.close()
            raise
        except K2Error:
            self.close()
            raise
        except Exception as exc:  # the endpoint cut the stream: a timeout or error midway
            self.close()
            raise K2Error(f"the read failed midway: {exc}") from None

    def close(self) -> None:
        self._resp.close()


class RemoteReader(ClickHouseHTTP):
    """Reads through a running K2 service (its run file gives the address and the token)."""

    def __init__(self, info: dict[str, Any], timeout: float = 300.0):
        super().__init__(f"http://{info['addr']}", "k2", info["token"], "k2", timeout, token=info["token"])

    def _k2_call(self, path: str, body: dict | None = None, timeout: float = 10.0):
        req = urllib.request.Request(self.base + path, data=json.dumps(body).encode() if body is not None else None,
                                     method="POST" if body is not None else "GET",
                                     headers={"X-K2-Token": self.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read()).get("error", str(exc))
            except ValueError:
                msg = str(exc)
            raise K2Error(msg) from None
        except OSError as exc:
            raise K2Error(f"cannot reach the running k2 at {self.base}: {exc}") from None

    def status(self) -> dict:
        return json.loads(self._k2_call("/api/status"))

    def write(self, sql: str, fmt: str = "TabSeparated") -> str:
        return self._k2_call("/api/write", {"sql": sql, "fmt": fmt}, timeout=self.timeout).decode("utf-8", "replace")


class LocalReader(RowReads):
    """The read door of a warehouse this process opened (a data dir, or a ClickHouse server)."""

    def __init__(self, wh, limits: ReadSettings | None = None):
        self.wh = wh
        self.door = wh.reads(limits)
        self.backend = wh.backend

    def query(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
              settings: dict[str, Any] | None = None) -> str:
        return self.door.query(sql, fmt, params, settings)

    def stream(self, sql: str, fmt: str = "TabSeparated", params: dict | None = None,
               settings: dict[str, Any] | None = None) -> Iterator[bytes]:
        with self.door.stream(sql, fmt, params, settings) as s:
            yield from s

    def arrow_batches(self, sql: str, params: dict | None = None, settings: dict[str, Any] | None = None,
                      check: bool = False):
        return self.door.arrow_batches(sql, params, settings, check)

    def arrow(self, sql: str, params: dict | None = None, settings: dict[str, Any] | None = None,
              check: bool = False):
        return self.door.arrow(sql, params, settings, check)

    def write(self, sql: str, fmt: str = "TabSeparated") -> str:
        return self.door.write(sql, fmt)

    def close(self) -> None:
        self.wh.close()


def open_reader(data_dir: Path, warehouse_url: str | None = None, limits: ReadSettings | None = None,
                lean: bool = False):
    """The running pipeline when one holds this data dir, else the warehouse itself. `lean`: a
    long read (k2 export) opens the data dir like the long-running writers do, giving back the
    library pages only opening needed (docs/adr/0008)."""
    if not warehouse_url:
        info = read_run_info(data_dir)
        if info is not None:
            return RemoteReader(info)
    return LocalReader(open_warehouse(data_dir, url=warehouse_url, release_startup_pages=lean,
                                      for_reading=True), limits)


__all__ = ["ClickHouseHTTP", "LocalReader", "QueryError", "RemoteReader", "open_reader"]
