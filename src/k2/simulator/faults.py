"""Fault injection: what can go wrong on a real venue, on a schedule, all off by default.

Every fault is bounded and announced in the counters, so a test can tell what it provoked:
  drop_every N          every N s all connections are cut (TCP close, no WebSocket close frame)
  silence_every N, D    for D s of every N s nothing at all is sent (trades keep happening and
                        stay available over REST, as during a real stall)
  malformed_ratio R     after a real trade frame, with probability R, one EXTRA broken frame
                        (truncated JSON, wrong types, bad decimals, invalid UTF-8); the real
                        frames are never altered, so the set of real trades stays complete
  error_every N         every N s an exchange error event on every connection
  slow_start S          a new connection stays mute for S s: greeting, acks, first data wait
  faults_for S          drops, silences and error events stop S s after the start (0 = never;
                        a silence already under way runs its full length)
  rest_down A-B,...     the REST API answers 503 from A to B s after the start (each window),
                        as a venue whose REST is down while its WebSocket still streams; windows
                        are explicit, so they are not cut by faults_for
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from k2.errors import K2Error


@dataclass
class Faults:
    drop_every: float = 0.0
    silence_every: float = 0.0
    silence_for: float = 0.0
    malformed_ratio: float = 0.0
    error_every: float = 0.0
    slow_start: float = 0.0
    faults_for: float = 0.0
    rest_down: tuple[tuple[float, float], ...] = ()
    withhold: tuple[tuple[float, float], ...] = ()
    skew_candle: float | None = None
    #: (venue, bps, start, end)
    drift: tuple[tuple[str, float, float, float], ...] = ()
    #: (venue, start, end)
    maintenance: tuple[tuple[str, float, float], ...] = ()
    #: (canonical symbol, factor, start, end)
    slow: tuple[tuple[str, float, float, float], ...] = ()

    def check(self) -> None:
        for flag, windows in (("--rest-down", self.rest_down), ("--withhold", self.withhold)):
            for start, end in windows:
                if not 0 <= start < end:
                    raise K2Error(f"{flag}: window {start:g}-{end:g} must be START-END with 0 <= START < END")
        if self.skew_candle is not None and not abs(self.skew_candle) < 1e9:
            raise K2Error("--skew-candle must be a number of seconds from the start (negative: a past window)")
        for name in ("drop_every", "silence_every", "silence_for", "error_every", "slow_start", "faults_for"):
            if getattr(self, name) < 0:
                raise K2Error(f"--{name.replace('_', '-')} must not be negative")
        if not 0.0 <= self.malformed_ratio <= 1.0:
            raise K2Error("--malformed-ratio must be between 0 and 1")
        if bool(self.silence_every) != bool(self.silence_for):
            raise K2Error("--silence-every and --silence-for go together")
        if self.silence_every and self.silence_for >= self.silence_every:
            raise K2Error("--silence-for must be shorter than --silence-every")
        for _sym, factor, _a, _b in self.slow:
            if not 0.0 <= factor <= 1.0:
                raise K2Error(f"--slow: the factor must be between 0 and 1, got {factor:g}")
        for _venue, bps, _a, _b in self.drift:
            if not -5000.0 <= bps <= 5000.0:
                raise K2Error(f"--drift: {bps:g} bp is outside -5000..5000")


def in_window(elapsed: float, start: float, end: float) -> bool:
    return start <= elapsed < end


def _window(text: str, flag: str) -> tuple[str, float, float]:
    """"WHAT@A-B" -> (WHAT, A, B); "WHAT" -> (WHAT, 0, inf)."""
    what, at, window = text.strip().partition("@")
    if not at:
        return what.strip(), 0.0, float("inf")
    start, sep, end = window.partition("-")
    try:
        a, b = float(start), float(end)
    except ValueError:
        raise K2Error(f"{flag}: {text.strip()!r}: the window is not A-B (seconds after the start)") from None
    if not sep or not 0 <= a < b:
        raise K2Error(f"{flag}: {text.strip()!r}: the window must be A-B with 0 <= A < B")
    return what.strip(), a, b


def _valued(text: str, flag: str, form: str) -> tuple[str, float, float, float]:
    what, a, b = _window(text, flag)
    name, sep, value = what.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not sep or not name.strip() or number != number:
        raise K2Error(f"{flag}: {text.strip()!r} is not {form}")
    return name.strip(), number, a, b


def parse_drift(items: list[str] | None) -> tuple[tuple[str, float, float, float], ...]:
    from k2.exchanges import get_adapter

    out = []
    for item in items or []:
        venue, bps, a, b = _valued(item, "--drift", "VENUE:BPS[@A-B]")
        out.append((get_adapter(venue).name, bps, a, b))
    return tuple(out)


def parse_maintenance(items: list[str] | None) -> tuple[tuple[str, float, float], ...]:
    from k2.exchanges import get_adapter
    from k2.exchanges.status import STATUS_ENDPOINTS

    out = []
    for item in items or []:
        venue, a, b = _window(item, "--maintenance")
        name = get_adapter(venue).name
        if name not in STATUS_ENDPOINTS:
            raise K2Error(f"--maintenance: {name} publishes no status endpoint (venues with one: "
                          f"{', '.join(STATUS_ENDPOINTS)})")
        out.append((name, a, b))
    return tuple(out)


def parse_slow(items: list[str] | None) -> tuple[tuple[str, float, float, float], ...]:
    out = []
    for item in items or []:
        symbol, factor, a, b = _valued(item, "--slow", "SYMBOL:FACTOR[@A-B] (canonical, e.g. ETH/USD:0.05@10-40)")
        if "/" not in symbol:
            raise K2Error(f"--slow: {symbol!r} is not a canonical symbol (BASE/QUOTE, e.g. ETH/USD)")
        out.append((symbol.upper(), factor, a, b))
    return tuple(out)


class FaultClock:
    """Turns the schedule into events, measured from the simulator's start (monotonic s)."""

    def __init__(self, faults: Faults, start: float):
        self.faults = faults
        self.start = start
        self.until = start + faults.faults_for if faults.faults_for else float("inf")
        self._next_drop = start + faults.drop_every if faults.drop_every else float("inf")
        self._next_error = start + faults.error_every if faults.error_every else float("inf")

    def silent(self, now: float) -> bool:
        """A silence that began before `faults_for` ran out lasts its full length: cut short, it
        would be a lossy stall shorter than any watchdog, which no real venue produces."""
        f = self.faults
        if not f.silence_every:
            return False
        elapsed = now - self.start
        began = self.start + elapsed // f.silence_every * f.silence_every
        return elapsed >= f.silence_every and elapsed % f.silence_every < f.silence_for and began < self.until

    def rest_down(self, now: float) -> bool:
        elapsed = now - self.start
        return any(a <= elapsed < b for a, b in self.faults.rest_down)

    def withholding(self, now: float) -> bool:
        elapsed = now - self.start
        return any(a <= elapsed < b for a, b in self.faults.withhold)

    def drop_due(self, now: float) -> bool:
        if now < self._next_drop or now >= self.until:
            return False
        while self._next_drop <= now:
            self._next_drop += self.faults.drop_every
        return True

    def error_due(self, now: float) -> bool:
        if now < self._next_error or now >= self.until:
            return False
        while self._next_error <= now:
            self._next_error += self.faults.error_every
        return True


_FIRST_DECIMAL = re.compile(rb'"([0-9]+\.[0-9]+)"')
_BAD_DECIMALS = (b"9.75e4", b"-1.5", b"NaN", b"12.34.56", b"", b"1,5", b" 42.0", b"0x1F", b"Infinity")
MALFORMED_KINDS = ("truncated", "wrong_type", "bad_decimal", "invalid_utf8")


def malformed(frame: bytes, rng: random.Random, kind: str | None = None) -> bytes:
    """A broken copy of a real trade frame that every parser must reject.

    The first quoted decimal of a trade frame is its price on both Binance and Kraken, so
    `wrong_type` (price as a JSON number) and `bad_decimal` hit a field the parser checks.
    """
    kind = kind or MALFORMED_KINDS[int(rng.random() * len(MALFORMED_KINDS))]
    match = _FIRST_DECIMAL.search(frame)
    if kind == "wrong_type" and match:
        return frame[: match.start()] + match.group(1) + frame[match.end():]
    if kind == "bad_decimal" and match:
        bad = _BAD_DECIMALS[int(rng.random() * len(_BAD_DECIMALS))]
        return frame[: match.start(1)] + bad + frame[match.end(1):]
    if kind == "invalid_utf8" and match:
        return frame[: match.start(1)] + b"\xff\xfe" + frame[match.start(1):]
    # truncated: cut somewhere inside, never at the end, so brackets stay unbalanced
    return frame[: max(1, int(len(frame) * (0.2 + 0.7 * rng.random())))]


def parse_windows(text: str | None, flag: str = "--rest-down") -> tuple[tuple[float, float], ...]:
    """"0-8,20-26" -> ((0.0, 8.0), (20.0, 26.0)): seconds after the start."""
    if not text:
        return ()
    out = []
    for item in text.split(","):
        start, sep, end = item.strip().partition("-")
        try:
            out.append((float(start), float(end)))
        except ValueError:
            raise K2Error(f"{flag}: {item.strip()!r} is not START-END (seconds)") from None
        if not sep:
            raise K2Error(f"{flag}: {item.strip()!r} is not START-END (seconds)")
    return tuple(out)
