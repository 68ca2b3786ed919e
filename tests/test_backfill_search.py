"""`k2 backfill`'s search for the first trade id at a time (issue 17): every page it asks for is a
page of the REST limit not spent on trades, so it must find the id in a few pages, and exactly.
Against the simulator's Binance REST history (real HTTP); only the requests are counted."""

from __future__ import annotations

import json
import urllib.request

from k2.exchanges import get_adapter
from k2.history.backfill import Backfill, http_get
from k2.simulator.process import SimulatorProcess


def _page(rest: str, from_id: int) -> list[dict]:
    with urllib.request.urlopen(f"{rest}/api/v3/historicalTrades?symbol=BTCUSDT&fromId={from_id}&limit=1000",
                                timeout=20) as r:
        return json.loads(r.read())


def test_the_first_id_at_a_time_is_found_exactly_in_a_few_pages(tmp_path):
    adapter = get_adapter("binance")
    with SimulatorProcess("--exchange", "binance", "--symbols", "BTCUSDT", "--port", "0", "--history-days", "2",
                          "--history-trades-per-day", "40000", "--rest-weight-limit", "0") as sim:
        rest = sim.urls["binance"]["rest"]
        calls: list[str] = []

        def counted(url: str) -> bytes:
            calls.append(url)
            return http_get(url)

        bf = Backfill(adapter, rest, write=lambda rows: len(rows), state_dir=tmp_path, fetch=counted, rate=200.0)
        first = _page(rest, 0)[0]
        newest = json.loads(http_get(f"{rest}/api/v3/trades?symbol=BTCUSDT&limit=1"))[-1]
        span_ms = newest["time"] - first["time"]
        for share in (0.05, 0.37, 0.5, 0.93):
            since_ms = first["time"] + int(span_ms * share)
            calls.clear()
            got = bf.first_id_at("BTCUSDT", since_ms * 1000)
            # exact: the trade at `got` is at or after since, the one before it is not
            at = _page(rest, got)[0]
            before = _page(rest, got - 1)[0]
            assert at["id"] == got and at["time"] >= since_ms, (share, got, at)
            assert before["id"] == got - 1 and before["time"] < since_ms, (share, got, before)
            # a bisection from id 0 took 7-9 pages here (~22 against Binance's real ids); an
            # interpolation needs a handful
            assert len(calls) <= 6, (share, len(calls), calls)
        # before the first trade: the first id there is
        calls.clear()
        assert bf.first_id_at("BTCUSDT", (first["time"] - 86_400_000) * 1000) <= first["id"]
        assert len(calls) <= 40
