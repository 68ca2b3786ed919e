"""Kraken spot WebSocket v2: the `trade` channel (an option: K2_KRAKEN_API=v2).

Wire facts (docs.kraken.com spot-websocket-v2/trade, /status, /heartbeat, /ping):
  status     {"channel":"status","data":[{"api_version":"v2","connection_id":13834774380200032777,
              "system":"online","version":"2.0.x"}],"type":"update"}
  subscribe  {"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"],"snapshot":true},"req_id":1}
  ack        {"method":"subscribe","result":{"channel":"trade","snapshot":true,"symbol":"BTC/USD"},
              "success":true,"time_in":"...","time_out":"...","req_id":1}
  bad symbol {"error":"Currency pair not supported XBT/USD","method":"subscribe","success":false,
              "symbol":"XBT/USD","time_in":"...","time_out":"..."}
  trade      {"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":97512.4,
              "qty":0.01,"ord_type":"market","trade_id":83412003,"timestamp":"2026-07-15T12:00:00.412398Z"}]}
  heartbeat  {"channel":"heartbeat"}      ping {"method":"ping","req_id":7} -> {"method":"pong",...}
Unlike v1: symbols are already BTC/DOGE, trades carry a per-book sequential `trade_id`, times are
RFC 3339 with microseconds, and price/qty are JSON numbers — decoded here as their exact text
(never a float). side and ord_type are the taker's. v2 trades land in bronze_trades_kraken_v2 and
in silver as exchange 'kraken'; use one Kraken API per data dir, since v1 and v2 give the same
trade different ids.
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

import msgspec

from k2.errors import FrameError
from k2.exchanges.base import (
    HEARTBEAT, OTHER, PONG, ExchangeAdapter, FrameKind, Instrument, JsonFloat, Parsed, describe_decode_error,
    json_number_text, symbol_rule,
)
from k2.exchanges.kraken import ADAPTER as V1, ASSET_ALIASES

_decode = msgspec.json.Decoder(float_hook=JsonFloat).decode  # numbers keep their exact text
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII).fullmatch
_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,9})?Z", re.ASCII).fullmatch
_SIDES = frozenset(("buy", "sell"))
#: v2 symbols: BASE/QUOTE with the common codes (BTC/USD), the same characters as v1's pairs
SYMBOL = symbol_rule(r"[A-Z0-9][A-Z0-9.]{0,19}/[A-Z0-9][A-Z0-9.]{0,19}", "symbol", "BASE/QUOTE")
_ORDER_TYPES = frozenset(("limit", "market"))


def _number_text(value: Any, what: str) -> str:
    return json_number_text(value, what, _NUMBER)  # a quoted "97512.4" is not a number


class KrakenV2Adapter(ExchangeAdapter):
    name = "kraken"
    api = "v2"
    bronze_table = "bronze_trades_kraken_v2"
    columns = ("symbol", "side", "price", "qty", "ord_type", "trade_id", "timestamp", "is_snapshot", "received_at")
    column_types = ("String", "String", "String", "String", "String", "UInt64", "String", "Bool", "Int64")
    key_columns = ("symbol", "trade_id")
    symbol_index = 0
    trade_key_index = 5
    exchange_time = ("timestamp", "iso")
    ws_url = "wss://ws.kraken.com/v2"
    rest_url = V1.rest_url
    bronze_time_sql = "parseDateTime64BestEffortOrZero(timestamp, 6, 'UTC')"
    max_symbols_per_connection = 50
    stale_after_s = 10.0
    # v2 writes pairs with the common codes (BTC/USD), so native = canonical
    fallback_instruments = tuple(Instrument(i.canonical_symbol, i.base, i.quote) for i in V1.fallback_instruments)

    def native_symbol(self, symbol: str) -> str:
        base, sep, quote = symbol.strip().upper().partition("/")
        if not sep:
            raise ValueError(f"Kraken pairs are written BASE/QUOTE, e.g. BTC/USD (got {symbol!r})")
        return f"{ASSET_ALIASES.get(base, base)}/{ASSET_ALIASES.get(quote, quote)}"

    def canonical_symbol(self, native: str) -> str | None:
        return V1.canonical_symbol(native)

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        message = {"method": "subscribe", "params": {"channel": "trade", "symbol": list(native_symbols),
                                                     "snapshot": True}, "req_id": first_id}
        return [(first_id, list(native_symbols), json.dumps(message))]

    def ping_message(self, request_id: int) -> str:
        return json.dumps({"method": "ping", "req_id": request_id})

    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        try:
            msg = _decode(frame)
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise FrameError(describe_decode_error(exc)) from None
        if not isinstance(msg, dict):
            raise FrameError(f"malformed frame: expected a JSON object, got {type(msg).__name__}")
        channel = msg.get("channel")
        if channel == "trade":
            return self._trades(msg, received_us)
        if channel == "heartbeat":
            return HEARTBEAT
        if channel == "status":
            data = msg.get("data") or [{}]
            info = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else {}
            return Parsed(FrameKind.STATUS, detail=f"system {info.get('system')} (api {info.get('api_version')})")
        method = msg.get("method")
        if method == "pong":
            return PONG
        if method in ("subscribe", "unsubscribe"):
            if msg.get("success") is True:
                result = msg.get("result") if isinstance(msg.get("result"), dict) else {}
                return Parsed(FrameKind.SUBSCRIBED, symbol=str(result.get("symbol", "")))
            return Parsed(FrameKind.SUBSCRIBE_ERROR, symbol=str(msg.get("symbol", "")),
                          detail=str(msg.get("error", "subscription error")))
        if "error" in msg:
            return Parsed(FrameKind.EXCHANGE_ERROR, detail=f"kraken error: {msg.get('error')}")
        if isinstance(channel, str) or isinstance(method, str):
            return OTHER
        raise FrameError("malformed frame: no channel or method")

    def _trades(self, msg: dict[str, Any], received_us: int) -> Parsed:
        data = msg.get("data")
        if not isinstance(data, list) or not data:
            raise FrameError("malformed frame: trade data missing or empty")
        snapshot = msg.get("type") == "snapshot"
        rows = []
        for t in data:
            if not isinstance(t, dict):
                raise FrameError("malformed frame: a trade is not an object")
            symbol, side, ord_type, trade_id, ts = (t.get("symbol"), t.get("side"), t.get("ord_type"),
                                                    t.get("trade_id"), t.get("timestamp"))
            SYMBOL(symbol)
            if type(side) is not str or type(ord_type) is not str or side not in _SIDES or ord_type not in _ORDER_TYPES:
                raise FrameError(f"side/ord_type not buy|sell / limit|market: {side!r:.10} {ord_type!r:.10}")
            if type(trade_id) is not int or trade_id < 0:
                raise FrameError(f"trade_id is not a non-negative integer: {trade_id!r:.40}")
            if not isinstance(ts, str) or not _RFC3339(ts):
                raise FrameError(f"timestamp is not RFC 3339 UTC: {ts!r:.40}")
            rows.append((symbol, side, _number_text(t.get("price"), "price"), _number_text(t.get("qty"), "qty"),
                         ord_type, trade_id, ts, snapshot, received_us))
        return Parsed(FrameKind.TRADES, rows)

    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return V1.instruments_path(native_symbols)

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        return [Instrument(i.canonical_symbol, i.base, i.quote) for i in V1.parse_instruments(body)]


ADAPTER = KrakenV2Adapter()
