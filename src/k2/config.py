"""Settings: defaults < k2.toml < K2_* environment < command-line flags.

Names follow the seed where it has them (K2_EXCHANGE, K2_SYMBOLS, K2_KAFKA_BOOTSTRAP_SERVERS,
K2_KRAKEN_WS_URL, max-reconnect-attempts = -1 meaning unlimited). The file is `./k2.toml`, or
the path in K2_CONFIG:

    [k2]
    data_dir = "k2data"
    exchanges = ["binance", "kraken"]
    symbols = ["BTC/USD", "BTC/USDT", "ETH/USDT"]

    [exchanges.kraken]
    ws_url = "wss://ws.kraken.com"
    symbols = ["XBT/USD", "ETH/USD"]      # per-exchange list overrides the shared one

    [reconnect]
    base_s = 1.0
    cap_s = 30.0
    max_attempts = -1
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from k2.errors import K2Error
from k2.exchanges import get_adapter

DEFAULT_SYMBOLS = {
    "binance": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "ETHBTC"],
    "kraken": ["XBT/USD", "ETH/USD", "SOL/USD", "XDG/USD"],
    "coinbase": ["BTC-USD", "ETH-USD", "SOL-USD", "DOGE-USD"],
    "bybit": ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"],
    "okx": ["BTC-USDT", "ETH-USDT", "SOL-USDT", "ETH-BTC"],
    "bitfinex": ["tBTCUSD", "tETHUSD", "tSOLUSD", "tBTCUST"],
    "gemini": ["BTCUSD", "ETHUSD", "SOLUSD", "ETHBTC"],
}


@dataclass
class ExchangeSettings:
    name: str
    symbols: list[str]
    ws_url: str
    rest_url: str
    api: str | None = None  # another wire API of the exchange, e.g. "v2" for Kraken
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def adapter(self):
        return get_adapter(self.name, self.api)


@dataclass
class ReadSettings:
    """Limits of every read (k2.warehouse.reads: the read door). A read runs in a session of its
    own with ClickHouse's `readonly = 1`, so none of these can be raised by the query itself."""

    timeout_s: float = 30.0          # K2_READ_TIMEOUT_S: ClickHouse max_execution_time
    max_memory_mb: int = 512         # K2_READ_MAX_MEMORY_MB: max_memory_usage of one read
    max_threads: int = 1             # K2_READ_MAX_THREADS: ClickHouse threads of one read
    max_result_mb: int = 256         # K2_READ_MAX_RESULT_MB: results that cannot be streamed (JSON, Parquet...)
    max_concurrent: int = 2          # K2_READ_MAX_CONCURRENT: reads running at once; more wait
    queue_timeout_s: float = 10.0    # K2_READ_QUEUE_TIMEOUT_S: how long a read waits for a slot
    max_connections: int = 32        # K2_READ_MAX_CONNECTIONS: open HTTP connections of the endpoint
    idle_timeout_s: float = 30.0     # K2_READ_IDLE_TIMEOUT_S: an idle connection is closed after this
    password: str = field(default="", repr=False)  # K2_READ_PASSWORD(_FILE): the endpoint's password


@dataclass
class Settings:
    data_dir: Path = Path("k2data")
    warehouse_url: str | None = None
    exchanges: list[str] = field(default_factory=lambda: ["binance", "kraken"])
    symbols: list[str] | None = None  # shared list, canonical or native
    exchange_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics_addr: str = "127.0.0.1:9108"
    kafka_bootstrap: str | None = None
    kafka_options: dict[str, str] = field(default_factory=dict)
    reconnect_base_s: float = 1.0
    reconnect_cap_s: float = 30.0
    reconnect_max_attempts: int = -1  # -1 = unlimited
    batch_max_rows: int = 50_000
    batch_max_delay_s: float = 0.1
    queue_max_rows: int = 200_000
    instruments_refresh: bool = True
    backfill: bool = True
    backfill_max_trades: int = 50_000
    release_startup_pages: bool = True  # unmap library code only startup used (k2.warehouse.memory)
    read: ReadSettings = field(default_factory=ReadSettings)

    def exchange(self, name: str) -> ExchangeSettings:
        name = name.strip().lower()
        over = self.exchange_overrides.get(name, {})
        env = os.environ
        api = env.get(f"K2_{name.upper()}_API") or over.get("api")
        adapter = get_adapter(name, api)
        ws = env.get(f"K2_{name.upper()}_WS_URL") or over.get("ws_url") or adapter.ws_url
        rest = env.get(f"K2_{name.upper()}_REST_URL") or over.get("rest_url") or adapter.rest_url
        symbols = over.get("symbols") or self.symbols or DEFAULT_SYMBOLS.get(name, [])
        options = {k: v for k, v in over.items() if k not in ("ws_url", "rest_url", "symbols", "api")}
        return ExchangeSettings(name, list(symbols), ws, rest, api, options)


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def _number(name: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise K2Error(f"{name} must be a {kind.__name__}, got {value!r}") from None


def load_settings(env: Mapping[str, str] | None = None, config_path: str | None = None) -> Settings:
    env = os.environ if env is None else env
    s = Settings()
    path = Path(config_path or env.get("K2_CONFIG") or "k2.toml")
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise K2Error(f"{path}: not valid TOML: {exc}") from None
        _apply_toml(s, doc)
    elif config_path or env.get("K2_CONFIG"):
        raise K2Error(f"config file not found: {path}")

    if env.get("K2_DATA_DIR"):
        s.data_dir = Path(env["K2_DATA_DIR"])
    if env.get("K2_WAREHOUSE"):
        s.warehouse_url = env["K2_WAREHOUSE"]
    exchanges = env.get("K2_EXCHANGES") or env.get("K2_EXCHANGE")
    if exchanges:
        s.exchanges = _split(exchanges)
    if env.get("K2_SYMBOLS"):
        s.symbols = _split(env["K2_SYMBOLS"])
    if env.get("K2_METRICS_ADDR"):
        s.metrics_addr = env["K2_METRICS_ADDR"]
    if env.get("K2_KAFKA_BOOTSTRAP_SERVERS"):
        s.kafka_bootstrap = env["K2_KAFKA_BOOTSTRAP_SERVERS"]
    for key, value in env.items():  # librdkafka pass-through: K2_KAFKA_SASL_MECHANISM -> sasl.mechanism
        if key.startswith("K2_KAFKA_") and key != "K2_KAFKA_BOOTSTRAP_SERVERS":
            s.kafka_options[key[len("K2_KAFKA_"):].lower().replace("_", ".")] = value
    for name, attr, kind in (
        ("K2_RECONNECT_BASE_S", "reconnect_base_s", float),
        ("K2_RECONNECT_CAP_S", "reconnect_cap_s", float),
        ("K2_RECONNECT_MAX_ATTEMPTS", "reconnect_max_attempts", int),
        ("K2_BATCH_MAX_ROWS", "batch_max_rows", int),
        ("K2_BATCH_MAX_DELAY_S", "batch_max_delay_s", float),
        ("K2_QUEUE_MAX_ROWS", "queue_max_rows", int),
        ("K2_BACKFILL_MAX_TRADES", "backfill_max_trades", int),
    ):
        if env.get(name):
            setattr(s, attr, _number(name, env[name], kind))
    if env.get("K2_INSTRUMENTS_REFRESH"):
        s.instruments_refresh = env["K2_INSTRUMENTS_REFRESH"].lower() not in ("0", "false", "no")
    if env.get("K2_BACKFILL"):
        s.backfill = env["K2_BACKFILL"].lower() not in ("0", "false", "no")
    _read_settings(s.read, env)
    if env.get("K2_RELEASE_STARTUP_PAGES"):
        s.release_startup_pages = env["K2_RELEASE_STARTUP_PAGES"].lower() not in ("0", "false", "no")
    return s


_READ_ENV = (
    ("K2_READ_TIMEOUT_S", "timeout_s", float), ("K2_READ_MAX_MEMORY_MB", "max_memory_mb", int),
    ("K2_READ_MAX_THREADS", "max_threads", int), ("K2_READ_MAX_RESULT_MB", "max_result_mb", int),
    ("K2_READ_MAX_CONCURRENT", "max_concurrent", int), ("K2_READ_QUEUE_TIMEOUT_S", "queue_timeout_s", float),
    ("K2_READ_MAX_CONNECTIONS", "max_connections", int), ("K2_READ_IDLE_TIMEOUT_S", "idle_timeout_s", float),
)


def _read_settings(r: ReadSettings, env: Mapping[str, str]) -> None:
    for name, attr, kind in _READ_ENV:
        if env.get(name):
            setattr(r, attr, _number(name, env[name], kind))
    for name, attr, kind in _READ_ENV:
        if getattr(r, attr) <= 0:
            raise K2Error(f"{name} must be positive, got {getattr(r, attr)}")
    if env.get("K2_READ_PASSWORD"):
        r.password = env["K2_READ_PASSWORD"]
    elif env.get("K2_READ_PASSWORD_FILE"):
        path = env["K2_READ_PASSWORD_FILE"]
        try:
            r.password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise K2Error(f"cannot read K2_READ_PASSWORD_FILE {path}: {exc.strerror}") from None


def _apply_toml(s: Settings, doc: dict[str, Any]) -> None:
    top = doc.get("k2", {})
    if "data_dir" in top:
        s.data_dir = Path(top["data_dir"])
    if "warehouse" in top:
        s.warehouse_url = top["warehouse"]
    if "exchanges" in top:
        s.exchanges = list(top["exchanges"])
    if "symbols" in top:
        s.symbols = list(top["symbols"])
    if "metrics_addr" in top:
        s.metrics_addr = top["metrics_addr"]
    for name, section in doc.get("exchanges", {}).items():
        s.exchange_overrides[name.lower()] = dict(section)
    rc = doc.get("reconnect", {})
    s.reconnect_base_s = float(rc.get("base_s", s.reconnect_base_s))
    s.reconnect_cap_s = float(rc.get("cap_s", s.reconnect_cap_s))
    s.reconnect_max_attempts = int(rc.get("max_attempts", s.reconnect_max_attempts))
    for key, value in doc.get("read", {}).items():
        known = {attr: kind for _, attr, kind in _READ_ENV}
        if key not in known:
            raise K2Error(f"[read] {key}: unknown setting (known: {', '.join(sorted(known))})")
        setattr(s.read, key, _number(f"[read] {key}", str(value), known[key]))
    kafka = doc.get("kafka", {})
    if "bootstrap_servers" in kafka:
        s.kafka_bootstrap = kafka["bootstrap_servers"]
    for k, v in kafka.get("options", {}).items():
        s.kafka_options[k] = str(v)
