"""Replay: send recorded trade frames (the `k2 load` file format) instead of generated ones.

Only frames the exchange's own parser reads as trades are replayed, byte for byte (Binance
combined frames are unwrapped, since each client gets the form it asked for); everything else
in the file is skipped. The replay starts with the first subscription and sends `rate` frames
per second to the subscribers of each frame's symbol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msgspec

from k2.errors import FrameError, K2Error
from k2.exchanges.base import ExchangeAdapter, FrameKind, Instrument

_COMBINED = b'{"stream"'
#: quote assets to split unknown Binance symbols on, longest first
_QUOTES = ("FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USD", "DAI", "BTC", "ETH", "BNB", "EUR", "TRY",
           "BRL", "JPY", "GBP")


class _Envelope(msgspec.Struct):
    data: msgspec.Raw


_unwrap = msgspec.json.Decoder(_Envelope).decode


@dataclass(frozen=True, slots=True)
class ReplayFrame:
    native: str
    frame: bytes


def load_replay(path: Path, adapter: ExchangeAdapter) -> list[ReplayFrame]:
    if not path.is_file():
        raise K2Error(f"--replay: no such file: {path}")
    frames = []
    parser = adapter.session()
    with path.open("rb") as f:
        for line in f:
            frame = line.rstrip(b"\r\n")
            if not frame.strip():
                continue
            try:
                parsed = parser.parse(frame, 0)
            except (FrameError, ValueError):
                continue
            if parsed.kind is not FrameKind.TRADES or not parsed.rows:
                continue
            if frame.startswith(_COMBINED):
                frame = bytes(_unwrap(frame).data)
            frames.append(ReplayFrame(parsed.rows[0][adapter.symbol_index], frame))
    if not frames:
        raise K2Error(f"--replay: {path} holds no {adapter.name} trade frames")
    return frames


def instrument_for(adapter: ExchangeAdapter, native: str) -> Instrument:
    """An instrument for a replayed symbol the built-in list may not know."""
    canonical = adapter.canonical_symbol(native)
    if canonical:
        base, _, quote = canonical.partition("/")
        return Instrument(native, base, quote)
    for quote in _QUOTES:
        if native.endswith(quote) and len(native) > len(quote):
            return Instrument(native, native[: -len(quote)], quote)
    return Instrument(native, native, "USD")


class ReplaySource:
    def __init__(self, frames: list[ReplayFrame], rate: float):
        self.frames = frames
        self.rate = rate
        self.position = 0
        self.started: float | None = None

    @property
    def done(self) -> bool:
        return self.position >= len(self.frames)

    def due(self, now: float, max_batch: int) -> list[ReplayFrame]:
        """The frames whose time has come since the start (at most `max_batch` at once)."""
        if self.started is None:
            self.started = now
        target = min(len(self.frames), int((now - self.started) * self.rate) + 1)
        if target - self.position > max_batch:
            self.started += (target - self.position - max_batch) / self.rate  # fell behind: slip
            target = self.position + max_batch
        out = self.frames[self.position:target]
        self.position = max(self.position, target)
        return out
