"""What every exchange adapter provides: venue facts and pure frame parsers.

An adapter never does I/O. `parse(frame, received_us)` turns one WebSocket text frame into a
`Parsed` value: trade rows in the column order of the exchange's bronze table, or a control event
(heartbeat, subscription ack or error, exchange error, status). The feed runtime, `k2 load`, the
Kafka sink and the simulator's self-checks all call the same parser, so a frame means the same
thing everywhere. A frame that cannot be understood raises `FrameError(reason)`; the caller keeps
it in the rejects table.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, ClassVar, Hashable, Sequence

import msgspec

from k2.errors import FrameError


def is_decimal_string(value: str) -> bool:
    """Digits with at most one inner dot, ASCII only ("97512.34000000"). No sign, exponent or
    blank. Str methods instead of a regex: this runs twice per trade. Whether the value fits
    silver's Decimal(38, 18) exactly is checked by silver, which flags it, never rounds it."""
    return (
        value.replace(".", "", 1).isdigit()
        and value.isascii()
        and value[0] != "."
        and value[-1] != "."
        and len(value) <= 64
    )


_DIGITS = b"0123456789"
#: every digit made "0" and every dot a comma: what is left between two commas is one run of digits
_RUNS = bytes.maketrans(_DIGITS + b".", b"0" * 10 + b",")
#: a run of digits this long sends the column to the general path (it may still be valid: a value
#: of at most 64 characters holds at most two runs, so without such a run every value is <= 63)
_LONG_RUN = b"0" * 32


def decimal_column(values: Sequence[str]) -> bool:
    """True only when every value (all str) passes `is_decimal_string`, checked for a whole
    batched frame at once: False sends the frame to the general path, which checks value by value
    (so a rare valid value, with a run of 32 digits or more, takes it too). The values joined by
    commas, as ASCII bytes, are looked at with byte operations that run in C at memory speed, not
    a regex (the regex and a max() of the lengths were a quarter of K2's CPU on Kraken's batched
    frames; this is ~2.5x cheaper): with the digits removed, only the commas between values (one
    fewer than the values: none inside one) and at most one dot per value may remain; with the
    digits made 0 and the dots commas, both ends are digits and no two commas touch (no empty value,
    no dot at a value's edge), and no run of digits reaches `_LONG_RUN`."""
    try:
        joined = ",".join(values).encode("ascii")
    except UnicodeEncodeError:
        return False
    marks = joined.translate(None, _DIGITS)
    if marks.count(b",") != len(values) - 1 or marks.translate(None, b".,") or b".." in marks:
        return False
    runs = joined.translate(_RUNS)
    return runs[:1] == b"0" == runs[-1:] and b",," not in runs and _LONG_RUN not in runs


#: longest free-text native field kept in bronze (Kraken `misc`, Coinbase order ids...). A longer one
#: is no trade the venue documents: the frame is rejected and kept whole in `rejects` (ADR 0011)
MAX_FREE_TEXT = 256


def check_free_text(value: Any, what: str, limit: int = MAX_FREE_TEXT) -> str:
    """A venue's free-text field: a string of at most `limit` characters, else FrameError."""
    if type(value) is not str:  # noqa: E721
        raise FrameError(f"{what} is not a string: {value!r:.40}")
    if len(value) > limit:
        raise FrameError(f"{what} is {len(value):,} characters long (at most {limit} kept in bronze; "
                         "the frame is kept whole here)")
    return value


def symbol_rule(pattern: str, what: str, form: str) -> Callable[[Any], str]:
    """A venue's symbol check: printable ASCII in the form the venue documents (`pattern`, a
    regex). Returns a function giving the symbol back or raising FrameError. Symbols already seen
    are remembered (a set lookup per trade, not a regex), up to a bound."""
    match = re.compile(pattern, re.ASCII).fullmatch
    seen: set[str] = set()

    def check(value: Any) -> str:
        if type(value) is not str:  # noqa: E721
            raise FrameError(f"{what} is not a string: {value!r:.40}")
        if value in seen:
            return value
        if not match(value):
            raise FrameError(f"{what} is not {form} (capitals and digits as the venue writes it): {value!r:.40}")
        if len(seen) < 100_000:
            seen.add(value)
        return value

    check.match = match  # type: ignore[attr-defined]
    check.seen = seen  # type: ignore[attr-defined]  # hot paths test `symbol in check.seen` inline first
    return check


class FrameKind(enum.Enum):
    TRADES = "trades"
    HEARTBEAT = "heartbeat"
    SUBSCRIBED = "subscribed"
    SUBSCRIBE_ERROR = "subscribe_error"
    EXCHANGE_ERROR = "exchange_error"
    STATUS = "status"
    PONG = "pong"
    SHUTDOWN = "shutdown"  # the server announces it will close the connection
    OTHER = "other"  # well-formed but not a trade (aggTrade, unknown event...)


class Parsed(msgspec.Struct, gc=False):
    """What one frame held. A msgspec Struct: built once per frame, its C constructor is
    several times cheaper than a dataclass's."""

    kind: FrameKind
    rows: list = []  # bronze rows, for TRADES
    symbol: str = ""  # native symbol the control event is about, when there is one
    detail: str = ""  # human-readable text for errors and status events
    #: the columns of the rows' trade keys, when the parser has them at hand (TradeKeys.of_columns
    #: makes the keys): the recent-trades window holds a frame so without transposing its rows
    key_columns: Any = None


HEARTBEAT = Parsed(FrameKind.HEARTBEAT)
OTHER = Parsed(FrameKind.OTHER)
PONG = Parsed(FrameKind.PONG)


def check_decimal(value: Any, what: str) -> str:
    """Return `value` if it is a plain decimal string, else raise FrameError naming `what`."""
    if type(value) is not str or not is_decimal_string(value):  # noqa: E721 (exact type wanted)
        raise FrameError(f"{what} is not a decimal string: {value!r:.60}")
    return value


class JsonFloat(str):
    """The exact text of a JSON float, from `msgspec.json.Decoder(float_hook=JsonFloat)`: venues that
    send numbers (Kraken v2, Bitfinex) keep their digits, and a quoted string is still told apart
    from a number (it decodes to a plain str)."""

    __slots__ = ()


def json_number_text(value: Any, what: str, pattern: Callable[[str], Any]) -> str:
    """The text of a JSON number decoded with float_hook=JsonFloat (ints decode as int), checked
    against `pattern` (a regex fullmatch); raise FrameError naming `what` otherwise."""
    kind = type(value)
    text = str.__str__(value) if kind is JsonFloat else str(value) if kind is int else None
    if text is None or len(text) > 64 or not pattern(text):
        raise FrameError(f"{what} is not a JSON number: {value!r:.40}")
    return text


def describe_decode_error(exc: Exception) -> str:
    """The reject reason for a frame that does not decode. Invalid UTF-8 gets one wording whoever
    found it (Python's codec or msgspec, whose message changed between releases), so the reason
    can be searched for."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, UnicodeDecodeError) or "utf-8" in text.lower():
        return f"malformed frame: not valid utf-8 text ({text})"[:300]
    return f"malformed frame: {text}"[:300]


@dataclass(frozen=True, slots=True)
class RestHistory:
    """How a venue serves its public trade history over REST (k2 backfill): how its pages are
    addressed, the documented request limit it holds a client to, and how far back it goes."""

    pages_by: str  # "id" (consecutive trade ids: a range is proven complete) or "time" (µs cursor)
    requests_per_s: float  # the documented public limit, per IP
    limit_note: str  # where that figure comes from
    reaches_back: str  # how far the history goes, and why
    latest_path: str = ""  # pages_by "id": the newest trade's page (`{native}` filled in)


@dataclass(frozen=True, slots=True)
class VenueCandles:
    """How a venue serves its own candles over REST (k2 reconcile compares K2's with them): the
    K2 fields they carry, their windows' time base, paging, the documented request limit and how
    far back they reach. Values are decimal strings exactly as the venue printed them."""

    fields: tuple[str, ...]  # K2 names: open high low close volume quote_volume trade_count buy_volume vwap
    intervals: tuple[str, ...]  # the K2 intervals (1m 1h 1d) the venue serves
    page_windows: int  # windows per request at most
    requests_per_s: float  # the documented public limit for this call, per IP
    limit_note: str  # where that figure comes from
    time_base: str  # what a window's time means
    reaches_back_windows: int | None = None  # the venue serves only this many newest windows
    rounding: str = ""  # the decimals the venue prints for derived values (rounded half-even)
    floats: bool = False  # values are JSON numbers: digits past 15 significant may be lost


#: seconds per K2 reconciliation interval
CANDLE_INTERVAL_S = {"1m": 60, "1h": 3600, "1d": 86400}


def candle_json(body: bytes, what: str) -> Any:
    """A candle answer with every JSON number kept as its text: candles are compared as exact
    decimals, and some venues print them as JSON numbers (floats)."""
    try:
        return json.loads(body, parse_float=str, parse_int=str)
    except (ValueError, UnicodeDecodeError) as exc:
        raise FrameError(f"{what}: not JSON ({str(exc)[:120]})") from None


def candle_of(row: Any, start_us: int, positions: dict[str, int], what: str) -> dict[str, Any]:
    """{"start_us": ..., field: plain decimal text} from one venue candle row (a list)."""
    out: dict[str, Any] = {"start_us": start_us}
    for name, i in positions.items():
        try:
            value = Decimal(str(row[i]))
        except (InvalidOperation, IndexError, KeyError, TypeError):
            raise FrameError(f"{what}: {name} missing or not a number in {row!r:.100}") from None
        if not value.is_finite():
            raise FrameError(f"{what}: {name} is not a finite number in {row!r:.100}")
        out[name] = format(value, "f")
    return out


@dataclass(frozen=True, slots=True)
class Instrument:
    native_symbol: str
    base: str
    quote: str

    @property
    def canonical_symbol(self) -> str:
        return f"{self.base}/{self.quote}"


class TradeKeys:
    """A one-to-one map from a row's trade key (`row[trade_key_index]`) to a key that is cheaper to
    keep: `one(row)` for a row, `many(rows)` for a batch (the same keys, built by C loops). Two
    rows get equal keys exactly when `row[trade_key_index]` is equal. `of_columns`: the same keys
    from a frame's `Parsed.key_columns`, whose column `order_column` holds the order value
    (`trade_order_index`)."""

    __slots__ = ("one", "many", "of_columns", "order_column")

    def __init__(self, one: Callable[[tuple], Hashable], many: Callable[[list[tuple]], list],
                 of_columns: Callable[[Any], list] | None = None, order_column: int | None = None):
        self.one, self.many, self.of_columns, self.order_column = one, many, of_columns, order_column


class ExchangeAdapter:
    """Venue facts plus pure parsers. Subclasses fill the class attributes and `parse`."""

    name: ClassVar[str]
    bronze_table: ClassVar[str]
    #: bronze columns produced by `parse`, in row order; every row ends with `received_at` (µs)
    columns: ClassVar[tuple[str, ...]]
    #: ClickHouse types of `columns`, used to build the insert block
    column_types: ClassVar[tuple[str, ...]]
    #: bronze columns that identify one trade (the exactly-once key)
    key_columns: ClassVar[tuple[str, ...]]
    #: values of columns a Kafka record written by an older K2 may lack (added columns)
    column_defaults: ClassVar[dict[str, Any]] = {}
    #: index in a row of the native symbol
    symbol_index: ClassVar[int]
    #: `row[trade_key_index]` identifies a trade within its symbol (an index or a slice)
    trade_key_index: ClassVar[int | slice]
    #: how the recent-trades window keys rows when `row[trade_key_index]` would be a tuple (a
    #: GC-tracked object per trade): a one-to-one map to a cheaper key (k2.feed.recent); None:
    #: the window keys by `row[trade_key_index]`
    trade_keys: ClassVar["TradeKeys | None"] = None
    #: index in a row of a field of the trade key whose values rise trade after trade within a
    #: frame and from frame to frame (a time, an id), or None: the window's high-water path
    #: (k2.feed.recent) takes a frame newer than everything it holds without a set lookup
    trade_order_index: ClassVar[int | None] = None
    ws_url: ClassVar[str]
    rest_url: ClassVar[str]
    #: how many symbols one WebSocket connection may carry
    max_symbols_per_connection: ClassVar[int] = 100
    #: seconds of silence after which a connection is considered dead
    stale_after_s: ClassVar[float] = 30.0
    #: how often the runtime sends `ping_message()` (adapters that define one)
    ping_interval_s: ClassVar[float] = 30.0
    #: the exchange closes connections older than this; K2 replaces them a little earlier
    max_connection_age_s: ClassVar[float | None] = None
    #: index in a row of a trade id that increases by one per trade and symbol (gap detection by
    #: id); None when the exchange gives no such id (gaps are then found by time, after reconnects)
    sequential_id_index: ClassVar[int | None] = None
    #: SQL over the bronze table's columns giving each row's trade time (used by k2 rebuild --since)
    bronze_time_sql: ClassVar[str | None] = None
    #: True when the adapter can fetch missed trades from the exchange's REST API
    can_backfill: ClassVar[bool] = False
    #: False when the REST trades call only answers the most recent trades (no cursor back in
    #: time): a gap is then filled only if the answer reaches back to its start
    rest_pages_from_cursor: ClassVar[bool] = True
    #: bronze tables of archive formats holding this venue's trades under the same key columns
    #: (k2 import): a live or REST row whose key one of them holds is already stored. Each feeds
    #: silver through a view of its own, has a `trade_time_us` column (k2 rebuild replays it by
    #: time) and a queries/restore_<table>.sql (k2 repair restores it from silver)
    archive_tables: ClassVar[tuple[str, ...]] = ()
    #: REST trade history for k2 backfill (None: the venue serves no range of its past)
    rest_history: ClassVar[RestHistory | None] = None
    #: the venue's own candles over REST for k2 reconcile (None: not supported yet)
    candles: ClassVar[VenueCandles | None] = None
    #: built-in instrument list, used offline and until the exchange's metadata is fetched
    fallback_instruments: ClassVar[Sequence[Instrument]] = ()
    #: (bronze column, unit) of the exchange's trade time, for the ingest-latency metric: unit
    #: "ms" (integer milliseconds), "s" (decimal seconds string) or "iso" (RFC 3339 string)
    exchange_time: ClassVar[tuple[str, str] | None] = None

    # -- symbols -------------------------------------------------------------------------
    def native_symbol(self, symbol: str) -> str:
        """Map a user's symbol (canonical `BTC/USD` or native) to this exchange's native form."""
        raise NotImplementedError

    def canonical_symbol(self, native: str) -> str | None:
        for inst in self.fallback_instruments:
            if inst.native_symbol == native:
                return inst.canonical_symbol
        return None

    # -- wire -----------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        raise NotImplementedError

    def parse_trade_frames(self, frames: list[bytes], received_us: int) -> list[tuple] | None:
        """Fast path for frame files: the trade rows of `frames` when every one of them is a
        valid plain trade frame, else None, and the caller parses them one by one with `parse`
        (which classifies and rejects). The same decoding and checks as `parse`, minus its
        per-frame dispatch. Adapters without one return None."""
        return None

    def session(self) -> "ExchangeAdapter":
        """The parser for one connection (or one recorded file). Adapters are stateless and return
        themselves; a venue whose frames only make sense in their connection's context (Bitfinex
        numbers its channels per connection) returns a fresh parser with its own state."""
        return self

    # -- REST backfill (adapters with can_backfill) ----------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """Path of the REST call returning trades from `cursor` on: a trade id for exchanges with
        sequential ids, else a time in microseconds."""
        raise NotImplementedError

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """Bronze rows from one REST page, and the cursor of the next page (None: no more)."""
        raise NotImplementedError

    def row_time_us(self, row: tuple) -> int:
        """The exchange's trade time of a bronze row, in microseconds."""
        raise NotImplementedError

    # -- the venue's own candles (adapters with `candles`) --------------------------------------
    def candles_path(self, native: str, interval: str, since_us: int, until_us: int) -> str:
        """Path of the REST call returning the candles of windows starting in [since_us, until_us)
        (the first page; `parse_candles` tells where the next one starts)."""
        raise NotImplementedError

    def parse_candles(self, body: bytes, interval: str) -> list[dict[str, Any]]:
        """The candles of one answer: {"start_us": int, <field>: decimal string, ...}, oldest first.
        An answer that is not candles raises FrameError; a venue error (in a 200) raises K2Error."""
        raise NotImplementedError

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        """(request id, symbols, message text) for each subscribe message to send."""
        raise NotImplementedError
