"""Ground truth for tests: what the simulator generated and what it actually sent.

Per exchange, in `--record DIR`:
  <exchange>.generated.jsonl  every trade once, as the frame the exchange sends for it
                              (Binance raw form, Kraken v1 array), in generation order
  <exchange>.sent.jsonl       every text frame handed to any client's socket, in order:
                              trades (again per client), acks, heartbeats, errors, malformed ones
Both are `k2 load --exchange <exchange>` input. Frames sent to Kraken v2 clients go to
kraken_v2.sent.jsonl (`k2 load --exchange kraken --api v2`), those sent to Coinbase Advanced Trade
clients to coinbase_advanced.sent.jsonl (`--api advanced`). Bitfinex's generated record starts with
a `subscribed` event per pair (its trade frames name only a channel). Writes are buffered, flushed
about once a second and on stop.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

_BUFFER = 1 << 20


class Recorder:
    def __init__(self, directory: Path, exchange: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.exchange = exchange
        self._generated = self._open(f"{exchange}.generated.jsonl")
        self._sent: dict[str, BinaryIO] = {"": self._open(f"{exchange}.sent.jsonl")}

    def _open(self, name: str) -> BinaryIO:
        return open(self.directory / name, "wb", buffering=_BUFFER)

    def generated(self, frames: list[bytes]) -> None:
        if frames:
            self._generated.write(b"\n".join(frames))
            self._generated.write(b"\n")

    def sent(self, frames: list[bytes], stream: str = "") -> None:
        """`stream` names a side file for frames another parser reads (e.g. "v2")."""
        if not frames:
            return
        f = self._sent.get(stream)
        if f is None:
            f = self._sent[stream] = self._open(f"{self.exchange}_{stream}.sent.jsonl")
        f.write(b"\n".join(frames))
        f.write(b"\n")

    def flush(self) -> None:
        self._generated.flush()
        for f in self._sent.values():
            f.flush()

    def close(self) -> None:
        self._generated.close()
        for f in self._sent.values():
            f.close()
