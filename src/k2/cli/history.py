"""Commands that bring in trades the live feed did not deliver: load (recorded frame files)."""

from __future__ import annotations

import argparse
import sys

from k2.cli.options import check_data_dir, positive_int, settings_from, storage_options
from k2.exchanges import get_adapter


def cmd_load(args: argparse.Namespace) -> int:
    s = settings_from(args)
    ex = s.exchange(args.exchange)
    adapter = get_adapter(args.exchange, args.api) if args.api else ex.adapter
    check_data_dir(s, must_exist=False)
    import itertools

    from k2.history.inputs import open_frames, sniff
    from k2.history.load import load_lines
    from k2.history.placement import Placement
    from k2.warehouse import open_warehouse

    # the input is opened and its first frames checked before the store is: a wrong file or venue
    # is refused before any work starts
    with open_frames(args.file) as (lines, name, compression):
        head = sniff(adapter, lines, name)
        wh = open_warehouse(s.data_dir, url=s.warehouse_url)
        try:
            placement = Placement(wh, adapter, ex.rest_url, fetch=s.instruments_refresh)
            report = load_lines(wh, adapter, itertools.chain(head, lines), name, compression, args.batch_size,
                                placement)
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


def register(sub) -> None:
    sp = sub.add_parser("load", help="load a file of raw exchange frames (one per line; .gz/.zst; - for stdin)")
    sp.add_argument("file", help="frames one per line, as the exchange sent them; gzip/zstd/bz2/xz are "
                                 "recognised; - reads stdin")
    sp.add_argument("--exchange", required=True, help="exchange that sent the frames")
    sp.add_argument("--api", help="the exchange's other wire API the frames use (kraken: v2, coinbase: advanced)")
    sp.add_argument("--batch-size", type=positive_int, default=100_000)
    storage_options(sp)
    sp.set_defaults(func=cmd_load)
