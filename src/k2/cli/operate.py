"""Commands that look after a running or stored K2: status, validate, gaps, rejects, rebuild,
schema, topics."""

from __future__ import annotations

import argparse
import json
import sys
import time

from k2.cli.options import (
    EXCHANGE_LIST_HELP, TIME_HELP, check_data_dir, command, count_or_zero, exchange_option, format_option,
    kafka_option, positive_seconds, reader_for, run_read, settings_from, storage_options, topic_options,
)
from k2.errors import K2Error
from k2.exchanges import parse_exchange_list


# -- status -----------------------------------------------------------------------------------------
def _age(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 120:
        return f"{value:.1f}s"
    return f"{value / 60:.0f}m"


def cmd_status(args: argparse.Namespace) -> int:
    """The running pipeline's connections, from its loopback endpoint; exit 1 if a feed is down."""
    from k2.read.remote import RemoteReader, read_run_info

    settings = settings_from(args)
    check_data_dir(settings, must_exist=True)
    info = read_run_info(settings.data_dir)
    if info is None:
        storage = _stored_damage(settings)
        if args.format == "json":
            print(json.dumps({"running": False, "data_dir": str(settings.data_dir), **storage}))
        else:
            print(f"k2 is not running on {settings.data_dir} (start it with: k2 run)")
            for line in storage.get("damaged", []):
                print(f"DAMAGED {line} (k2 repair, or the next k2 run, repairs it)")
            for line in storage.get("deferred", []):
                print(f"DEFERRED {line}")
        return 1
    st = RemoteReader(info).status()
    conns = st.get("connections", [])
    down = [c for c in conns if not c["connected"]]
    writer = st.get("writer") or {}  # a sink-only process has a writer and no feed connections
    health = st.get("health") or {}
    failing = {k: v for k, v in (health.get("conditions") or {}).items() if not v.get("ok")}
    bad = bool(down or not (conns or writer) or failing or health.get("healthy") is False)
    if args.format == "json":
        print(json.dumps({"running": True, **st}, default=str))
        return 1 if bad else 0
    now = st.get("now", time.time())
    print(f"k2 running (pid {st.get('pid')}) for {_age(now - st.get('started_at', now))}, "
          f"transport {st.get('transport')}, {st.get('buffered', 0)} rows buffered")
    header = f"{'connection':<12} {'state':<5} {'since':>7} {'trades':>10} {'trades/s':>9} {'reconn':>6} " \
             f"{'last msg':>8}  last error"
    print(header)
    for c in conns:
        since = now - c["connected_since"] if c.get("connected_since") else None
        rate = c["trades"] / since if since else 0.0
        failed = f" failed: {', '.join(c['failed'])}" if c.get("failed") else ""
        print(f"{c['connection']:<12} {'up' if c['connected'] else 'DOWN':<5} {_age(since):>7} {c['trades']:>10,} "
              f"{rate:>9,.0f} {c['reconnects']:>6} {_age(c.get('last_message_age_s')):>8}  "
              f"{(c.get('last_error') or '')[:80]}{failed}")
    for ex, skipped in (st.get("skipped") or {}).items():
        for sym, why in skipped.items():
            print(f"{ex}: {sym} skipped ({why})")
    gaps = st.get("gaps") or {}
    if gaps:
        print("gaps: " + ", ".join(f"{k} {v}" for k, v in sorted(gaps.items()))
              + f"; {st.get('gaps_recovered', 0):,} trades recovered by backfill (details: k2 gaps)")
    if writer:
        print("written: " + ", ".join(f"{k} {v:,}" for k, v in writer.get("written", {}).items())
              + f"; insert errors {writer.get('insert_errors', 0)}")
    for name, cond in failing.items():
        print(f"UNHEALTHY {name}: {cond.get('reason', '')}")
    if health and not failing:
        print("healthy: " + ", ".join(sorted(health.get("conditions", {}))))
    return 1 if bad else 0


def _stored_damage(settings) -> dict:
    """Damaged parts and deferred repairs of a data dir nothing runs on (opened for reading)."""
    from k2.warehouse import open_warehouse
    from k2.warehouse.embedded import chdb_dir

    if settings.warehouse_url or not chdb_dir(settings.data_dir).is_dir():
        return {}
    wh = open_warehouse(settings.data_dir)
    try:
        return {"damaged": [d.text() for d in wh.damage], "deferred": list(wh.deferred)}
    finally:
        wh.close()


# -- checks and ledgers -------------------------------------------------------------------------------
def cmd_validate(args: argparse.Namespace) -> int:
    from k2.quality.validate import report, run_checks

    reader = reader_for(args)
    try:
        text, ok = report(run_checks(reader))
    finally:
        reader.close()
    print(text)
    return 0 if ok else 1


def cmd_gaps(args: argparse.Namespace) -> int:
    from k2.read import queries

    queries.check_exchange(args.exchange)
    return run_read(args, lambda r: queries.gaps_page(r, args.exchange, args.state, args.format, args.limit))


def cmd_rejects(args: argparse.Namespace) -> int:
    from k2.read import queries
    from k2.times import parse_time

    queries.check_exchange(args.exchange)
    since = parse_time(args.since, "--since", "")  # one instant for a relative time (1h)
    return run_read(args, lambda r: queries.rejects_page(r, args.exchange, since, args.format, args.limit))


# -- the store itself -----------------------------------------------------------------------------------
def cmd_rebuild(args: argparse.Namespace) -> int:
    from k2.runfile import read_run_info
    from k2.times import parse_time
    from k2.warehouse import open_warehouse
    from k2.warehouse.rebuild import rebuild

    s = settings_from(args)
    exchanges = parse_exchange_list(args.exchange)
    since = parse_time(args.since, "--since", "") if args.since else None
    check_data_dir(s, must_exist=True)
    if not s.warehouse_url and read_run_info(s.data_dir):
        raise K2Error(f"k2 run is running on {s.data_dir}; stop it before rebuilding")
    # repairs damage first; gives back the library pages only opening needed
    wh = open_warehouse(s.data_dir, url=s.warehouse_url, for_writing=True,
                        release_startup_pages=s.release_startup_pages)
    try:
        replayed = rebuild(wh, exchanges, since, progress=True, final_line=args.progress)
    finally:
        wh.close()
    print("rebuilt silver and gold from bronze: "
          + ", ".join(f"{t} {n:,} rows" for t, n in replayed.items()))
    return 0


def cmd_repair(args: argparse.Namespace) -> int:
    """Repair damaged parts from the intact layer (k2.warehouse.repair); --check also restores any
    bronze row that silver holds and bronze lacks."""
    from k2.runfile import read_run_info
    from k2.warehouse import open_warehouse
    from k2.history.archives import rebuild_partition_from_files
    from k2.warehouse.repair import find_damage, repair

    s = settings_from(args)
    if not s.warehouse_url and read_run_info(s.data_dir):
        raise K2Error(f"k2 is running on {s.data_dir}; stop it before repairing (a writer repairs when it starts)")
    wh = open_warehouse(s.data_dir, url=s.warehouse_url)
    try:
        if wh.deferred and not wh.damage:
            print("\n".join(f"deferred: {d}" for d in wh.deferred))
        done = repair(wh, wh.damage, check_all_bronze=args.check, progress=sys.stderr.isatty(),
                      rebuild_from_files=rebuild_partition_from_files)
        left = find_damage(wh)  # what this repair could not mend (an archive file gone): not a success
    finally:
        wh.close()
    print("\n".join(done) if done else "nothing to repair")
    return 1 if left else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from k2.warehouse import open_warehouse, schema

    s = settings_from(args)
    check_data_dir(s, must_exist=False)
    wh = open_warehouse(s.data_dir, url=s.warehouse_url, apply_schema=False)
    try:
        n = schema.apply(wh)
    finally:
        wh.close()
    where = s.warehouse_url and "the ClickHouse server" or str(s.data_dir)
    print(f"schema applied: {n} statements from {len(schema.sql_files())} files ({where})")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    from k2.cli.run import bootstrap_of
    from k2.transport.kafka_common import topics_command

    s = settings_from(args)
    exchanges = parse_exchange_list(args.exchange or "all")
    print(topics_command(s, bootstrap_of(args.kafka, s), args.action, exchanges, args.partitions,
                         args.replication_factor, timeout_s=args.timeout))
    return 0


def register(sub) -> None:
    sp = command(sub, "status", "operate", "show the running pipeline's connections; exit 1 if a feed is down", [
        "k2 status",
        "k2 status --format json | jq .health",
    ], func=cmd_status)
    format_option(sp, ("table", "json"))
    storage_options(sp)

    sp = command(sub, "validate", "operate", "check bronze, silver and gold; exit 1 on any failure", [
        "k2 validate --data-dir k2data",
    ], func=cmd_validate)
    storage_options(sp)

    sp = command(sub, "gaps", "operate", "list the gaps found in trade streams and what backfill recovered", [
        "k2 gaps --state open",
        "k2 gaps --exchange binance,coinbase --format csv",
    ], func=cmd_gaps)
    storage_options(sp)
    exchange_option(sp)
    sp.add_argument("--state", default="all", choices=("all", "open", "filled", "unfillable"),
                    help="only gaps in this state (default all)")
    format_option(sp)
    sp.add_argument("--limit", type=count_or_zero, default=None,
                    help="the newest N gaps (default 1000; 0 = all); a cut list says so on stderr")

    sp = command(sub, "rejects", "operate", "list frames that could not be parsed, with raw text and reason", [
        "k2 rejects --since 1h",
        "k2 rejects --exchange kraken --format json",
    ], func=cmd_rejects)
    storage_options(sp)
    exchange_option(sp)
    sp.add_argument("--since", help=f"only rejects received from this time on: {TIME_HELP}")
    format_option(sp)
    sp.add_argument("--limit", type=count_or_zero, default=None,
                    help="the newest N rejects (default 1000; 0 = all); a cut list says so on stderr")

    sp = command(sub, "rebuild", "operate", "recompute silver and gold from bronze (after a normalization fix)", [
        "k2 rebuild                                   # everything (stop k2 run first)",
        "k2 rebuild --exchange kraken --since 2026-11-01",
    ], func=cmd_rebuild)
    storage_options(sp)
    sp.add_argument("--exchange", help=f"{EXCHANGE_LIST_HELP} (default all)")
    sp.add_argument("--since", help=f"rebuild from the UTC hour of this time on: {TIME_HELP} (default: everything)")
    sp.add_argument("--progress", action="store_true",
                    help="off a terminal, end with a progress line per exchange even when the rebuild was quick")

    sp = command(sub, "repair", "operate", "repair damaged parts from the intact layer (bronze from silver, "
                                           "silver and gold from bronze, aggTrades and Kraken Time & Sales "
                                           "from their archive files); exit 1 while damage is left", [
        "k2 repair",
        "k2 repair --check                            # also restore bronze rows only silver still holds",
    ], func=cmd_repair)
    storage_options(sp)
    sp.add_argument("--check", action="store_true",
                    help="also restore every bronze row that silver holds and bronze lacks, damage found or not")

    sp = command(sub, "schema", "operate", "apply the warehouse schema (idempotent)", [
        "k2 schema apply --warehouse http://default:@localhost:8123",
    ], func=cmd_schema)
    sp.add_argument("action", choices=("apply",), help="apply: create or update K2's tables and views")
    storage_options(sp)

    sp = command(sub, "topics", "operate", "create or list K2's Kafka topics", [
        "k2 topics list --kafka localhost:9092",
        "k2 topics create --kafka localhost:9092 --partitions 6",
    ], func=cmd_topics)
    sp.add_argument("action", choices=("create", "list"), help="create the missing topics, or list them")
    kafka_option(sp)
    sp.add_argument("--exchange", help=f"exchanges whose topics to create: {EXCHANGE_LIST_HELP} (default all)")
    topic_options(sp)
    sp.add_argument("--timeout", type=positive_seconds, default=30.0,
                    help="give up when the broker does not answer for this many seconds (default 30)")
