"""What `k2 load` reads: a file, a pipe or stdin (`-`), compressed or not, checked before any
row is written.

  * Compression is recognised by its magic bytes, not the file name: gzip, zstd (the
    `zstandard` package), bz2 and xz, so `k2 load capture.jsonl.gz` and `zcat x | k2 load -`
    both work, and a compressed file is never parsed as text.
  * The first lines are parsed before loading. When not one of them is a frame the chosen
    parser understands (a file of another venue, another API, or not frames at all), the load
    stops with one line naming the file, a sample reason and the venue the lines do parse as,
    instead of filling the rejects table with the whole file.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import stat
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from k2.errors import FrameError, K2Error
from k2.exchanges import ALL_ADAPTERS, API_VARIANTS
from k2.exchanges.base import ExchangeAdapter, FrameKind

#: lines parsed before anything is written
SNIFF_LINES = 1000
#: ... or fewer, when they are long (a line is one frame; a Bitfinex snapshot can be 100 KB)
SNIFF_BYTES = 8 << 20

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
)


def compression_of(head: bytes) -> str | None:
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    return None


def _decompressed(f: BinaryIO, kind: str | None) -> BinaryIO:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=f, mode="rb")
    if kind == "zstd":
        import zstandard  # only k2 load needs it

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True),
                                 buffer_size=1 << 20)
    if kind == "bz2":
        return bz2.BZ2File(f, mode="rb")
    if kind == "xz":
        return lzma.LZMAFile(f, mode="rb")
    return f


def check_input(source: Path | str) -> None:
    """Refuse a path `k2 load` cannot read, without opening it (a FIFO is read once)."""
    text = str(source)
    if text == "-":
        return
    path = Path(text)
    if not path.exists():
        raise K2Error(f"no such file: {path}")
    if path.is_dir():
        raise K2Error(f"{path} is a directory, not a file of frames")
    if not os.access(path, os.R_OK):
        raise K2Error(f"cannot read {path}: permission denied")


class OpenedFrames(tuple):
    """(lines, name, compression), plus where the reading is in the file on disk (compressed
    bytes), for a progress bar with an ETA."""

    raw: Any = None
    size: int | None = None  # bytes on disk; None for stdin or a FIFO

    def position(self) -> int:
        try:
            return self.raw.tell()
        except (OSError, ValueError, AttributeError):
            return 0


@contextmanager
def open_frames(source: Path | str) -> Iterator[OpenedFrames]:
    """(lines, name, compression) of a frame file: a path (regular file, FIFO, /dev/stdin...) or
    `-` for stdin. Refuses what cannot be read, before anything is loaded."""
    text = str(source)
    if text == "-":
        raw: BinaryIO = sys.stdin.buffer
        name = "stdin"
    else:
        path = Path(text)
        name = str(path)
        if path.is_dir():
            raise K2Error(f"{path} is a directory, not a file of frames")
        try:
            raw = path.open("rb")
        except FileNotFoundError:
            raise K2Error(f"no such file: {path}") from None
        except OSError as exc:
            raise K2Error(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        reader = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[arg-type]
        kind = compression_of(reader.peek(8)[:8])
        stream = _decompressed(reader, kind)
        try:
            opened = OpenedFrames((stream, name, kind))  # the file object itself: its lines are read in C
            opened.raw = raw
            try:
                st = os.fstat(raw.fileno())
                opened.size = st.st_size if stat.S_ISREG(st.st_mode) else None
            except (OSError, ValueError, AttributeError):
                opened.size = None
            yield opened
        except (OSError, EOFError, lzma.LZMAError, ValueError) as exc:
            if kind is None:
                raise
            raise K2Error(f"{name}: damaged or truncated {kind} data ({exc})") from None
        except Exception as exc:  # zstandard.ZstdError
            if kind != "zstd" or type(exc).__name__ != "ZstdError":
                raise
            raise K2Error(f"{name}: damaged or truncated zstd data ({exc})") from None
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def sniff(adapter: ExchangeAdapter, lines: Iterator[bytes], name: str) -> list[bytes]:
    """Read and parse the first lines (returned, to be loaded first). Raises K2Error when the input
    is empty, or when not one of its first frames is one `adapter` understands."""
    head: list[bytes] = []
    size = 0
    for line in lines:
        head.append(line)
        size += len(line)
        if len(head) >= SNIFF_LINES or size >= SNIFF_BYTES:
            break
    frames = [f for f in (line.rstrip(b"\r\n") for line in head) if f.strip()]
    if not frames:
        raise K2Error(f"{name} holds no frames (it is empty{' or blank' if head else ''}): nothing to load")
    trades, rejected, reasons = _parse_all(adapter, frames)
    if trades:
        return head
    # not one trade: a file of another venue, API or kind -- or a quiet stretch of the right one
    what = f"{len(frames):,} frame{'s' if len(frames) > 1 else ''}"
    if len(head) == SNIFF_LINES or size >= SNIFF_BYTES:
        what = f"the first {len(frames):,} frames"
    why = f"{rejected:,} rejected, e.g. {reasons.most_common(1)[0][0]}" if rejected else "none rejected"
    guess = _guess(adapter, frames)
    if guess:
        hint = f"; they are {guess[0]} trades: try {guess[1]}"
    elif rejected < len(frames):
        return head  # control frames the parser knows (and maybe a few bad lines): load, keep the rejects
    elif b"\x00" in b"".join(frames[:20]):
        hint = "; it looks like binary data, not frames one per line"
    else:
        hint = ""
    raise K2Error(f"{name} does not hold {_flags(adapter)} frames: no trade in {what} ({why}){hint}")


def _parse_all(adapter: ExchangeAdapter, frames: list[bytes]) -> tuple[int, int, Counter]:
    """(trade frames, rejected frames, reasons) of `frames` through a fresh parser session."""
    parser = adapter.session()
    trades, rejected, reasons = 0, 0, Counter()
    for frame in frames:
        try:
            trades += parser.parse(frame, 0).kind is FrameKind.TRADES
        except FrameError as exc:
            rejected += 1
            reasons[str(exc)[:160]] += 1
        except Exception as exc:  # a parser bug on garbage: not a frame it understands either
            rejected += 1
            reasons[f"parser error: {exc!r:.120}"] += 1
    return trades, rejected, reasons


def _guess(adapter: ExchangeAdapter, frames: list[bytes]) -> tuple[str, str] | None:
    """(venue, flags) of the other parser that finds trades in `frames`, if any."""
    best, best_trades = None, 0
    sample = frames[:200]
    for other in ALL_ADAPTERS:
        if other is adapter:
            continue
        parser, trades = other.session(), 0
        for frame in sample:
            try:
                trades += parser.parse(frame, 0).kind is FrameKind.TRADES
            except Exception:
                pass
        if trades > best_trades:
            api = _api(other)
            best = (_flags(other), f"--exchange {other.name}" + (f" --api {api}" if api else ""))
            best_trades = trades
    return best


def _api(adapter: ExchangeAdapter) -> str | None:
    return next((v for (n, v), a in API_VARIANTS.items() if a is adapter), None)


def _flags(adapter: ExchangeAdapter) -> str:
    api = _api(adapter)
    return adapter.name + (f" (--api {api})" if api else "")
