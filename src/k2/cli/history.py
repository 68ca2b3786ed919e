"""Commands that bring in trades the live feed did not deliver: load (recorded frame files)."""

from __future__ import annotations

import argparse
from pathlib import Path

from k2.cli.options import settings_from, storage_options
from k2.errors import K2Error
from k2.exchanges import get_adapter


def cmd_load(args: argparse.Namespace) -> int:
    adapter = get_adapter(args.exchange, args.api)
    path = Path(args.file)
    if not path.is_file():
        raise K2Error(f"no such file: {path}")
    if args.batch_size <= 0:
        raise K2Error("--batch-size must be positive")
    s = settings_from(args)
    from k2.history.load import load_file
    from k2.warehouse import open_warehouse

    wh = open_warehouse(s.data_dir, url=s.warehouse_url, for_writing=True)  # repairs damage first
    try:
        report = load_file(wh, adapter, path, batch_size=args.batch_size)
    finally:
        wh.close()
    print(report.summary())
    return 0


def register(sub) -> None:
    sp = sub.add_parser("load", help="load a file of raw exchange frames (one per line)")
    sp.add_argument("file")
    sp.add_argument("--exchange", required=True, help="exchange that sent the frames")
    sp.add_argument("--api", help="the exchange's other wire API the frames use (kraken: v2, coinbase: advanced)")
    sp.add_argument("--batch-size", type=int, default=100_000)
    storage_options(sp)
    sp.set_defaults(func=cmd_load)
