"""Placing the symbols of a recording: native symbol -> (base, quote) before its trades are written.

Silver splits a concatenated symbol (Binance BTCUSDT, Bybit, Gemini) only through the instruments
table, which holds the built-in list and whatever `k2 run` fetched. A recording of a less common
pair would otherwise load as `unknown_instrument` rows, out of every candle. So for each symbol
the table does not know, in this order:
  1. the exchange's instrument list, fetched once when the network allows (K2_INSTRUMENTS_REFRESH,
     the exchange's REST URL): what the exchange itself says;
  2. the symbol's own form, when a separator spells base and quote (BTC-USD, XBT/USD, tDOGE:USD):
     what silver does anyway. A concatenated symbol is never split by guessing;
  3. otherwise it stays unplaced: its trades are stored and flagged, and `k2 load` names it, so
     `k2 rebuild` can repair them once the instrument is known.
"""

from __future__ import annotations

import logging
from typing import Iterable

from k2.exchanges.base import ExchangeAdapter, Instrument
from k2.feed.runtime import fetch_instruments
from k2.warehouse.instruments import instrument_map

log = logging.getLogger("k2.load")

#: instrument-list requests one load may make (a new batch of unknown symbols asks again)
MAX_FETCHES = 3


class Placement:
    def __init__(self, wh, adapter: ExchangeAdapter, rest_url: str | None = None, fetch: bool = False,
                 timeout: float = 10.0):
        self.adapter = adapter
        self.rest_url = rest_url if fetch else None
        self.timeout = timeout
        self.known: set[str] = set(instrument_map(wh, adapter.name))
        self.listed: dict[str, Instrument] = {}  # from the exchange, this load
        self.unplaced: set[str] = set()
        self.fetches = 0
        self.fetch_error = ""

    def place(self, symbols: Iterable[str]) -> list[Instrument]:
        """The instruments to store before writing trades of `symbols` (new ones only)."""
        unknown = [s for s in symbols if s not in self.known and s not in self.unplaced]
        if not unknown:
            return []
        if self.rest_url and self.fetches < MAX_FETCHES and any(s not in self.listed for s in unknown):
            self._fetch(unknown)
        out = []
        for s in unknown:
            inst = self.listed.get(s) or self._from_form(s)
            if inst is None:
                self.unplaced.add(s)
            else:
                out.append(inst)
                self.known.add(s)
        return out

    def _fetch(self, symbols: list[str]) -> None:
        self.fetches += 1
        try:
            for inst in fetch_instruments(self.adapter, self.rest_url, sorted(symbols), timeout=self.timeout):
                self.listed[inst.native_symbol] = inst
            self.fetch_error = ""
        except Exception as exc:  # unreachable, refused, timed out, or an answer that does not parse
            reason = getattr(exc, "reason", None) or exc
            self.fetch_error = f"{self.rest_url}: {reason}"
            log.warning("%s: could not fetch the instrument list from %s (%s); placing symbols from the "
                        "built-in list and their own form", self.adapter.name, self.rest_url, reason)

    def _from_form(self, native: str) -> Instrument | None:
        if not any(sep in native for sep in "/-:"):
            return None  # BTCUSDT: where base ends is the exchange's to say
        canonical = self.adapter.canonical_symbol(native)
        if not canonical or "/" not in canonical:
            return None
        base, _, quote = canonical.partition("/")
        return Instrument(native, base, quote) if base and quote else None
