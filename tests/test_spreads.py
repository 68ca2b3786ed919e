"""Cross-exchange dislocations (issue 21, ADR 0025): the spreads and quote-basis views give the
exact spread from each venue's last trade and VWAP, with the counts behind each side; `k2 spreads`
prints only the windows over the threshold for N consecutive windows; the quote basis uses the
venues' own conversion pair and is NULL (never 1) when no venue traded it.

Trades are planted in silver with SQL (the materialized views build gold from them as they do
live); the simulator-driven dislocation is in tests/test_market_health.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

from k2.warehouse import open_warehouse

T0 = "2026-07-15 12:00:00"


def insert_trades(wh, rows: list[tuple[str, str, str, str, str]]) -> None:
    """rows: (exchange, canonical symbol, 'YYYY-MM-DD HH:MM:SS.ffffff', price, quantity)."""
    values = []
    for i, (ex, sym, ts, price, qty) in enumerate(rows):
        base, quote = sym.split("/")
        values.append(f"('{ex}', '{base}{quote}', '{sym}', '{base}', '{quote}', '{quote}', 'p{i}', {price}, {qty}, "
                      f"'BUY', '{ts}', '{ts}', '{ts}', 'file', 'plant', map(), true, [])")
    wh.execute("INSERT INTO k2.silver_trades_v2 (exchange, symbol, canonical_symbol, base, quote, currency, trade_id, "
               "price, quantity, side, timestamp, received_at, ingestion_timestamp, source, bronze_table, vendor_data, "
               "is_valid, validation_errors) SETTINGS insert_deduplicate = 0 VALUES " + ", ".join(values))


def second(s: int, frac: str = "000000") -> str:
    return f"2026-07-15 12:00:{s:02d}.{frac}"


def dataset() -> list[tuple[str, str, str, str, str]]:
    rows = []
    # BTC/USDT: okx is 12 bp above binance for seconds 10, 11, 12 (a 3-window run), 1 bp at 13,
    # 12 bp again at 14 (a run of one), below binance at 15 (the sign flips: a new run)
    for s in range(10, 16):
        rows.append(("binance", "BTC/USDT", second(s, "100000"), "100000", "0.5"))
        rows.append(("binance", "BTC/USDT", second(s, "900000"), "100000", "0.25"))
        okx = {10: "100120", 11: "100120", 12: "100120", 13: "100010", 14: "100120", 15: "99880"}[s]
        rows.append(("okx", "BTC/USDT", second(s, "500000"), okx, "0.01"))
    # bybit trades only in second 10 (a thin side: one trade)
    rows.append(("bybit", "BTC/USDT", second(10, "200000"), "100050", "0.002"))
    # quote basis, minute 12:01: BTC/USD 100000, BTC/USDT 100100, USDT/USD 0.999 (kraken);
    # ETH/USD and ETH/USDC trade but nothing converts USDC to USD: basis NULL, never 1
    rows += [("coinbase", "BTC/USD", "2026-07-15 12:01:05.000000", "100000", "1"),
             ("binance", "BTC/USDT", "2026-07-15 12:01:06.000000", "100100", "1"),
             ("kraken", "USDT/USD", "2026-07-15 12:01:07.000000", "0.999", "1000"),
             ("coinbase", "ETH/USD", "2026-07-15 12:01:08.000000", "3000", "1"),
             ("coinbase", "ETH/USDC", "2026-07-15 12:01:09.000000", "3003", "1")]
    return rows


def bps(a: str, b: str) -> Decimal:
    return ((Decimal(b) - Decimal(a)) * 10000 / Decimal(a)).quantize(Decimal("0.00000001"), rounding=ROUND_DOWN)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spreads") / "k2data"
    wh = open_warehouse(path)
    try:
        insert_trades(wh, dataset())
    finally:
        wh.close()
    return path


def k2(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "k2", *args, "--data-dir", str(data_dir)], capture_output=True,
                          text=True, timeout=180)


def test_spreads_runs_over_the_threshold(data_dir):
    r = k2(data_dir, "spreads", "BTC/USDT", "--interval", "1s", "--venues", "binance,okx", "--min-bps", "10",
           "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    got = [(row["window"], row["run_windows"], row["run_start"]) for row in rows]
    assert got == [("2026-07-15T12:00:10Z", 3, "2026-07-15T12:00:10Z"),
                   ("2026-07-15T12:00:11Z", 3, "2026-07-15T12:00:10Z"),
                   ("2026-07-15T12:00:12Z", 3, "2026-07-15T12:00:10Z"),
                   ("2026-07-15T12:00:14Z", 1, "2026-07-15T12:00:14Z"),
                   ("2026-07-15T12:00:15Z", 1, "2026-07-15T12:00:15Z")]
    first = rows[0]
    assert (first["venue_a"], first["venue_b"]) == ("binance", "okx")
    assert Decimal(first["last_spread_bps"]) == bps("100000", "100120") == Decimal("12")
    assert Decimal(rows[-1]["last_spread_bps"]) == Decimal("-12")
    assert (first["trades_a"], first["trades_b"]) == (2, 1)
    assert Decimal(first["volume_a"]) == Decimal("0.75") and Decimal(first["volume_b"]) == Decimal("0.01")
    assert first["last_trade_at_a"] == "2026-07-15T12:00:10.900000Z"
    assert first["last_trade_at_b"] == "2026-07-15T12:00:10.500000Z"

    r = k2(data_dir, "spreads", "BTC/USDT", "--interval", "1s", "--venues", "binance,okx", "--min-bps", "10",
           "--min-windows", "3", "--format", "csv")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('"window","symbol","venue_a","venue_b","last_spread_bps"')
    assert [line.split(",")[0] for line in lines[1:]] == ['"2026-07-15T12:00:10Z"', '"2026-07-15T12:00:11Z"',
                                                           '"2026-07-15T12:00:12Z"']
    # the table holds in a terminal: the window, the venue pair, the spread, both prices, counts, run
    r = k2(data_dir, "spreads", "BTC/USDT", "--interval", "1s", "--min-bps", "10", "--min-windows", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].replace("(UTC)", "").split() == ["window", "venues", "bps", "last_a", "last_b", "n_a", "n_b",
                                                       "run"]
    assert set(lines[1]) <= {"-", " "}  # the rule under the header
    assert len(lines) == 5 and all(len(line) <= 100 for line in lines), r.stdout
    assert "binance/okx" in lines[2] and "100,120.00" in lines[2]
    # a run of 3 is not a run of 4: nothing to show, said on stderr, exit 0
    r = k2(data_dir, "spreads", "BTCUSDT", "--interval", "1s", "--venues", "binance,okx", "--min-bps", "10",
           "--min-windows", "4")
    assert r.returncode == 0 and r.stdout == "" and "(no rows)" in r.stderr, r


def test_thin_side_and_vwap_spread_in_the_minute(data_dir):
    """The 1m windows come from the candles' states: vwap and last both, with bybit's single
    trade visible as trades_b = 1."""
    r = k2(data_dir, "spreads", "BTC/USDT", "--since", "2026-07-15T12:00:00Z", "--until", "2026-07-15T12:01:00Z",
           "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = {(x["venue_a"], x["venue_b"]): x for x in map(json.loads, r.stdout.splitlines())}
    assert set(rows) == {("binance", "bybit"), ("binance", "okx"), ("bybit", "okx")}
    bo = rows[("binance", "okx")]
    assert Decimal(bo["last_spread_bps"]) == bps("100000", "99880")
    vwap_okx = sum(Decimal(p) * Decimal("0.01") for p in ("100120", "100120", "100120", "100010", "100120", "99880")) \
        / Decimal("0.06")
    assert Decimal(bo["vwap_b"]) == vwap_okx.quantize(Decimal("1e-18"), rounding=ROUND_DOWN)
    assert Decimal(bo["vwap_spread_bps"]) == bps("100000", str(vwap_okx.quantize(Decimal("1e-18"), rounding=ROUND_DOWN)))
    assert (bo["trades_a"], bo["trades_b"]) == (12, 6)
    assert rows[("binance", "bybit")]["trades_b"] == 1


def test_quote_basis_uses_the_traded_conversion_pair(data_dir):
    r = k2(data_dir, "query", "SELECT base, quote_a, quote_b, rate_pair, rate_b_in_a, basis_bps FROM quote_basis_1m "
                              "WHERE window_start = '2026-07-15 12:01:00' ORDER BY base, quote_a, quote_b",
           "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by = {(x["base"], x["quote_a"], x["quote_b"]): x for x in rows}
    btc = by[("BTC", "USD", "USDT")]
    assert btc["rate_pair"] == "USDT/USD" and btc["rate_b_in_a"] == pytest.approx(0.999)
    assert btc["basis_bps"] == pytest.approx(round((100100 * 0.999 / 100000 - 1) * 10000, 4))
    eth = by[("ETH", "USD", "USDC")]
    assert eth["rate_pair"] == "" and eth["rate_b_in_a"] is None and eth["basis_bps"] is None


@pytest.mark.parametrize("args, message", [
    (("--venues", "binance"), "--venues needs two or more exchanges"),
    (("--venues", "binance,nowhere"), "nowhere"),
    (("--interval", "5s"), "unknown spread interval '5s'"),
    (("--min-bps", "lots"), "--min-bps must be a number"),
    (("--min-bps", "-1"), "--min-bps must be 0 or more"),
    (("--min-windows", "0"), "--min-windows must be 1 or more"),
    (("--since", "2026-07-16", "--until", "2026-07-15"), "is not before --until"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    """Refused before any work: the data dir does not even exist."""
    r = k2(tmp_path / "absent", "spreads", "BTC/USDT", *args)
    assert r.returncode == 2, r
    assert r.stderr.startswith("k2: error: ") and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "absent").exists()


def test_unknown_symbol_is_an_error(data_dir):
    r = k2(data_dir, "spreads", "NOPE/USD")
    assert r.returncode == 2 and "unknown symbol 'NOPE/USD'" in r.stderr, r


def test_python_api_spreads_equal_the_cli(data_dir):
    import k2

    with k2.connect(data_dir) as con:
        table = con.spreads("BTC/USDT", "binance,okx", "1s", min_bps=10, min_windows=3)
        assert table.column("window").to_pylist() == ["2026-07-15T12:00:10Z", "2026-07-15T12:00:11Z",
                                                      "2026-07-15T12:00:12Z"]
        assert [Decimal(str(x)) for x in table.column("last_spread_bps").to_pylist()] == [Decimal("12")] * 3
        df = con.spreads("BTCUSDT", ["okx", "binance"], since="2026-07-15T12:00:00Z", format="pandas")
        assert set(zip(df["venue_a"], df["venue_b"])) == {("binance", "okx")}
        with pytest.raises(k2.K2Error, match="unknown spread interval"):
            con.spreads("BTC/USDT", interval="1h")
