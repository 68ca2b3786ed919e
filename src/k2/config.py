"""Settings: defaults < k2.toml < K2_* environment < command-line flags.

Names follow the seed where it has them (K2_EXCHANGE, K2_SYMBOLS, K2_KAFKA_BOOTSTRAP_SERVERS,
K2_KRAKEN_WS_URL, max-reconnect-attempts = -1 meaning unlimited). The file is `./k2.toml`, or
the path in K2_CONFIG or --config (a relative data_dir in it is relative to the file's folder):

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

    [writer]                              # K2_BATCH_MAX_ROWS, K2_BATCH_MAX_DELAY_S, K2_QUEUE_MAX_ROWS
    batch_max_rows = 50000
    [backfill]                            # K2_BACKFILL, K2_BACKFILL_MAX_TRADES
    enabled = true
    [read]                                # K2_READ_TIMEOUT_S, K2_READ_MAX_MEMORY_MB, ... (the read door)
    timeout_s = 30
    [reconcile]                           # K2_RECONCILE, K2_RECONCILE_INTERVAL_S, K2_RECONCILE_HOURS
    enabled = false
    [feed]                                # K2_FEED_READ_COALESCE_MS
    read_coalesce_ms = 50

Every value is checked when the settings are read, before any work starts: an unknown key or
section, a value of the wrong type and a number out of range are each one error naming where the
value came from (file and key, variable, or flag). A setting that would make K2 spin, starve or
stop (K2_BATCH_MAX_ROWS=0, a negative backoff) never reaches the services.
"""

from __future__ import annotations

import difflib
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from k2.errors import K2Error
from k2.exchanges import ADAPTERS, get_adapter

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
    nice: int = 19                   # K2_READ_NICE: a read's threads yield the CPU to the writer's (0 = off)
    max_result_mb: int = 256         # K2_READ_MAX_RESULT_MB: results that cannot be streamed (JSON, Parquet...)
    max_concurrent: int = 2          # K2_READ_MAX_CONCURRENT: reads running at once; more wait
    queue_timeout_s: float = 10.0    # K2_READ_QUEUE_TIMEOUT_S: how long a read waits for a slot
    max_connections: int = 32        # K2_READ_MAX_CONNECTIONS: open HTTP connections of the endpoint
    idle_timeout_s: float = 30.0     # K2_READ_IDLE_TIMEOUT_S: an idle connection is closed after this
    password: str = field(default="", repr=False)  # K2_READ_PASSWORD(_FILE): the endpoint's password


@dataclass
class MarketHealthSettings:
    """Per-venue and per-symbol health and live spreads (k2.monitoring.markets, ADR 0026)."""

    markets: bool = True             # K2_HEALTH_MARKETS: off = the fixed connection-silence rule only, no spreads
    stale_factor: float = 10.0       # K2_HEALTH_STALE_FACTOR: stale after this many typical trade intervals
    stale_min_s: float = 5.0         # K2_HEALTH_STALE_MIN_S: ... and never sooner than this
    divergence_bps: float = 100.0    # K2_HEALTH_DIVERGENCE_BPS: a venue this far from the others' median diverges
    status_poll_s: float = 60.0      # K2_HEALTH_STATUS_POLL_S: how often the venues' status endpoints are read (0 = never)


@dataclass
class Settings:
    data_dir: Path = Path("k2data")
    #: where data_dir came from, for messages: "--data-dir", "K2_DATA_DIR", "data_dir in FILE", ...
    data_dir_source: str = "the default ./k2data"
    warehouse_url: str | None = None
    exchanges: list[str] = field(default_factory=lambda: ["binance", "kraken"])
    symbols: list[str] | None = None  # shared list, canonical or native
    exchange_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics_addr: str = "127.0.0.1:9108"
    metrics_addr_source: str = "the default"  # where metrics_addr came from, for "cannot listen" errors
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
    #: k2 run compares its candles with the venues' own (k2.services.reconcile), every
    #: reconcile_interval_s, over the closed 1m windows of the last reconcile_hours
    reconcile: bool = False
    reconcile_interval_s: float = 900.0
    reconcile_hours: float = 3.0
    #: after a read, a feed connection leaves its socket unread this long so the frames that arrive
    #: meanwhile are read in one wake-up (k2.feed.connection, ADR 0034); 0 = read at once
    feed_read_coalesce_ms: float = 50.0
    read: ReadSettings = field(default_factory=ReadSettings)
    health: MarketHealthSettings = field(default_factory=MarketHealthSettings)

    def exchange(self, name: str) -> ExchangeSettings:
        name = name.strip().lower()
        over = self.exchange_overrides.get(name, {})
        env = os.environ
        api = env.get(f"K2_{name.upper()}_API") or over.get("api")
        get_adapter(name)  # an unknown exchange is named as such
        adapter = _setting(f"K2_{name.upper()}_API" if env.get(f"K2_{name.upper()}_API") else
                           f"[exchanges.{name}] api", lambda: get_adapter(name, api))
        ws = env.get(f"K2_{name.upper()}_WS_URL") or over.get("ws_url") or adapter.ws_url
        rest = env.get(f"K2_{name.upper()}_REST_URL") or over.get("rest_url") or adapter.rest_url
        symbols = over.get("symbols") or self.symbols or DEFAULT_SYMBOLS.get(name, [])
        options = {k: v for k, v in over.items() if k not in ("ws_url", "rest_url", "symbols", "api")}
        return ExchangeSettings(name, list(symbols), ws, rest, api, options)


# -- checking values ---------------------------------------------------------------------------------
def _setting(where: str, make):
    """Run `make()`; a K2Error it raises is prefixed with where the value came from."""
    try:
        return make()
    except K2Error as exc:
        raise K2Error(f"{where}: {exc}") from None


def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(name: str, value: str) -> bool:
    low = value.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise K2Error(f"{name} must be one of {', '.join(_TRUE)} or {', '.join(_FALSE)}, got {value!r}")


def _number(name: str, value: str, kind: type) -> Any:
    try:
        number = kind(value.strip())
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise K2Error(f"{name} must be {noun}, got {value!r}") from None
    if kind is float and not math.isfinite(number):
        raise K2Error(f"{name} must be a finite number, got {value!r}")
    return number


#: (attribute, environment variable, k2.toml key, kind, lowest, highest); None = no bound. An
#: attribute `read.x` is `Settings.read.x`.
NUMBERS = (
    ("reconnect_base_s", "K2_RECONNECT_BASE_S", "[reconnect] base_s", float, 0.001, 3600.0),
    ("reconnect_cap_s", "K2_RECONNECT_CAP_S", "[reconnect] cap_s", float, 0.001, 86400.0),
    ("reconnect_max_attempts", "K2_RECONNECT_MAX_ATTEMPTS", "[reconnect] max_attempts", int, -1, None),
    ("batch_max_rows", "K2_BATCH_MAX_ROWS", "[writer] batch_max_rows", int, 1, 10_000_000),
    ("batch_max_delay_s", "K2_BATCH_MAX_DELAY_S", "[writer] batch_max_delay_s", float, 0.001, 60.0),
    ("queue_max_rows", "K2_QUEUE_MAX_ROWS", "[writer] queue_max_rows", int, 1, 100_000_000),
    ("backfill_max_trades", "K2_BACKFILL_MAX_TRADES", "[backfill] max_trades", int, 1, None),
    ("read.timeout_s", "K2_READ_TIMEOUT_S", "[read] timeout_s", float, 0.1, 86400.0),
    ("read.max_memory_mb", "K2_READ_MAX_MEMORY_MB", "[read] max_memory_mb", int, 16, 1_000_000),
    ("read.max_threads", "K2_READ_MAX_THREADS", "[read] max_threads", int, 1, 256),
    ("read.nice", "K2_READ_NICE", "[read] nice", int, 0, 19),
    ("read.max_result_mb", "K2_READ_MAX_RESULT_MB", "[read] max_result_mb", int, 1, 1_000_000),
    ("read.max_concurrent", "K2_READ_MAX_CONCURRENT", "[read] max_concurrent", int, 1, 256),
    ("read.queue_timeout_s", "K2_READ_QUEUE_TIMEOUT_S", "[read] queue_timeout_s", float, 0.0, 3600.0),
    ("read.max_connections", "K2_READ_MAX_CONNECTIONS", "[read] max_connections", int, 1, 100_000),
    ("read.idle_timeout_s", "K2_READ_IDLE_TIMEOUT_S", "[read] idle_timeout_s", float, 0.1, 86400.0),
    ("reconcile_interval_s", "K2_RECONCILE_INTERVAL_S", "[reconcile] interval_s", float, 10.0, 86400.0),
    ("reconcile_hours", "K2_RECONCILE_HOURS", "[reconcile] hours", float, 0.05, 168.0),
    ("feed_read_coalesce_ms", "K2_FEED_READ_COALESCE_MS", "[feed] read_coalesce_ms", float, 0.0, 100.0),
    ("health.stale_factor", "K2_HEALTH_STALE_FACTOR", "[health] stale_factor", float, 1.0, 1000.0),
    ("health.stale_min_s", "K2_HEALTH_STALE_MIN_S", "[health] stale_min_s", float, 0.1, 86400.0),
    ("health.divergence_bps", "K2_HEALTH_DIVERGENCE_BPS", "[health] divergence_bps", float, 0.1, 1_000_000.0),
    ("health.status_poll_s", "K2_HEALTH_STATUS_POLL_S", "[health] status_poll_s", float, 0.0, 86400.0),
)
BOOLEANS = (
    ("instruments_refresh", "K2_INSTRUMENTS_REFRESH", "[k2] instruments_refresh"),
    ("backfill", "K2_BACKFILL", "[backfill] enabled"),
    ("release_startup_pages", "K2_RELEASE_STARTUP_PAGES", "[k2] release_startup_pages"),
    ("reconcile", "K2_RECONCILE", "[reconcile] enabled"),
    ("health.markets", "K2_HEALTH_MARKETS", "[health] markets"),
)


def _get(s: Settings, attr: str) -> Any:
    obj, _, name = attr.rpartition(".")
    return getattr(getattr(s, obj) if obj else s, name)


def _set(s: Settings, attr: str, value: Any) -> None:
    obj, _, name = attr.rpartition(".")
    setattr(getattr(s, obj) if obj else s, name, value)


def check_range(where: str, value: float, lowest: float | None, highest: float | None) -> None:
    if lowest is not None and value < lowest or highest is not None and value > highest:
        def show(v: float) -> str:
            return f"{v:,}" if isinstance(v, int) else f"{v:g}"

        if highest is None:
            bound = f"at least {show(lowest)}"
        elif lowest is None:
            bound = f"at most {show(highest)}"
        else:
            bound = f"between {show(lowest)} and {show(highest)}"
        raise K2Error(f"{where} must be {bound}, got {show(value)}")


def check_address(where: str, value: str) -> str:
    """HOST:PORT with a port 0-65535 ([::1]:9108 for IPv6). Whether HOST resolves is checked when
    the endpoint is bound (k2.services.lifecycle), by the commands that serve one."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise K2Error(f"{where} must be HOST:PORT with a port from 0 to 65535, e.g. 127.0.0.1:9108; got {value!r}")
    return value.strip()


def check_url(where: str, value: str, schemes: tuple[str, ...]) -> str:
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in schemes or not rest.strip("/"):
        raise K2Error(f"{where} must be a {' or '.join(s + '://' for s in schemes)} URL, got {value!r}")
    return text


def check_settings(s: Settings, sources: dict[str, str]) -> None:
    """Range-check every setting; `sources` names where each attribute's value came from."""
    for attr, env_name, key, kind, lowest, highest in NUMBERS:
        check_range(sources.get(attr, env_name), _get(s, attr), lowest, highest)
    if s.reconnect_cap_s < s.reconnect_base_s:
        raise K2Error(f"{sources.get('reconnect_cap_s', 'reconnect_cap_s')} ({s.reconnect_cap_s:g}) must not be "
                      f"below {sources.get('reconnect_base_s', 'reconnect_base_s')} ({s.reconnect_base_s:g})")
    check_address(sources.get("metrics_addr", "metrics_addr"), s.metrics_addr)
    for name in s.exchanges:
        _setting(sources.get("exchanges", "exchanges"), lambda: get_adapter(name))
    if not s.exchanges:
        raise K2Error(f"{sources.get('exchanges', 'exchanges')}: no exchange given")
    if s.symbols is not None and not s.symbols:
        raise K2Error(f"{sources.get('symbols', 'symbols')}: no symbol given")


def check_exchange_env(env: Mapping[str, str]) -> None:
    """K2_<EXCHANGE>_{API,WS_URL,REST_URL}: a known API and URLs of the right scheme."""
    for name in ADAPTERS:
        prefix = f"K2_{name.upper()}_"
        if env.get(prefix + "API"):
            _setting(prefix + "API", lambda: get_adapter(name, env[prefix + "API"]))
        if env.get(prefix + "WS_URL"):
            check_url(prefix + "WS_URL", env[prefix + "WS_URL"], ("ws", "wss"))
        if env.get(prefix + "REST_URL"):
            check_url(prefix + "REST_URL", env[prefix + "REST_URL"], ("http", "https"))


def load_settings(env: Mapping[str, str] | None = None, config_path: str | None = None) -> Settings:
    env = os.environ if env is None else env
    s = Settings()
    sources: dict[str, str] = {}
    path = Path(config_path or env.get("K2_CONFIG") or "k2.toml")
    if path.is_file():
        try:
            doc = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise K2Error(f"{path}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise K2Error(f"cannot read config file {path}: {exc.strerror}") from None
        TomlConfig(path, doc).apply(s, sources)
    elif config_path or env.get("K2_CONFIG"):
        how = "--config" if config_path else "K2_CONFIG"
        what = "is a directory" if path.is_dir() else "not found"
        raise K2Error(f"config file {what}: {path} (from {how})")

    if env.get("K2_DATA_DIR"):
        s.data_dir, s.data_dir_source = Path(env["K2_DATA_DIR"]), "K2_DATA_DIR"
    if env.get("K2_WAREHOUSE"):
        s.warehouse_url = env["K2_WAREHOUSE"]
    for name in ("K2_EXCHANGES", "K2_EXCHANGE"):
        if env.get(name):
            s.exchanges, sources["exchanges"] = _split(env[name]), name
            break
    if env.get("K2_SYMBOLS"):
        s.symbols, sources["symbols"] = _split(env["K2_SYMBOLS"]), "K2_SYMBOLS"
    if env.get("K2_METRICS_ADDR"):
        s.metrics_addr, sources["metrics_addr"] = env["K2_METRICS_ADDR"], "K2_METRICS_ADDR"
    if env.get("K2_KAFKA_BOOTSTRAP_SERVERS"):
        s.kafka_bootstrap = env["K2_KAFKA_BOOTSTRAP_SERVERS"]
    for key, value in env.items():  # librdkafka pass-through: K2_KAFKA_SASL_MECHANISM -> sasl.mechanism
        if key.startswith("K2_KAFKA_") and key != "K2_KAFKA_BOOTSTRAP_SERVERS":
            s.kafka_options[key[len("K2_KAFKA_"):].lower().replace("_", ".")] = value
    for attr, name, _key, kind, _lo, _hi in NUMBERS:
        if env.get(name):
            _set(s, attr, _number(name, env[name], kind))
            sources[attr] = name
    for attr, name, _key in BOOLEANS:
        if env.get(name):
            _set(s, attr, _flag(name, env[name]))
    if env.get("K2_READ_PASSWORD"):
        s.read.password = env["K2_READ_PASSWORD"]
    elif env.get("K2_READ_PASSWORD_FILE"):
        path = env["K2_READ_PASSWORD_FILE"]
        try:
            s.read.password = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise K2Error(f"cannot read K2_READ_PASSWORD_FILE {path}: {exc.strerror}") from None
    check_exchange_env(env)
    check_settings(s, sources)
    s.metrics_addr_source = sources.get("metrics_addr", s.metrics_addr_source)
    return s


# -- k2.toml ---------------------------------------------------------------------------------------------
_TOML_TYPES = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "an array",
               dict: "a table"}


def _toml_type(value: Any) -> str:
    for kind, name in _TOML_TYPES.items():
        if type(value) is kind:  # noqa: E721 (bool is not an int here)
            return name
    return type(value).__name__


class TomlConfig:
    """One k2.toml, checked key by key: unknown keys and sections, wrong types and bad values are
    errors naming the file and the key (`k2.toml: [k2] exchanges: expected an array of strings,
    got a string "kraken"`)."""

    SECTIONS = {
        "k2": ("data_dir", "warehouse", "exchanges", "symbols", "metrics_addr", "instruments_refresh",
               "release_startup_pages"),
        "reconnect": ("base_s", "cap_s", "max_attempts"),
        "writer": ("batch_max_rows", "batch_max_delay_s", "queue_max_rows"),
        "backfill": ("enabled", "max_trades"),
        "reconcile": ("enabled", "interval_s", "hours"),
        "feed": ("read_coalesce_ms",),
        "read": ("timeout_s", "max_memory_mb", "max_threads", "nice", "max_result_mb", "max_concurrent", "queue_timeout_s",
                 "max_connections", "idle_timeout_s"),
        "kafka": ("bootstrap_servers", "options"),
        "health": ("markets", "stale_factor", "stale_min_s", "divergence_bps", "status_poll_s"),
        "exchanges": (),  # a table per exchange, checked below
    }
    EXCHANGE_KEYS = ("symbols", "ws_url", "rest_url", "api", "stale_after_s", "ping_interval_s")

    def __init__(self, path: Path, doc: dict[str, Any]):
        self.path, self.doc = path, doc

    def error(self, key: str, message: str) -> K2Error:
        return K2Error(f"{self.path}: {key}: {message}")

    def unknown(self, key: str, known: tuple[str, ...] | list[str], what: str = "key",
                name: str | None = None) -> K2Error:
        close = difflib.get_close_matches(name or key.split(" ")[-1].strip("[]"), known, n=1)
        hint = f"; did you mean {close[0]}?" if close else f" (known: {', '.join(known)})"
        return K2Error(f"{self.path}: unknown {what} {key}{hint}")

    def get(self, table: dict, section: str, key: str, kind: type, items: type | None = None) -> Any:
        """table[key] checked to be `kind` (a list of `items`); KeyError when absent."""
        value = table[key]
        where = f"[{section}] {key}"
        ok = type(value) is kind or (kind is float and type(value) is int)  # noqa: E721
        if ok and items is not None:
            ok = all(type(v) is items for v in value)  # noqa: E721
        if not ok:
            want = f"an array of {_TOML_TYPES[items][2:] if items is str else _TOML_TYPES[items]}s" \
                if items is not None else _TOML_TYPES[kind]
            raise self.error(where, f"expected {want}, got {_toml_type(value)} {value!r:.60}")
        return float(value) if kind is float else value

    def apply(self, s: Settings, sources: dict[str, str]) -> None:
        doc = self.doc
        for section, body in doc.items():
            if section not in self.SECTIONS:
                raise self.unknown(f"[{section}]", list(self.SECTIONS), "section")
            if not isinstance(body, dict):
                raise self.error(section, f"expected a table [{section}], got {_toml_type(body)}")
            if section not in ("exchanges", "kafka"):
                for key in body:
                    if key not in self.SECTIONS[section]:
                        raise self.unknown(f"[{section}] {key}", self.SECTIONS[section])
        top = doc.get("k2", {})
        if "data_dir" in top:
            value = Path(self.get(top, "k2", "data_dir", str))
            # relative to the file, so a query run from another folder reads the same store
            s.data_dir = value if value.is_absolute() else self.path.parent / value
            s.data_dir_source = f"data_dir in {self.path}"
        if "warehouse" in top:
            s.warehouse_url = self.get(top, "k2", "warehouse", str)
        if "exchanges" in top:
            s.exchanges = [e.strip().lower() for e in self.get(top, "k2", "exchanges", list, str)]
            sources["exchanges"] = f"{self.path}: [k2] exchanges"
        if "symbols" in top:
            s.symbols = self.get(top, "k2", "symbols", list, str)
            sources["symbols"] = f"{self.path}: [k2] symbols"
        if "metrics_addr" in top:
            s.metrics_addr = self.get(top, "k2", "metrics_addr", str)
            sources["metrics_addr"] = f"{self.path}: [k2] metrics_addr"
        for attr, _env, key, kind, _lo, _hi in NUMBERS:
            section, name = key[1:].split("] ")
            table = doc.get(section, {})
            if name in table:
                _set(s, attr, self.get(table, section, name, kind))
                sources[attr] = f"{self.path}: {key}"
        for attr, _env, key in BOOLEANS:
            section, name = key[1:].split("] ")
            table = doc.get(section, {})
            if name in table:
                _set(s, attr, self.get(table, section, name, bool))
        for name, section in doc.get("exchanges", {}).items():
            s.exchange_overrides[name.lower()] = self.exchange_section(name, section)
        kafka = doc.get("kafka", {})
        for key in kafka:
            if key not in self.SECTIONS["kafka"]:
                raise self.unknown(f"[kafka] {key}", self.SECTIONS["kafka"])
        if "bootstrap_servers" in kafka:
            s.kafka_bootstrap = self.get(kafka, "kafka", "bootstrap_servers", str)
        if "options" in kafka:
            for k, v in self.get(kafka, "kafka", "options", dict).items():
                s.kafka_options[k] = str(v).lower() if isinstance(v, bool) else str(v)

    def exchange_section(self, name: str, section: Any) -> dict[str, Any]:
        where = f"[exchanges.{name}]"
        if name.lower() not in ADAPTERS:
            raise self.unknown(where, list(ADAPTERS), "exchange", name.lower())
        if not isinstance(section, dict):
            raise self.error(f"exchanges.{name}", f"expected a table {where}, got {_toml_type(section)}")
        out: dict[str, Any] = {}
        for key in section:
            if key not in self.EXCHANGE_KEYS:
                raise self.unknown(f"{where} {key}", self.EXCHANGE_KEYS)
        sec = f"exchanges.{name}"
        if "symbols" in section:
            out["symbols"] = self.get(section, sec, "symbols", list, str)
            if not out["symbols"]:
                raise self.error(f"{where} symbols", "no symbol given")
        if "ws_url" in section:
            out["ws_url"] = _setting(f"{self.path}: {where} ws_url",
                                     lambda: check_url("the URL", self.get(section, sec, "ws_url", str), ("ws", "wss")))
        if "rest_url" in section:
            out["rest_url"] = _setting(f"{self.path}: {where} rest_url", lambda: check_url(
                "the URL", self.get(section, sec, "rest_url", str), ("http", "https")))
        if "api" in section:
            out["api"] = self.get(section, sec, "api", str)
            _setting(f"{self.path}: {where} api", lambda: get_adapter(name, out["api"]))
        for key in ("stale_after_s", "ping_interval_s"):
            if key in section:
                out[key] = self.get(section, sec, key, float)
                _setting(f"{self.path}", lambda: check_range(f"{where} {key}", out[key], 0.1, 3600.0))
        return out
