"""Coinbase Advanced Trade: the `market_trades` channel (an option: K2_COINBASE_API=advanced).

Wire facts (docs.cdp.coinbase.com advanced-trade websocket; nautilus_trader test data
ws_market_trades.json / ws_subscriptions.json / ws_heartbeats.json; research section 4a):
  subscribe  {"type":"subscribe","product_ids":["BTC-USD"],"channel":"market_trades"}   one channel per
             message, so K2 also sends {"type":"subscribe","product_ids":["BTC-USD"],"channel":"heartbeats"}
  ack        {"channel":"subscriptions","client_id":"","timestamp":"...Z","sequence_num":0,
              "events":[{"subscriptions":{"market_trades":["BTC-USD"]}}]}   (the full set, after each request)
  trades     {"channel":"market_trades","client_id":"","timestamp":"2026-07-15T12:00:01.250912003Z",
              "sequence_num":4,"events":[{"type":"update","trades":[{"trade_id":"871234568",
              "product_id":"BTC-USD","price":"97512.38","size":"0.2","side":"BUY",
              "time":"2026-07-15T12:00:01.101871Z"}]}]}
  heartbeats {"channel":"heartbeats",...,"events":[{"current_time":"2026-07-15 12:00:01.000123456 +0000 UTC
              m=+91717.5","heartbeat_counter":1}]}     every second (keeps quiet channels open)
  error      {"type":"error","message":"..."}  (shape UNCONFIRMED)
A snapshot of recent trades (events[].type "snapshot") follows the subscription; updates are
batched over 250 ms. `side` is taken to be the TAKER side: the docs do not say, cryptofeed, ccxt
and nautilus treat it so (UNCONFIRMED). `trade_id` is a numeric string; `sequence_num` counts the
connection's messages across channels (a jump = a dropped message). Must subscribe within 5 s.
Trades land in bronze_trades_coinbase_advanced and in silver as exchange 'coinbase'; the Exchange
feed and Advanced Trade report the same trade ids (UNCONFIRMED), so use one API per data dir.

REST: GET /api/v3/brokerage/market/products/{id}/ticker?limit=N[&start=&end=<unix s>]
-> {"trades":[{trade_id, product_id, price, size, time, side, bid, ask, exchange}], best_bid, best_ask},
the newest N trades of the window: it cannot be paged forward, so K2 does not backfill from it
(can_backfill False); the Exchange API (K2_COINBASE_API unset) can.
Instruments: GET /api/v3/brokerage/market/products?product_type=SPOT -> {"products":[{product_id,
base_currency_id, quote_currency_id, ...}]} (BTC-USDC has quote_currency_id USDC even where its
display symbol says USD: K2 keeps the true quote).
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal, Sequence

import msgspec

from k2.errors import FrameError
from k2.exchanges.base import (
    HEARTBEAT, OTHER, ExchangeAdapter, FrameKind, Instrument, Parsed, check_decimal, decimal_column,
)
from k2.exchanges.coinbase import (
    ADAPTER as EXCHANGE, PRODUCT_ID, RFC3339, decode_frame, nonnegative_int, rfc3339, rfc3339_us,
)

_SIDES = ("BUY", "SELL")  # tuples: `in` compares, never hashes (a list value is not a crash)
_EVENT_TYPES = ("snapshot", "update")


class _Trade(msgspec.Struct, gc=False):
    """One trade of a `market_trades` event, types checked in C (not tracked by the GC)."""

    trade_id: str
    product_id: str
    price: str
    size: str
    side: Literal["BUY", "SELL"]
    time: str


class _Event(msgspec.Struct, gc=False):
    type: Literal["snapshot", "update"]
    trades: list[_Trade]


class _Message(msgspec.Struct, gc=False):
    channel: Literal["market_trades"]
    sequence_num: Annotated[int, msgspec.Meta(ge=0)]
    events: list[_Event]
    timestamp: str = ""


#: the usual frame: a typed decode, then the general path's checks per column (`_fast_trades`);
#: anything else takes the general path, which names the fault
_decode_message = msgspec.json.Decoder(_Message).decode
_TRADES_PREFIX = b'{"channel":"market_trades"'
#: a column of times joined by commas, each rfc3339's form (RFC3339 holds no comma)
_RFC3339_COLUMN = re.compile(f"{RFC3339.__self__.pattern}(?:,{RFC3339.__self__.pattern})*", re.ASCII).fullmatch


def _fast_trades(frame: bytes, received_us: int) -> list[tuple] | None:
    """Bronze rows of a well-formed market_trades message, or None (the general path decides: also
    for a message without trades). The same checks as `_row`, made on whole columns."""
    try:
        msg = _decode_message(frame)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None
    seq, envelope_ts = msg.sequence_num, msg.timestamp
    rows = [(t.product_id, t.trade_id, t.price, t.size, t.side, t.time, e.type, seq, envelope_ts, received_us)
            for e in msg.events for t in e.trades]
    if not rows:
        return None
    products, ids, prices, sizes, _, times, _, _, _, _ = zip(*rows)
    joined_ids, joined_times = "".join(ids), ",".join(times)
    if not (all(PRODUCT_ID(p) for p in set(products)) and joined_ids.isdigit() and joined_ids.isascii()
            and min(map(len, ids)) > 0 and max(map(len, ids)) <= 20 and decimal_column(prices)
            and decimal_column(sizes) and joined_times.count(",") == len(rows) - 1
            and _RFC3339_COLUMN(joined_times) is not None):
        return None
    return rows


class CoinbaseAdvancedAdapter(ExchangeAdapter):
    name = "coinbase"
    api = "advanced"
    bronze_table = "bronze_trades_coinbase_advanced"
    columns = (
        "product_id", "trade_id", "price", "size", "side", "time", "event_type", "sequence_num",
        "envelope_timestamp", "received_at",
    )
    column_types = ("String", "String", "String", "String", "String", "String", "String", "UInt64", "String", "Int64")
    key_columns = ("product_id", "trade_id")
    symbol_index = 0
    trade_key_index = 1
    trade_order_index = 1  # the trade id: rises within a frame and from frame to frame
    ws_url = "wss://advanced-trade-ws.coinbase.com"
    rest_url = "https://api.coinbase.com"
    max_symbols_per_connection = 100  # UNCONFIRMED
    stale_after_s = 10.0  # heartbeats every second
    exchange_time = ("time", "iso")
    bronze_time_sql = "parseDateTime64BestEffortOrZero(time, 6, 'UTC')"
    # can_backfill stays False: the public ticker endpoint answers the NEWEST `limit` trades of a time
    # window, so it cannot be paged forward from a cursor as the backfiller does (parse_rest_trades
    # works for a window that fits in one page)
    fallback_instruments = EXCHANGE.fallback_instruments

    def native_symbol(self, symbol: str) -> str:
        return EXCHANGE.native_symbol(symbol)

    def canonical_symbol(self, native: str) -> str | None:
        return EXCHANGE.canonical_symbol(native)

    def subscribe_requests(self, native_symbols: Sequence[str], first_id: int) -> list[tuple[int, list[str], str]]:
        """One message per channel: market_trades for the products, then heartbeats."""
        out = []
        for n, channel in enumerate(("market_trades", "heartbeats")):
            message = {"type": "subscribe", "product_ids": list(native_symbols), "channel": channel}
            out.append((first_id + n, list(native_symbols) if n == 0 else [],
                        json.dumps(message, separators=(",", ":"))))
        return out

    # -- parsing ---------------------------------------------------------------------------
    def parse(self, frame: bytes | str, received_us: int) -> Parsed:
        if type(frame) is bytes and frame.startswith(_TRADES_PREFIX):  # noqa: E721
            rows = _fast_trades(frame, received_us)
            if rows is not None:
                return Parsed(FrameKind.TRADES, rows)
        msg = decode_frame(frame)
        if not isinstance(msg, dict):
            raise FrameError(f"malformed frame: expected a JSON object, got {type(msg).__name__}")
        channel = msg.get("channel")
        if channel == "market_trades":
            return self._trades(msg, received_us)
        if channel == "heartbeats":
            return HEARTBEAT
        if channel == "subscriptions":
            events = msg.get("events")
            subs = events[0].get("subscriptions") if isinstance(events, list) and events and isinstance(
                events[0], dict) else None
            return Parsed(FrameKind.SUBSCRIBED, detail=f"subscriptions: {subs}"[:300])
        if msg.get("type") == "error":
            text = str(msg.get("message", "")) + (f" ({msg['reason']})" if msg.get("reason") else "")
            kind = FrameKind.SUBSCRIBE_ERROR if "subscri" in text.lower() else FrameKind.EXCHANGE_ERROR
            return Parsed(kind, detail=f"coinbase error: {text}"[:300])
        if isinstance(channel, str):
            return OTHER
        raise FrameError("malformed frame: object without a `channel`")

    def _trades(self, msg: dict[str, Any], received_us: int) -> Parsed:
        sequence_num = nonnegative_int(msg.get("sequence_num"), "sequence_num")
        envelope_ts = msg.get("timestamp", "")
        if type(envelope_ts) is not str:  # noqa: E721
            raise FrameError(f"timestamp is not a string: {envelope_ts!r:.40}")
        events = msg.get("events")
        if not isinstance(events, list):
            raise FrameError("malformed frame: market_trades without an `events` array")
        rows = []
        for event in events:
            if not isinstance(event, dict) or event.get("type") not in _EVENT_TYPES:
                raise FrameError("malformed frame: an event is not {type: snapshot|update, trades: [...]}")
            trades = event.get("trades")
            if not isinstance(trades, list):
                raise FrameError("malformed frame: an event without a `trades` array")
            for t in trades:
                if not isinstance(t, dict):
                    raise FrameError("malformed frame: a trade is not an object")
                rows.append(_row(t, event["type"], sequence_num, envelope_ts, received_us))
        if not rows:
            return OTHER  # an empty snapshot (a product that has not traded)
        return Parsed(FrameKind.TRADES, rows)

    # -- REST ---------------------------------------------------------------------------------
    def rest_trades_path(self, native: str, cursor: int) -> str:
        """The newest 1000 trades from time `cursor` (µs) on, within the following minute."""
        start = int(cursor) // 1_000_000
        return f"/api/v3/brokerage/market/products/{native}/ticker?limit=1000&start={start}&end={start + 60}"

    def parse_rest_trades(self, body: bytes, native: str, received_us: int) -> tuple[list[tuple], int | None]:
        """GET .../ticker -> bronze rows oldest first (no envelope: event_type and timestamp '',
        sequence_num 0), and no next cursor (the endpoint cannot be paged forward)."""
        doc = decode_frame(body)
        trades = doc.get("trades") if isinstance(doc, dict) else None
        if not isinstance(trades, list):
            raise FrameError(f"coinbase REST ticker: no `trades` array: {str(doc):.120}")
        rows = []
        for t in trades:
            if not isinstance(t, dict):
                raise FrameError("coinbase REST ticker: a trade is not an object")
            rows.append(_row({"product_id": native, **t}, "", 0, "", received_us))
        rows.sort(key=lambda r: (rfc3339_us(r[5]), len(r[1]), r[1]))
        return rows, None

    def row_time_us(self, row: tuple) -> int:
        return rfc3339_us(row[5])

    # -- instruments -------------------------------------------------------------------------
    def instruments_path(self, native_symbols: Sequence[str]) -> str:
        return "/api/v3/brokerage/market/products?product_type=SPOT"

    def parse_instruments(self, body: bytes) -> list[Instrument]:
        doc = decode_frame(body)
        products = doc.get("products") if isinstance(doc, dict) else None
        return [Instrument(p["product_id"], p["base_currency_id"], p["quote_currency_id"])
                for p in (products if isinstance(products, list) else [])
                if isinstance(p, dict) and p.get("product_id") and p.get("base_currency_id")
                and p.get("quote_currency_id")]


def _row(t: dict[str, Any], event_type: str, sequence_num: int, envelope_ts: str, received_us: int) -> tuple:
    product, trade_id, side = t.get("product_id"), t.get("trade_id"), t.get("side")
    if type(product) is not str or not PRODUCT_ID(product):  # noqa: E721
        raise FrameError(f"product_id is not BASE-QUOTE: {product!r:.40}")
    if type(trade_id) is not str or not trade_id.isascii() or not trade_id.isdigit() or len(trade_id) > 20:  # noqa: E721
        raise FrameError(f"trade_id is not a numeric string: {trade_id!r:.40}")
    if side not in _SIDES:
        raise FrameError(f"side is not BUY or SELL: {side!r:.20}")
    return (product, trade_id, check_decimal(t.get("price"), "price"), check_decimal(t.get("size"), "size"),
            side, rfc3339(t.get("time")), event_type, sequence_num, envelope_ts, received_us)


ADAPTER = CoinbaseAdvancedAdapter()
