"""One WebSocket connection to one exchange for a fixed set of symbols, kept alive forever.

Lifecycle: connect -> subscribe -> receive -> (disconnect | silence | server shutdown) ->
backoff -> reconnect -> resubscribe. Everything venue-specific comes from the adapter; this
class owns the I/O:
  * protocol pings are answered here (not by picows) so they count as signs of life;
  * the client pings an idle connection and drops it when no pong comes back;
  * a watchdog drops a connection silent for longer than the adapter's `stale_after_s`;
  * a connection older than the adapter's `max_connection_age_s` (Binance: 24 h limit), or one
    whose server announced a shutdown, reconnects at once, without backoff;
  * trades already handed on (replays after reconnect) are dropped by the recent-trades window;
  * read coalescing (`read_coalesce_ms`, ADR 0034): after a read brought frames, the socket is
    left unread until the next multiple of that interval on the loop's clock, so the frames that
    arrive meanwhile (the kernel buffers them) are read in one wake-up, shared by every connection
    of the loop. It composes with back-pressure's pause: reading resumes when neither holds.
    A busy connection (`BUSY_FRAMES_PER_S` or more over the last second) is not held: each of its
    reads already brings many frames, so a hold would add latency and save little CPU.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import time
from dataclasses import dataclass, field
from operator import itemgetter as _itemgetter
from typing import Any

import picows
from picows import WSMsgType

from k2.errors import FrameError
from k2.exchanges.base import ExchangeAdapter, FrameKind
from k2.feed.backoff import Backoff
from k2.feed.recent import RecentTrades
from k2.rejects import Reject

log = logging.getLogger("k2.feed")

#: read coalescing holds a connection that brings fewer frames a second than this (measured over
#: RATE_WINDOW_S): at 10,000 one-trade frames a second a 30 ms hold saved 4 % of the CPU and added
#: ~45 ms to the ingest p99; at 400 batched frames a second it saved 60 % (ADR 0034)
BUSY_FRAMES_PER_S = 2000
RATE_WINDOW_S = 1.0


def describe_network_error(exc: BaseException) -> str:
    """One line for a failed or lost connection: what went wrong, without a traceback (DNS,
    refused, TLS, timeout, HTTP status of the upgrade...)."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name ({exc.strerror or exc})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__

# bound once: the frame path below runs for every frame (up to ~300,000 a second)
_time_ns, _monotonic = time.time_ns, time.monotonic
_TEXT, _BINARY, _TRADES = WSMsgType.TEXT, WSMsgType.BINARY, FrameKind.TRADES


@dataclass
class ConnectionStats:
    exchange: str
    connection: str
    symbols: list[str]
    url: str
    connected: bool = False
    connected_since: float | None = None  # wall clock
    trades: int = 0
    duplicates: int = 0
    frames: int = 0
    rejects: int = 0
    #: times the connection was up and went down (then K2 connected again); attempts that never
    #: got a connection are `connect_failures`, so an outage is not a "reconnect storm"
    reconnects: int = 0
    connect_failures: int = 0
    heartbeats: int = 0
    last_message_at: float | None = None  # wall clock
    last_trade_at: float | None = None
    last_trade_by_symbol: dict[str, float] = field(default_factory=dict)
    trades_by_symbol: dict[str, int] = field(default_factory=dict)
    #: the last trade's price as the venue sent it (a decimal string), for live spreads and
    #: price divergence (k2.monitoring.markets): one dict store per frame, no parsing here
    last_price_by_symbol: dict[str, str] = field(default_factory=dict)
    last_error: str = ""
    last_error_at: float | None = None
    subscribed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    gave_up: bool = False
    ever_connected: bool = False  # up at least once in this run (health: `venues`)

    def error(self, text: str) -> None:
        self.last_error = text[:500]
        self.last_error_at = time.time()


class _Listener(picows.WSListener):
    def __init__(self, conn: "FeedConnection"):
        self.conn = conn
        self.transport: picows.WSTransport | None = None
        self._fragments: list[bytes] = []

    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        conn = self.conn
        conn.last_activity = _monotonic()
        mt = frame.msg_type
        if mt is _TEXT or mt is _BINARY:
            if conn.coalesce_s and not conn._holding:
                conn._hold()
            if frame.fin:
                conn.on_payload(frame.get_payload_as_bytes())
            else:
                self._fragments = [frame.get_payload_as_bytes()]
        elif mt is WSMsgType.CONTINUATION:
            self._fragments.append(frame.get_payload_as_bytes())
            if frame.fin:
                payload, self._fragments = b"".join(self._fragments), []
                conn.on_payload(payload)
        elif mt is WSMsgType.PING:
            transport.send_pong(frame.get_payload_as_bytes())
        elif mt is WSMsgType.CLOSE:
            conn.close_reason = f"server closed: {frame.get_close_code()} {frame.get_close_reason()}".strip()
            transport.send_close(frame.get_close_code())
            transport.disconnect()


class FeedConnection:
    def __init__(self, adapter: ExchangeAdapter, url: str, symbols: list[str], conn_id: str,
                 transport: Any, recent: RecentTrades, backoff: Backoff,
                 stale_after_s: float | None = None, ping_interval_s: float | None = None,
                 max_age_s: float | None = None, read_coalesce_ms: float = 0.0):
        self.adapter, self.url, self.symbols, self.conn_id = adapter, url, symbols, conn_id
        self.sink = transport
        self.recent = recent
        self.backoff = backoff
        self.stale_after_s = stale_after_s or adapter.stale_after_s
        self.ping_interval_s = ping_interval_s or adapter.ping_interval_s
        self.max_age_s = max_age_s if max_age_s is not None else adapter.max_connection_age_s
        self.stats = ConnectionStats(adapter.name, conn_id, list(symbols), url)
        cols = adapter.columns
        self.price_index = cols.index("price") if "price" in cols else cols.index("px")
        self.last_activity = time.monotonic()
        self.close_reason = ""
        self._ws: picows.WSTransport | None = None
        self._rotate = asyncio.Event()
        self._request_id = 0
        self._pending: dict[int, list[str]] = {}
        self._paused = False  # back-pressure: the writer is behind
        #: read coalescing: seconds between reads while frames flow (0 = off); `_holding` while
        #: the socket is left unread for it, until `_release` (a timer on the loop) runs
        self.coalesce_s = read_coalesce_ms / 1000.0
        self._holding = False
        self._release_timer: asyncio.TimerHandle | None = None
        self.holds = 0  # times reading was held for coalescing (tests, benchmarks)
        self._busy = False  # frames came at BUSY_FRAMES_PER_S or more over the last rate window
        self._rate_at = 0.0  # the rate window's start (monotonic) and the frame count then
        self._rate_frames = 0
        #: called with every text frame before parsing (k2 record)
        self.raw_tap = None
        #: the parser of the current connection (per-connection state, e.g. Bitfinex channel ids)
        self._parser = adapter.session()
        #: the exchange's GapTracker, told about every new live trade and every reconnect
        self.gaps = None
        self._sessions = 0

    # -- frames ---------------------------------------------------------------------------------
    def on_payload(self, payload: bytes) -> None:
        stats = self.stats
        stats.frames += 1
        received_us = _time_ns() // 1000
        if self.raw_tap is not None:
            self.raw_tap(payload)
        try:
            parsed = self._parser.parse(payload, received_us)
        except FrameError as exc:
            self._reject(payload, str(exc), received_us)
            return
        except Exception as exc:  # a parser bug: keep the frame, keep the feed running
            log.exception("%s: parser failed on a frame", self.conn_id)
            self._reject(payload, f"parser error: {exc!r:.200}", received_us)
            return
        kind = parsed.kind
        now = received_us / 1e6
        if kind is _TRADES:
            batch = parsed.rows
            si = self.adapter.symbol_index
            # a batched frame (Kraken, Bybit, OKX, snapshots): the bookkeeping below is per frame
            # when its trades are of one symbol -- the usual case, found with one C loop here
            symbol = None
            if len(batch) > 1:
                symbols = set(map(_itemgetter(si), batch))
                if len(symbols) == 1:
                    symbol = symbols.pop()
            rows = self.recent.new_rows(batch, symbol, parsed.key_columns)
            n = len(rows)
            if rows is not batch:
                stats.duplicates += len(batch) - n
            if self.backoff.attempts:  # trades flow: a healthy connection (Gemini sends no acks)
                self.backoff.reset()
            if n:
                self.sink.submit(self.adapter, rows)
                if self.gaps is not None:
                    self.gaps.observe(rows, symbol)
                stats.trades += n
                stats.last_trade_at = now
                pi = self.price_index
                by_symbol, counts = stats.last_trade_by_symbol, stats.trades_by_symbol
                if n == 1:  # one trade per frame (most venues): no loop
                    row = rows[0]
                    symbol = row[si]
                    by_symbol[symbol] = now
                    counts[symbol] = counts.get(symbol, 0) + 1
                    stats.last_price_by_symbol[symbol] = row[pi]
                elif symbol is not None:  # a batch of one symbol: per frame
                    by_symbol[symbol] = now
                    counts[symbol] = counts.get(symbol, 0) + n
                    stats.last_price_by_symbol[symbol] = rows[-1][pi]
                else:
                    prices = stats.last_price_by_symbol
                    for row in rows:
                        by_symbol[row[si]] = now
                        counts[row[si]] = counts.get(row[si], 0) + 1
                        prices[row[si]] = row[pi]
        elif kind is FrameKind.HEARTBEAT or kind is FrameKind.PONG:
            stats.heartbeats += 1
        else:
            self._control(parsed)
        stats.last_message_at = now

    def _reject(self, payload: bytes, reason: str, received_us: int) -> None:
        self.stats.rejects += 1
        self.sink.submit_reject(Reject(self.adapter.name, "ws", reason, payload, received_us, self.conn_id))

    def _control(self, parsed) -> None:
        kind, stats = parsed.kind, self.stats
        if kind is FrameKind.SUBSCRIBED:
            symbols = [parsed.symbol] if parsed.symbol else self._acked(parsed.detail)
            for s in symbols:
                if s and s not in stats.subscribed:
                    stats.subscribed.append(s)
                stats.failed.pop(s, None)
            self.backoff.reset()
        elif kind is FrameKind.SUBSCRIBE_ERROR:
            stats.failed[parsed.symbol] = parsed.detail
            stats.error(f"subscription to {parsed.symbol} failed: {parsed.detail}")
            log.warning("%s: subscription to %s failed: %s", self.conn_id, parsed.symbol, parsed.detail)
        elif kind is FrameKind.EXCHANGE_ERROR:
            stats.error(parsed.detail)
            log.warning("%s: %s", self.conn_id, parsed.detail)
        elif kind is FrameKind.SHUTDOWN:
            log.info("%s: server announced shutdown; opening a new connection", self.conn_id)
            self._rotate.set()
        elif kind is FrameKind.STATUS:
            log.info("%s: %s", self.conn_id, parsed.detail)

    def _acked(self, detail: str) -> list[str]:
        """Binance acks carry the request id: map it back to the symbols it subscribed."""
        try:
            request_id = int(detail.partition("=")[2])
        except ValueError:
            return []
        return self._pending.pop(request_id, [])

    # -- back-pressure and read coalescing ------------------------------------------------------
    def pause(self, paused: bool) -> None:
        """Back-pressure: stop reading (the writer is behind) or read again -- unless a coalescing
        hold is on, whose release then resumes."""
        self._paused = paused
        ws = self._ws
        if ws is None or ws.is_disconnected:
            return
        underlying = ws.underlying_transport
        if paused:
            underlying.pause_reading()
        elif not self._holding:
            underlying.resume_reading()

    def _hold(self) -> None:
        """A read brought frames: stop reading until the next multiple of `coalesce_s` on the
        loop's clock (every connection of the loop then resumes in the same wake-up). The frames
        of the current read are still all handled; the kernel keeps the ones that arrive."""
        ws = self._ws
        if ws is None:
            return
        now, frames = self.last_activity, self.stats.frames
        if now - self._rate_at >= RATE_WINDOW_S:  # (a busy connection asks at every frame)
            self._busy = frames - self._rate_frames >= BUSY_FRAMES_PER_S * (now - self._rate_at)
            self._rate_at, self._rate_frames = now, frames
        if self._busy:
            return
        self._holding = True
        self.holds += 1
        ws.underlying_transport.pause_reading()
        loop = asyncio.get_running_loop()
        step = self.coalesce_s
        self._release_timer = loop.call_at((loop.time() // step + 1.0) * step, self._release, ws)

    def _release(self, ws: picows.WSTransport) -> None:
        self._holding = False
        self._release_timer = None
        if ws is self._ws and not self._paused and not ws.is_disconnected:
            ws.underlying_transport.resume_reading()

    def _end_hold(self) -> None:
        if self._release_timer is not None:
            self._release_timer.cancel()
            self._release_timer = None
        self._holding = False

    # -- lifecycle ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            sessions = self._sessions
            failure = ""
            try:
                await self._session(stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network trouble: one line below, never a traceback
                failure = describe_network_error(exc)
                self.stats.error(failure)
            finally:
                self._mark_disconnected()
            if stop.is_set():
                break
            was_up = self._sessions > sessions
            if was_up:
                self.stats.reconnects += 1
            else:
                self.stats.connect_failures += 1
            if self.backoff.exhausted:
                self.stats.gave_up = True
                log.error("%s: cannot connect to %s: %s; giving up after %d attempts", self.conn_id, self.url,
                          failure or "connection lost", self.backoff.attempts)
                return
            if self._rotate.is_set():
                self._rotate.clear()
                continue  # server shutdown: reconnect at once
            delay = self.backoff.next_delay()
            if was_up:
                log.warning("%s: connection to %s lost%s; reconnecting in %.1f s", self.conn_id, self.url,
                            f" ({failure})" if failure else "", delay)
            else:
                log.warning("%s: cannot connect to %s: %s; retry %d in %.1f s", self.conn_id, self.url,
                            failure or "connection closed at once", self.backoff.attempts, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _connect(self) -> picows.WSTransport:
        ssl_ctx = ssl.create_default_context() if self.url.startswith("wss://") else None
        idle = max(5.0, self.stale_after_s / 2)
        ws, _listener = await picows.ws_connect(
            lambda: _Listener(self), self.url, ssl_context=ssl_ctx, websocket_handshake_timeout=10,
            enable_auto_pong=False, enable_auto_ping=True, auto_ping_idle_timeout=idle,
            auto_ping_reply_timeout=min(10.0, idle), max_frame_size=64 * 1024 * 1024, logger_name="k2.picows",
        )
        return ws

    def _subscribe(self, ws: picows.WSTransport) -> None:
        for request_id, symbols, message in self.adapter.subscribe_requests(self.symbols, self._request_id + 1):
            self._request_id = request_id
            self._pending[request_id] = symbols
            ws.send(WSMsgType.TEXT, message.encode())

    async def _session(self, stop: asyncio.Event) -> None:
        ws = await asyncio.wait_for(self._connect(), 20)
        self._ws = ws
        self.close_reason = ""
        self.stats.connected = True
        self.stats.ever_connected = True
        self.stats.connected_since = time.time()
        self.stats.subscribed = []
        self.last_activity = time.monotonic()
        opened = time.monotonic()
        if self._paused:
            self.pause(True)
        log.info("%s: connected to %s", self.conn_id, self.url)
        self._parser = self.adapter.session()  # a new connection starts with a clean parser state
        self._sessions += 1
        if self.gaps is not None:
            if self._sessions > 1:
                self.gaps.reconnected()
            self.gaps.connected(self.symbols)
        self._subscribe(ws)
        next_ping = time.monotonic() + self.ping_interval_s
        disconnected = asyncio.ensure_future(ws.wait_disconnected())
        try:
            while not disconnected.done():
                await asyncio.wait([disconnected], timeout=0.5)
                if stop.is_set():
                    ws.send_close(picows.WSCloseCode.GOING_AWAY)
                    ws.disconnect()
                    break
                now = time.monotonic()
                if not self._paused and now - self.last_activity > self.stale_after_s:
                    self.stats.error(f"no message for {now - self.last_activity:.0f} s; reconnecting")
                    log.warning("%s: silent for %.0f s, reconnecting", self.conn_id, now - self.last_activity)
                    ws.disconnect()
                    break
                if self._rotate.is_set() or (self.max_age_s and now - opened > self.max_age_s):
                    self._rotate.set()
                    ws.send_close(picows.WSCloseCode.GOING_AWAY)
                    ws.disconnect()
                    break
                ping = getattr(self.adapter, "ping_message", None)
                if ping and now >= next_ping:
                    self._request_id += 1
                    ws.send(WSMsgType.TEXT, ping(self._request_id).encode())
                    next_ping = now + self.ping_interval_s
        finally:
            if not disconnected.done():
                ws.disconnect()
            try:
                await asyncio.wait_for(disconnected, 5)
            except (asyncio.TimeoutError, Exception):
                pass
        if self.close_reason:
            self.stats.error(self.close_reason)

    def _mark_disconnected(self) -> None:
        if self.stats.connected:
            log.info("%s: disconnected%s", self.conn_id, f" ({self.close_reason})" if self.close_reason else "")
        self.stats.connected = False
        self.stats.connected_since = None
        self._ws = None
        self._end_hold()
