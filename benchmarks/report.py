"""Render the benchmark report (Markdown) and write it with the raw JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from _common import BENCH, fmt_num, fmt_summary

#: every section the report must hold (tests/test_benchmarks.py checks these headings)
HEADINGS = [
    "## Floors",
    "## 1. Parse + normalize per adapter (one core)",
    "## 2. `k2 load` (1M-trade frame files)",
    "## 3. Live end-to-end: simulator → WebSocket → feed → bronze → silver → gold",
    "## 4. Ingest latency at fixed rates",
    "## 5. Resources: `k2 run` (embedded) and `k2 feed` (Kafka mode)",
    "## 6. Kafka path",
    "## 7. Reads: 1m candles",
    "## 8. Side by side with cryptofeed",
    "## 9. Where the time goes",
    "## 10. The read door: Python API, `k2 export`, reads beside ingest",
    "## 11. History: `k2 import` and `k2 backfill`",
]


def _status(sec: dict | None) -> str | None:
    if sec is None:
        return "_not run (see --only)_"
    if sec.get("status") == "skipped":
        return f"_skipped: {sec.get('error', '')}_"
    if sec.get("status") == "error":
        return f"_failed: `{sec.get('error', '')[:600]}`_"
    return None


def _section(add, heading: str, sec: dict | None) -> str | None:
    """A section's heading, and its status line when it has no figures (not run, failed): returns
    that line (None when the figures follow)."""
    add(heading)
    add("")
    st = _status(sec)
    if st:
        add(st)
    return st


def _la(sec: dict) -> str:
    return (f"_{sec.get('seconds', 0):.0f} s; load average {sec.get('loadavg_before', ['?'])[0]} before, "
            f"{sec.get('loadavg_after', ['?'])[0]} after._")


def render(r: dict[str, Any]) -> str:
    m = r["machine"]
    S = r["sections"]
    L: list[str] = []
    add = L.append
    add("# K2 benchmark report")
    add("")
    add(f"{m['date_utc']} UTC · size **{r['size']}** · {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB · "
        f"Linux {m['kernel']} · Python {m['python']} · K2 commit {m.get('k2_commit') or '?'}")
    add("")
    add("Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    add("")
    add(f"Load average (1/5/15 min) at start {', '.join(f'{x:.2f}' for x in m['loadavg_start'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in m.get('loadavg_end', []))}; the machine is shared, so every section "
        f"records its own. Total {r.get('total_seconds', 0):.0f} s. Reproduce: `{r['command']}`.")
    add("")
    for u in r.get("updates", []):
        um = u["machine"]
        add(f"Sections `{u['sections']}` re-run {um['date_utc']} UTC (K2 commit {um.get('k2_commit') or '?'}, load average "
            f"{um['loadavg_start'][0]:.2f} at start, {u.get('loadavg_end', ['?'])[0]} at end).")
        add("")
    add("Figures are medians of repeated runs with (min–max); runs and raw values are in report.json. "
        "\"One core\" = the measured process pinned with `taskset -c 1`, the simulator pinned to CPU 0.")
    if r["size"] != "full":
        add("")
        add(f"> **Size `{r['size']}`: a smoke run. The figures prove the suite works; they are not "
            "measurements (too short, too small). Use the full size for numbers.**")
    add("")

    # -- floors --
    add(HEADINGS[0])
    add("")
    add("| floor | target | measured | result |")
    add("|---|---:|---:|---|")
    for f in r.get("floors", []):
        v = f["measured"]
        val = "–" if v is None else (f"{v:,.2f}" if f["unit"] == "x" else f"{v:,.1f}" if f["unit"] == "ms" else f"{v:,.0f}")
        res = "not measured" if f["pass"] is None else ("**pass**" if f["pass"] else "**MISS**")
        add(f"| {f['floor']} | {f['target']} {f['unit']} | {val} {f['unit']} | {res} |")
    add("")

    # -- 1 parse --
    sec = S.get("parse")
    st = _section(add, HEADINGS[1], sec)
    if not st:
        add("`adapter.parse(frame, received_us)` over frames the simulator encodes exactly as each venue sends "
            "them (Binance in the combined-stream envelope `k2 run` receives), in memory, in a process pinned to "
            "CPU 1; median of the passes. This is all the Python work a frame gets: msgspec typed decode, "
            "validation, bronze row tuples; symbol mapping, decimals and times are normalized in SQL (silver).")
        add("")
        add("| adapter | trades/frame | frames/s | trades/s | µs/trade |")
        add("|---|---:|---:|---:|---:|")
        for row in sec["rows"]:
            add(f"| {row['exchange']} | {row['trades_per_frame']} | {fmt_summary(row['frames_per_s'])} | "
                f"{fmt_summary(row['trades_per_s'])} | {fmt_summary(row['us_per_trade'], 2)} |")
        add("")
        add(_la(sec))
    add("")

    # -- 2 load --
    sec = S.get("load")
    st = _section(add, HEADINGS[2], sec)
    if not st:
        add("`k2 load FILE --exchange X` into a fresh embedded data dir (one process: parse on the main thread, "
            "insert on a writer thread; not pinned). trades/s is `k2 load`'s own figure (file open to last "
            "commit); wall includes process start, chDB start and schema apply. CPU = cores used over the wall "
            "time; peak RSS = the process's own VmHWM (not wait4's ru_maxrss, which carries the benchmark process's peak).")
        add("")
        add("| exchange | trades | runs | trades/s | load s | wall s | CPU cores | peak RSS MB |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for row in sec["rows"]:
            add(f"| {row['exchange']} | {row['trades']:,} | {len(row['runs'])} | {fmt_summary(row['trades_per_s'])} | "
                f"{fmt_summary(row['seconds'], 2)} | {fmt_summary(row['wall_s'], 2)} | "
                f"{fmt_summary(row['cpu_cores'], 2)} | {fmt_summary(row['maxrss_mb'])} |")
        big = sec.get("big")
        if big:  # issue 22: memory must not grow with the file
            add(f"| binance (bounded-memory run) | {big['trades']:,} | 1 | {big['trades_per_s']:,.0f} | "
                f"{big['seconds']:.2f} | {big['wall_s']:.2f} | {big['cpu_s'] / big['wall_s']:.2f} | "
                f"{big['maxrss_mb']:.0f} |")
        add("")
        base = sec.get("baseline")
        if base and base.get("status") == "ok":  # issue 22: the rate must not fall below the 2026-12-04 code's
            pairs = base["ratio"]["n"]
            add(f"Against the 2026-12-04 code (`git archive {base['commit']}`), the {base['trades']:,}-trade Binance "
                f"file, {pairs} alternating pair{'s' if pairs != 1 else ''}: this code "
                f"{fmt_summary(base['today_trades_per_s'])} trades/s at {fmt_summary(base['today_maxrss_mb'])} MB, "
                f"the 2026-12-04 code {fmt_summary(base['baseline_trades_per_s'])} trades/s at "
                f"{fmt_summary(base['baseline_maxrss_mb'])} MB; ratio of each pair "
                f"{', '.join(f'{x:.2f}' for x in base['ratios'])} (median **{base['ratio']['median']:.2f}**).")
            if base.get("two_streams_ratio"):  # not the floor's: an option that buys rate with memory
                add(f"With `--streams 2` (ADR 0036; not the default) in the same rotation: "
                    f"{fmt_summary(base['two_streams_trades_per_s'])} trades/s at "
                    f"{fmt_summary(base['two_streams_maxrss_mb'])} MB; ratio to the 2026-12-04 code "
                    f"{', '.join(f'{x:.2f}' for x in base['two_streams_ratios'])} "
                    f"(median {base['two_streams_ratio']['median']:.2f}).")
            add("")
        elif base:
            add(f"The comparison with the 2026-12-04 code did not run: {base.get('error', '')}")
            add("")
        add(_la(sec))
    add("")

    # -- 3 live --
    sec = S.get("live")
    st = _section(add, HEADINGS[3], sec)
    if not st:
        add("Simulator (Binance, 4 symbols, steady rate, one trade per frame, CPU 0) → `k2 run --exchange binance` "
            "(embedded, default batching) at increasing offered rates. A rate is **sustained** when over the "
            "measurement window: received ≥ 97 % and written ≥ 95 % of the rate the simulator really offered; the "
            "writer buffer stays under one second of trades and does not grow (mean of the last third ≤ first third "
            "+ 0.25 s of trades); ingest latency p99 < 1 s and not growing (last-third p99 ≤ 1.5 × first-third "
            "+ 100 ms); no reconnect; the simulator neither cut K2 nor fell behind its own clock. A rate counts "
            "when most of its runs sustained it (the boundary is run again).")
        add("")
        add(f"**Highest sustained rate: {fmt_num(sec.get('highest_sustained'))} trades/s.**")
        add("")
        add("| offered/s | runs | sustained | written/s | p99 ms | k2 run CPU cores | peak RSS MB | why not |")
        add("|---:|---:|---:|---:|---:|---:|---:|---|")
        for s in sec["steps"]:
            why = "; ".join(sorted({w for v in s["verdicts"] for w in v}))[:300]
            add(f"| {s['rate']:,.0f} | {s['runs']} | {s['sustained_runs']}/{s['runs']} | {fmt_summary(s['written_per_s'])} | "
                f"{fmt_summary(s['p99_ms'], 1)} | {fmt_summary(s['cpu_cores'], 2)} | {fmt_summary(s['rss_peak_mb'])} | "
                f"{why or '–'} |")
        add("")
        add(_la(sec))
    add("")

    # -- 4 latency --
    add(HEADINGS[4])
    add("")
    if st:
        add(st)
    else:
        add("Silver `ingestion_timestamp` − exchange trade time (Binance `T`, ms) for the trades made during the "
            "window; the simulator stamps trades with its wall clock when it publishes them, so this is "
            "WebSocket + parse + batching + insert + views (+ ≤ 1 ms of `T` truncation).")
        add("")
        add("| offered/s | runs | p50 ms | p99 ms | p99.9 ms | max ms | written/s |")
        add("|---:|---:|---:|---:|---:|---:|---:|")
        for row in sec["latency"]:
            add(f"| {row['rate']:,} | {row['runs']} | {fmt_summary(row['p50'], 1)} | {fmt_summary(row['p99'], 1)} | "
                f"{fmt_summary(row['p999'], 1)} | {fmt_summary(row['max'], 1)} | {fmt_summary(row['written_per_s'])} |")
    add("")

    # -- 5 resources --
    add(HEADINGS[5])
    add("")
    if not st:
        add("`k2 run` (embedded): peak RSS (VmHWM) and CPU over the window, per live run above, with CPU split by "
            "thread (Python main thread = event loop: WebSocket, parse, feed; other Python threads = writer "
            "(pyarrow batch, chDB calls), HTTP; chDB's own pools by name).")
        add("")
        add("| offered/s | runs | CPU cores | % of a core per 1k trades/s | peak RSS MB | of which anonymous MB | CPU by thread (cores) |")
        add("|---:|---:|---:|---:|---:|---:|---|")
        for row in sec["latency"]:
            th = row.get("threads") or {}
            split = ", ".join(f"{k} {v['median']:.3f}" for k, v in sorted(th.items(), key=lambda kv: -(kv[1]['median'] or 0)))
            add(f"| {row['rate']:,} | {row['runs']} | {fmt_summary(row['cpu_cores'], 3)} | "
                f"{fmt_summary(row['cpu_pct_per_1k'], 2)} | {fmt_summary(row['rss_peak_mb'])} | "
                f"{fmt_summary(row.get('rss_anon_max_mb'))} | {split} |")
        add("")
        above = sec.get("rss_peak_above_floor_rate")
        above_text = (f"at the sustained rates above 50,000/s: {fmt_num(above['mb'], 1)} MB (at {above['rate']:,.0f}/s); "
                      if above else "")
        add(f"Worst peak RSS of `k2 run` at 1k/10k/s and at sustained rates up to 50,000/s (the live floor's rate): "
            f"**{fmt_num(sec.get('rss_peak_max_mb'), 1)} MB**; {above_text}"
            f"over every run, overloaded ones included: {fmt_num(sec.get('rss_peak_max_all_mb'), 1)} MB. "
            "RSS counts the pages of chDB's 500 MB library that were touched (file-backed, shared, reclaimable) "
            "as well as anonymous memory; the anonymous column is what the process itself allocated.")
        add("")
    fs = S.get("feed")
    fst = _status(fs)
    if fst:
        add(f"`k2 feed`: {fst}")
    else:
        add("`k2 feed --kafka` (no warehouse; must not load chDB) publishing to a local tansu broker (memory "
            "storage), simulator Binance at the offered rate.")
        add("")
        add("| offered/s | runs | published/s | CPU cores | % of a core per 1k trades/s | peak RSS MB | chDB mapped |")
        add("|---:|---:|---:|---:|---:|---:|---|")
        for row in fs["rows"]:
            add(f"| {row['rate']:,} | {len(row['runs'])} | {fmt_summary(row['published_per_s'])} | "
                f"{fmt_summary(row['cpu_cores'], 3)} | {fmt_summary(row['cpu_pct_per_1k'], 2)} | "
                f"{fmt_summary(row['rss_peak_mb'], 1)} | {'**yes**' if row['chdb_loaded'] else 'no'} |")
        add("")
        add(_la(fs))
    add("")

    # -- 6 kafka --
    sec = S.get("kafka")
    st = _section(add, HEADINGS[6], sec)
    if not st:
        add("`benchmarks/kafka_bench.py` (the Kafka engineer's), each case on a fresh tansu broker:")
        add("")
        t = sec["transport"]
        add(f"- **Produce** (`KafkaTransport.submit()` of pre-parsed Binance rows, one call per trade, acks=all, "
            f"idempotent, until all acknowledged): **{fmt_summary(t['acked_per_s'])} trades/s** "
            f"(enqueue {fmt_summary(t['enqueue_per_s'])}/s), {len(t['runs'])} runs of {t['runs'][0]['n']:,}.")
        e = sec.get("e2e")
        if e:
            la, lb = e["latency_ms_exchange_to_silver"], e["latency_ms_feed_receive_to_silver"]
            add(f"- **End to end through the broker, live** (simulator Binance + Kraken at {e['sim_rate_per_exchange']:,.0f}"
                f"/s each → `k2 feed` → broker → `k2 sink` → bronze/silver/gold): {e['written']:,} trades written at "
                f"**{e['trades_per_s']:,.0f} trades/s**; latency exchange→silver p50 {la['p50']:.0f} / p99 "
                f"{la['p99']:.0f} / p99.9 {la['p99.9']:.0f} ms (feed receive→silver p99 {lb['p99']:.0f} ms).")
        fb = sec.get("feed_backlog")
        if fb:
            add(f"- **Through the broker at capacity** (simulator {fb['sim_rate_per_exchange']:,.0f}/s per exchange, "
                f"Binance + Kraken → `k2 feed`: {fb['feed_trades_per_s']:,.0f} trades/s published; then `k2 sink` "
                f"drains the backlog into a fresh warehouse: **{fb['sink_trades_per_s']:,.0f} trades/s** "
                f"({fb['sink_written']:,} trades in {fb['sink_seconds']:.1f} s).")
        add("")
        add(_la(sec))
    add("")

    # -- 7 reads --
    sec = S.get("reads")
    st = _section(add, HEADINGS[7], sec)
    if not st:
        g = sec["generate"]
        add(f"{sec['rows']:,} synthetic Binance trades (6 symbols, one UTC day) inserted into bronze by "
            f"`INSERT … SELECT FROM numbers()` in 1M-row chunks so every view fires ({g['seconds']:.1f} s, "
            f"{g['rows_per_s']:,.0f} rows/s through bronze → silver → gold): silver {g['silver_rows']:,} rows "
            f"({g['silver_valid']:,} valid), gold 1m {g['gold_1m_rows']:,} rows in {g['gold_1m_parts']} parts. "
            "Latency in the process (embedded chDB), after one cold run.")
        add("")
        add("| read | rows out | cold ms | median ms (min–max) |")
        add("|---|---:|---:|---:|")
        names = [("one_symbol_day", "1 symbol, 1 day, per exchange: `k2.read.queries.ohlcv(BTC/USDT, 1m, binance)` (what `k2 ohlcv` runs)"),
                 ("one_symbol_day_cross", "1 symbol, 1 day, cross-exchange view (`--exchange all`, CLI default)"),
                 ("one_symbol_day_query_only", "… the candle query alone (symbol already canonical)"),
                 ("resolve_symbol", "… the symbol check alone (`resolve_symbol`)"),
                 ("all_symbols_day", "all symbols, 1 day, `ohlcv_1m`"),
                 ("one_symbol_day_from_silver", "reference: 1 symbol, 1 day, GROUP BY over silver")]
        for key, label in names:
            x = sec.get(key)
            if x:
                add(f"| {label} | {fmt_num(x['rows'])} | {x['cold_ms']:.1f} | {x['median_ms']:.1f} "
                    f"({x['min_ms']:.1f}–{x['max_ms']:.1f}) |")
        add("")
        add(_la(sec))
    add("")

    # -- 8 cryptofeed --
    sec = S.get("cryptofeed")
    st = _section(add, HEADINGS[8], sec)
    if not st:
        add("The same simulated stream (fresh simulator per run, CPU 0, same seed and symbols) consumed by "
            "K2's feed runtime handing rows to a null transport that only counts (picows, adapter parse, "
            "recent-trades window, gap tracking, stats) and by cryptofeed's `FeedHandler` with its own exchange "
            "class pointed at the simulator and an async trades callback that only counts (cryptofeed defaults: "
            "uvloop, websockets, yapic JSON, Decimal, `Trade` objects). Each client pinned to CPU 1, alternating, "
            "warm-up then a fixed window; CPU = the client process's user+system time in the window. "
            "See `benchmarks/vs_cryptofeed.py` for how cryptofeed is pointed at a local `ws://` endpoint "
            "(all seven venues: Coinbase is its Advanced Trade stream for both clients, the one cryptofeed reads; "
            "cryptofeed's Bitfinex runs without its sequence-number check, which the simulator does not serve). "
            "trades/frame = trades per frame that brought trades, as K2 received them: batching venues put a "
            "market's trades of one 10 ms tick in one frame, so the high rate gives 50-400 per frame and the low "
            "one a few. **CPU ratio** = cryptofeed's CPU per trade / K2's, the floor's measure (>= 1.5 on every "
            "row). At the high offered rate the stream is more than either client takes, unless the "
            "client's CPU share is well under 1.0 (then the simulator was the limit and the throughput ratio is a "
            "lower bound).")
        add("")
        add("| exchange | offered/s | trades/frame | K2 trades/s | cryptofeed trades/s | ratio | K2 CPU s / 1M | "
            "cryptofeed CPU s / 1M | CPU ratio | CPU share K2 / cf |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
        for c in sec["cases"]:
            add(f"| {c['exchange']} | {c['offered_rate']:,} | {c['trades_per_frame']} | {fmt_summary(c['k2_trades_per_s'])} | "
                f"{fmt_summary(c['cryptofeed_trades_per_s'])} | **{c['throughput_ratio']}×** | "
                f"{fmt_summary(c['k2_cpu_s_per_1m'], 2)} | {fmt_summary(c['cryptofeed_cpu_s_per_1m'], 2)} | "
                f"**{c['cpu_ratio']}×** | {c['k2_cpu_share']['median']} / {c['cryptofeed_cpu_share']['median']} |")
        add("")
        add(_la(sec))
    add("")

    # -- 9 where the time goes --
    add(HEADINGS[9])
    add("")
    profiles = [("`k2 load` Binance (py-spy)", (S.get("load") or {}).get("profile")),
                ("`k2 run` at 10,000 trades/s (py-spy, window)", (S.get("live") or {}).get("profile")),
                ("K2 feed path to a null transport, Binance (py-spy)", (S.get("cryptofeed") or {}).get("profile"))]
    any_prof = False
    for title, prof in profiles:
        if not prof or "threads" not in prof:
            continue
        any_prof = True
        add(f"**{title}** — {prof['samples']:,} samples of non-idle Python stacks.")
        add("")
        for th in prof["threads"][:3]:
            own = "; ".join(f"{f} {s:.0%}" for f, s in th["own"][:8])
            inc = "; ".join(f"{f} {s:.0%}" for f, s in th["inclusive"][:8])
            add(f"- thread `{th['thread']}` ({th['share']:.0%} of samples). Own time: {own}. Inclusive: {inc}.")
        add("")
    if not any_prof:
        add("_No py-spy profile in this run (`--profile` adds them)._")
        add("")
    # -- 10 the read door --
    sec = S.get("api")
    st = _section(add, HEADINGS[10], sec)
    if not st:
        o = sec["ohlcv"]
        add(f"{sec['fill']['rows']:,} synthetic Binance trades (6 symbols, one UTC day), as in section 7. "
            "`k2.connect(dir).ohlcv(\"BTC/USDT\", \"1m\", exchange=\"binance\", one day)` in a fresh Python process, "
            "pipeline not running (the API holds the engine between calls), against the same SQL and parameters "
            "on a plain chDB connection to the same engine (`ArrowTable`).")
        add("")
        add("| read | rows | cold ms | median ms (min–max) |")
        add("|---|---:|---:|---:|")
        for key, label in (("api", "Python API, end to end"), ("chdb_direct", "chDB directly, same query")):
            x = o[key]
            add(f"| {label} | {fmt_num(x['rows'])} | {x['cold_ms']:.1f} | {x['median_ms']:.1f} "
                f"({x['min_ms']:.1f}–{x['max_ms']:.1f}) |")
        add(f"\nAPI / direct: **{o['ratio']}×**; first call including `import k2`, pyarrow and opening the data dir: "
            f"{o['api'].get('first_call_ms', '–')} ms.")
        e = sec["export"]
        add("")
        add(f"`k2 export --layer silver` of those rows (the engine writes the Parquet; median of {e.get('reps', 1)}): "
            f"{e['rows']:,} rows in {e['wall_s']:.1f} s = **{e['rows_per_s']:,.0f} rows/s**, "
            f"{e.get('cpu_s', 0):.1f} CPU s, peak RSS **{e['maxrss_mb']:.0f} MB** (VmHWM, worst run), "
            f"{e['files']} files, {e['bytes'] / 2**20:,.1f} MB of Parquet.")
        add("")
        add("`k2 run` ingesting 10,000 trades/s from the simulator into a data dir prefilled with "
            f"{sec['prefill_rows']:,} BTC/USDT trades, with and without readers during the measured window:")
        add("")
        add("| case | ingest p50 ms | ingest p99 ms | written/s | readers |")
        add("|---|---:|---:|---:|---|")
        for key, label in (("baseline", "no reads"), ("trades", "`trades` of 1M rows, repeated (Arrow IPC via the endpoint)"),
                           ("heavy", "heavy SQL in 4 threads (scans, GROUP BY, 200k-row sorts)")):
            r = sec["live"].get(key)
            if not r:
                continue
            d = r.get("during") or {}
            what = (f"{d.get('rows_per_s_median', 0):,.0f} rows/s" if key == "trades" else
                    f"{d.get('reads', 0)} reads, median {d.get('read_ms_median')} ms, errors {d.get('errors')}"
                    if key == "heavy" else "–")
            add(f"| {label} | {r['latency_ms']['p50']} | **{r['latency_ms']['p99']}** | {r['written_per_s']:,.0f} | {what} |")
        add("")
        add(_la(sec))
    add("")
    # -- 11 history --
    sec = S.get("history")
    st = _section(add, HEADINGS[11], sec)
    if not st:
        imp, bf = sec["import"], sec["backfill"]
        if "rounds" in imp:  # three interleaved import/bare pairs (before: one pair, flat figures)
            add(f"`k2 import` of one Binance `trades` CSV of {imp['rows']:,} lines into a fresh data dir (embedded, "
                "views included), then the bare `INSERT ... SELECT` of the same file into the same tables "
                f"(`bench_history.BARE`), {imp['rounds']} rounds in turn. The floors read the median rate and "
                "ratio and the worst peak RSS.")
            add("")
            add("| round | import s | lines/s | bare s | import / bare | peak RSS MB |")
            add("|---:|---:|---:|---:|---:|---:|")
            for i in range(imp["rounds"]):
                add(f"| {i + 1} | {imp['import_s']['values'][i]} | {imp['trades_per_s']['values'][i]:,.0f} | "
                    f"{imp['bare_insert_s']['values'][i]} | {imp['ratio_to_bare']['values'][i]} | "
                    f"{imp['import_maxrss_mb']['values'][i]} |")
            add("")
            add(f"Re-import of round 1's file into its data dir: {imp['reimport_wall_s']} s, "
                f"{imp['reimport_share']}× the first import's wall time (\"{imp['reimport_says']}\").")
        add("")
        add(f"`k2 backfill` of {bf['trades']:,} trades from the simulator's rate-limited REST ({bf['pages']} pages): "
            f"{bf['trades_per_s']:,} trades/s = **{bf['share_of_limit']}×** what the limit allows "
            f"({bf['allowed_trades_per_s']:,}/s), {bf['http_429']} rate-limit answers, peak RSS {bf['maxrss_mb']} MB.")
        add("")
        add(_la(sec))
    add("")
    analysis = BENCH / "ANALYSIS.md"
    if analysis.exists():
        add(analysis.read_text().strip())
        add("")
    return "\n".join(L) + "\n"


def write_reports(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    js.write_text(json.dumps(report, indent=1, default=str))
    md.write_text(render(report))
    return md, js
