"""Handing history work to the running pipeline that holds the data dir (the client side of
k2.services.history_jobs): chDB lets one process open a directory, so while `k2 run` runs,
`k2 import`, `k2 backfill` and `k2 load` send their job (or their rows) to it over its loopback
API, found in `<data dir>/k2.run.json` with its token."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from k2.errors import K2Error
from k2.runfile import read_run_info


class RunningPipeline:
    def __init__(self, info: dict[str, Any]):
        self.base = f"http://{info['addr']}"
        self.token = info["token"]

    def job(self, body: dict, timeout: float = 3600.0) -> dict:
        req = urllib.request.Request(
            self.base + "/api/history", data=json.dumps(body).encode(), method="POST",
            headers={"X-K2-Token": self.token, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                msg = json.loads(exc.read()).get("error", str(exc))
            except ValueError:
                msg = str(exc)
            if exc.code == 404:
                msg = ("the running k2 takes no history work (k2 run --kafka / k2 sink: stop it, or run "
                       "the command against the data dir when it is free)")
            raise K2Error(msg) from None
        except OSError as exc:
            raise K2Error(f"cannot reach the running k2 at {self.base}: {exc}") from None

    def write_rows(self, exchange: str, api: str | None, rows: list[tuple], source: str = "rest") -> int:
        return int(self.job({"job": "rows", "exchange": exchange, "api": api, "rows": rows, "source": source})["written"])


def running_pipeline(data_dir: Path, warehouse_url: str | None) -> RunningPipeline | None:
    """The pipeline holding this embedded data dir, or None (then open the warehouse here)."""
    if warehouse_url:
        return None
    info = read_run_info(data_dir)
    return RunningPipeline(info) if info is not None else None
