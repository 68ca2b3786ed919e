"""Commands that bring in trades the live feed did not deliver: load (recorded frame files),
import (exchange archives), backfill (REST history), coverage (what is held, and the proof).

While `k2 run` holds the data dir, load, import and backfill hand their work to it
(k2.history.handoff); otherwise they open the warehouse themselves."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from k2.cli.options import (
    TIME_HELP, check_data_dir, command, emit, exchange_option, format_option, positive_int, reader_for,
    settings_from, storage_options,
)
from k2.errors import K2Error
from k2.exchanges import get_adapter


def _pipeline(s):
    from k2.history.handoff import running_pipeline

    return running_pipeline(s.data_dir, s.warehouse_url)


def cmd_load(args: argparse.Namespace) -> int:
    s = settings_from(args)
    ex = s.exchange(args.exchange)
    adapter = get_adapter(args.exchange, args.api) if args.api else ex.adapter
    check_data_dir(s, must_exist=False)
    running = _pipeline(s)
    if running is not None:  # k2 run holds the data dir: it loads the file
        if args.file == "-":
            raise K2Error("k2 load - (stdin) while k2 run holds the data dir: save the frames to a file and load "
                          "that (the running k2 reads it), or stop k2 run")
        path = Path(args.file)
        if not path.exists():
            raise K2Error(f"no such file: {path}")
        result = running.job({"job": "load", "exchange": args.exchange, "api": args.api,
                              "path": str(path.resolve()), "batch_size": args.batch_size})
        print(result["summary"] + " (through the running k2)")
        return 0
    import itertools

    if s.release_startup_pages and not s.warehouse_url:
        from k2.warehouse.memory import (BULK_JEMALLOC_CONF, TWO_STREAMS_JEMALLOC_CONF, bulk_writer_allocator,
                                         lean_writer_process)

        # before pyarrow loads (k2.history.load): Arrow's C++ default pool is chosen then, and
        # its bundled mimalloc reserved a 1 GiB huge-page region holding 40-60 MB (ADR 0029)
        lean_writer_process()
        # before chDB loads: its jemalloc reads its options then (ADR 0029, third round); two
        # insert streams give freed pages back after 0.2 s, as k2 import's do (ADR 0036)
        bulk_writer_allocator(TWO_STREAMS_JEMALLOC_CONF if args.streams > 1 else BULK_JEMALLOC_CONF)
    from k2.history.inputs import open_frames, sniff
    from k2.history.load import load_lines
    from k2.history.placement import Placement
    from k2.warehouse import open_warehouse

    # the input is opened and its first frames checked before the store is: a wrong file or venue
    # is refused before any work starts
    from k2.terminal import Progress

    with open_frames(args.file) as opened:
        lines, name, compression = opened
        head = sniff(adapter, lines, name)
        # repairs damage first; gives back the library pages only opening needed (issue 22: RSS)
        wh = open_warehouse(s.data_dir, url=s.warehouse_url, for_writing=True,
                            release_startup_pages=s.release_startup_pages)
        try:
            placement = Placement(wh, adapter, ex.rest_url, fetch=s.instruments_refresh)
            # the bar counts the file's bytes on disk (compressed or not), so its ETA is right
            with Progress(f"load {Path(name).name}", opened.size, "B") as bar:
                def show(report) -> None:
                    bar.update(opened.position(), note=f"({report.trades:,} trades)")

                report = load_lines(wh, adapter, itertools.chain(head, lines), name, compression, args.batch_size,
                                    placement, progress=show, streams=args.streams)
                bar.update(opened.size or opened.position(), note=f"({report.trades:,} trades)")
        finally:
            wh.close()
    print(report.summary())
    if report.unplaced:
        names = ", ".join(report.unplaced[:10]) + (f" and {len(report.unplaced) - 10} more" if len(report.unplaced) > 10 else "")
        why = (f"no instrument list ({report.instruments_error})" if report.instruments_error
               else "not in the exchange's instrument list" if s.instruments_refresh
               else "K2_INSTRUMENTS_REFRESH is off")
        print(f"k2: warning: {adapter.name}: could not place {names} ({why}): their trades are stored but flagged "
              "unknown_instrument and left out of candles; once the instrument is known (k2 run refreshes the "
              f"list), `k2 rebuild --exchange {adapter.name}` repairs them", file=sys.stderr)
    if not report.trades:
        print(f"k2: error: no trades in {report.path} ({report.frames} frames, {report.rejects} rejected)",
              file=sys.stderr)
        return 1
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from k2.history.archives import IMPORTABLE, ImportReport, check_files

    exchange = args.exchange.strip().lower()
    if exchange not in IMPORTABLE:
        raise K2Error(f"k2 import reads {' and '.join(IMPORTABLE)} archives, not {exchange!r} "
                      "(k2 backfill pages the other venues' REST history)")
    if args.chunk_lines is not None and args.chunk_lines <= 0:
        raise K2Error("--chunk-lines must be positive")
    s = settings_from(args)
    files = check_files(args.paths, exchange, args.symbol)  # a wrong file is refused before any work
    paths = [str(Path(p).resolve()) for p in args.paths]
    running = _pipeline(s)
    if running is not None:
        doc = running.job({"job": "import", "paths": paths, "files": [f.to_json() for f in files],
                           "exchange": exchange, "symbol": args.symbol, "chunk_lines": args.chunk_lines})
        print(ImportReport.from_json(doc).summary())
        return 0
    if s.release_startup_pages and not s.warehouse_url:
        from k2.warehouse.memory import TWO_STREAMS_JEMALLOC_CONF, bulk_writer_allocator

        bulk_writer_allocator(TWO_STREAMS_JEMALLOC_CONF)  # before chDB loads (ADR 0036)
    from k2.history.archives import DEFAULT_CHUNK_LINES, IMPORT_STREAMS, import_archives
    from k2.terminal import Progress
    from k2.warehouse import open_warehouse

    # repairs damage first; gives back the library pages only opening needed (issue 17: RSS)
    wh = open_warehouse(s.data_dir, url=s.warehouse_url, for_writing=True,
                        release_startup_pages=s.release_startup_pages)
    try:
        with Progress("import", None, "lines") as bar:
            before: dict[str, int] = {}

            def show(name: str, lines: int, chunks: int) -> None:
                before.setdefault(name, int(bar.done))  # lines of the files imported before this one
                bar.update(before[name] + lines, note=name)

            report = import_archives(wh, files, exchange, args.symbol, args.chunk_lines or DEFAULT_CHUNK_LINES,
                                     progress=show, streams=args.streams or IMPORT_STREAMS)
            bar.update(report.lines)
    finally:
        wh.close()
    print(report.summary())
    return 0


def _us(value: str | None, what: str) -> int | None:
    from k2.times import parse_time

    if value is None:
        return None
    text = parse_time(value, what, "")
    return int(datetime.strptime(text + "+0000", "%Y-%m-%d %H:%M:%S.%f%z").timestamp() * 1_000_000)


def cmd_backfill(args: argparse.Namespace) -> int:
    adapter = get_adapter(args.exchange, args.api)
    if adapter.rest_history is None:
        raise K2Error(f"{adapter.name} serves no range of its trade history over REST (only its latest "
                      "trades); nothing to backfill from")
    if not args.holes and not args.since:
        raise K2Error("k2 backfill needs --since (or --holes to fill what k2 coverage lists)")
    if args.holes and adapter.rest_history.pages_by != "id":
        raise K2Error(f"--holes needs a venue with consecutive trade ids (binance, coinbase), not {adapter.name}")
    if args.max_rps is not None and args.max_rps <= 0:
        raise K2Error("--max-rps must be positive")
    since_us, until_us = _us(args.since, "--since"), _us(args.until, "--until")
    if since_us is not None and until_us is not None and until_us <= since_us:
        raise K2Error("--until must be after --since")
    s = settings_from(args)
    symbols = [x.strip() for x in (args.symbols or "").split(",") if x.strip()]
    if not symbols and not args.holes:
        raise K2Error("k2 backfill needs --symbols")
    from k2.history.backfill import Backfill
    from k2.terminal import Progress

    rest_url = s.exchange(adapter.name).rest_url
    running = _pipeline(s)
    wh = None
    if running is not None:
        def write(rows):
            return running.write_rows(adapter.name, args.api, rows)
    else:
        from k2.warehouse import open_warehouse
        from k2.warehouse.bronze import BronzeWriter

        # repairs damage first; gives back the library pages only opening needed
        wh = open_warehouse(s.data_dir, url=s.warehouse_url, for_writing=True,
                            release_startup_pages=s.release_startup_pages)
        writer = BronzeWriter(wh, adapter)

        def write(rows):
            return writer.write(rows, source="rest")
    try:
        jobs = []
        if args.holes:
            from k2.read.coverage import coverage

            reader = wh if wh is not None else reader_for(args)
            cov = coverage(reader, adapter.name, symbols[0] if len(symbols) == 1 else "")
            jobs = [(h.symbol, h) for h in cov.holes if not symbols or h.symbol in symbols
                    or adapter.native_symbol(h.symbol) in symbols]
            if not jobs:
                print(f"{adapter.name}: no holes to fill")
                return 0
        else:
            jobs = [(adapter.native_symbol(sym), None) for sym in symbols]
        for native, hole in jobs:
            with Progress(f"backfill {adapter.name} {native}", 100.0, "%", show_rate=False) as bar:
                bf = Backfill(adapter, rest_url, write, s.data_dir / "history", rate=args.max_rps,
                              progress=bar.log, bar=bar)
                if hole is not None:
                    rep = bf.run(native, 0, None, from_id=hole.from_id, to_id=hole.to_id, until_label="hole")
                else:
                    rep = bf.run(native, since_us, until_us, until_label=args.until or "now")
            print(rep.summary())
    finally:
        if wh is not None:
            wh.close()
    return 0


def cmd_coverage(args: argparse.Namespace) -> int:
    from k2.read.coverage import coverage
    from k2.times import parse_time

    since = parse_time(args.since, "--since", "1970-01-01 00:00:00.000000")
    until = parse_time(args.until, "--until", "2200-01-01 00:00:00.000000")
    from k2.read.queries import check_exchange

    exchange = check_exchange(args.exchange)
    reader = reader_for(args)
    try:
        cov = coverage(reader, exchange, args.symbol or "", since, until)
    finally:
        reader.close()
    emit(cov.to_json() if args.format == "json" else cov.text())
    return 0


def register(sub) -> None:
    sp = command(sub, "load", "history", "load a file of raw exchange frames (one per line; .gz/.zst; - for stdin)", [
        "k2 load binance-2026-11-01.jsonl.zst --exchange binance",
        "zcat kraken.jsonl.gz | k2 load - --exchange kraken",
    ], "A trade already stored is skipped, so loading a file twice is harmless.", cmd_load)
    sp.add_argument("file", help="frames one per line, as the exchange sent them; gzip/zstd/bz2/xz are "
                                 "recognised; - reads stdin")
    sp.add_argument("--exchange", required=True, help="exchange that sent the frames")
    sp.add_argument("--api", help="the exchange's other wire API the frames use (kraken: v2, coinbase: advanced)")
    sp.add_argument("--batch-size", type=positive_int, default=50_000, help="trades per insert (default 50000)")
    sp.add_argument("--streams", type=int, choices=(1, 2), default=1,
                    help="INSERTs at a time into the embedded store: 2 loads a file of about a million trades "
                         "~20 %% faster for ~40 MB more memory, but 10M slower and in ~435 MB (default 1)")
    storage_options(sp)

    sp = command(sub, "import", "history", "load exchange archive files (Binance trades/aggTrades zip or csv, "
                                           "Kraken time & sales csv)", [
        "k2 import BTCUSDT-trades-2026-11-*.zip --exchange binance",
        "k2 import XBTUSD.csv --exchange kraken --symbol XBTUSD",
    ], "A file already imported is skipped; an interrupted import resumes where it stopped.", cmd_import)
    sp.add_argument("paths", nargs="+", metavar="PATH", help="archive files (.zip or .csv)")
    sp.add_argument("--exchange", required=True, help="binance or kraken")
    sp.add_argument("--symbol", help="check the files are of this symbol (the name says it)")
    sp.add_argument("--chunk-lines", type=int, help="lines per insert (default 50,000; 250,000 via k2 run)")
    sp.add_argument("--streams", type=int, choices=range(1, 9), metavar="N",
                    help="chunks inserted at once, 1-8 (default 2 on two or more cores; 1 keeps peak memory "
                         "~50 MB lower at about half the rate; one via k2 run)")
    storage_options(sp)

    sp = command(sub, "backfill", "history", "page a venue's REST trade history for a range (resumable)", [
        "k2 backfill --exchange binance --symbols BTCUSDT --since 2026-11-01 --until 2d",
        "k2 backfill --exchange coinbase --holes        # fill every hole k2 coverage lists",
    ], func=cmd_backfill)
    sp.add_argument("--exchange", required=True, help="binance, coinbase, kraken, bitfinex or okx")
    sp.add_argument("--api", help="the exchange's other wire API (kraken: v2)")
    sp.add_argument("--symbols", help="comma list, canonical (BTC/USD) or native")
    sp.add_argument("--since", help=f"start (inclusive): {TIME_HELP}")
    sp.add_argument("--until", help=f"end (exclusive; default now): {TIME_HELP}")
    sp.add_argument("--holes", action="store_true", help="fill every hole k2 coverage lists instead")
    sp.add_argument("--max-rps", type=float, help="requests per second (default: 97%% of the venue's documented limit)")
    storage_options(sp)

    sp = command(sub, "coverage", "history", "trades per exchange, symbol and UTC day: sources, holes, "
                                             "proven-complete days", [
        "k2 coverage --exchange binance --symbol BTCUSDT --since 30d",
    ], func=cmd_coverage)
    storage_options(sp)
    exchange_option(sp)
    sp.add_argument("--symbol", help="native (BTCUSDT) or canonical (BTC/USDT)")
    sp.add_argument("--since", help=f"first day: {TIME_HELP}")
    sp.add_argument("--until", help=f"end (exclusive): {TIME_HELP}")
    format_option(sp, ("table", "json"))
