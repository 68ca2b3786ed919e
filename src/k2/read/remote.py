"""Reading through a running pipeline: the client side of its loopback API.

chDB lets one process open a data dir. While `k2 run` (or `k2 sink`) holds it, the read commands
find its address and token in `<data dir>/k2.run.json` (k2.runfile) and send their (already validated,
parameterized) queries there instead (k2.services.api serves them).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from k2.errors import K2Error
from k2.runfile import read_run_info
from k2.warehouse import RowReads, open_warehouse

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
    return open_warehouse(data_dir, url=warehouse_url, for_reading=True)
