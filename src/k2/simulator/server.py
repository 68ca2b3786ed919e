"""What every simulated venue shares: one picows server per venue serving WebSocket and REST on
the same port, connections that batch their writes, subscriptions, fan-out, housekeeping.

Throughput comes from writing once per connection per engine tick: frames are framed here
(server frames are unmasked, so a WebSocket frame is a 2- or 4-byte header plus the payload) and
joined into one `write()` on the socket. One `send()` per frame costs a syscall each and caps a
loopback connection near 170k frames/s of pure kernel time; batched, the generator is the limit.
Control frames from picows itself (pongs, close) go to the same transport, so order holds.

A venue module subclasses `Venue` and supplies the wire: `encode()` trades into frames, answer
messages in `on_message()`, greet in `on_connect()`, serve `http()`. The engine clock, faults and
records belong to the `Simulator` that owns the venues.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable

import msgspec
import picows
from picows import WSListener, WSMsgType

from k2.exchanges.status import STATUS_ENDPOINTS
from k2.simulator.engine import Fill, Market
from k2.simulator.faults import malformed
from k2.simulator.record import Recorder
from k2.simulator.status import status_answer

_STATUS_PATHS = {name: path for name, (path, _parse) in STATUS_ENDPOINTS.items()}

if TYPE_CHECKING:
    from k2.simulator.runner import Simulator

log = logging.getLogger("k2.simulator")
#: picows logs every connection at INFO; a simulator serving reconnect storms keeps that quiet
_PICOWS_LOG = logging.getLogger("k2.simulator.picows")
_PICOWS_LOG.setLevel(logging.WARNING)

#: frame headers for payloads shorter than 4 KiB (7-bit length up to 125, then 16-bit)
_HEADERS = [bytes((0x81, n)) for n in range(126)] + [b"\x81\x7e" + n.to_bytes(2, "big") for n in range(126, 4096)]


def ws_frame(payload: bytes) -> bytes:
    """`payload` as one unmasked, final WebSocket text frame (RFC 6455 §5.2)."""
    n = len(payload)
    if n < 4096:
        return _HEADERS[n] + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


encode_json = msgspec.json.encode
decode_json = msgspec.json.Decoder().decode


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class VenueStats:
    trades_generated: int = 0
    trade_frames_generated: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    connections: int = 0  # open now
    connections_total: int = 0
    drops: int = 0  # cut by --drop-every
    slow_drops: int = 0  # cut because the client did not read fast enough
    expired: int = 0  # closed at the maximum connection age
    malformed_sent: int = 0
    errors_sent: int = 0
    heartbeats_sent: int = 0
    pings_sent: int = 0
    rest_refused: int = 0  # REST requests answered 503 by --rest-down
    withheld: int = 0  # trade frames kept off the WebSocket by --withhold


class Connection(WSListener):
    """One client. Outgoing frames wait in `pending` until `flush()` writes them in one go."""

    #: sent on an idle connection after `heartbeat_s` (None: this protocol has no heartbeats)
    heartbeat: bytes | None = None
    #: which sent-file its frames are recorded in ("" = <exchange>.sent.jsonl)
    record_stream = ""

    def __init__(self, venue: "Venue", path: str):
        super().__init__()
        self.venue = venue
        self.path = path
        self.transport: Any = None
        self.pending: list[bytes] = []
        self.payloads: list[bytes] | None = [] if venue.recorder else None
        self.subs: set[str] = set()  # native symbols whose trades this connection receives
        now = time.monotonic()
        self.connected_at = now
        self.last_sent = now
        self.deferred: list[bytes] | None = [] if venue.sim.config.faults.slow_start else None
        self.ping_sent_at = 0.0  # an unanswered protocol ping, 0 = none
        self.next_ping = now + venue.sim.config.ping_interval_s
        self.closed = False

    # -- picows callbacks ---------------------------------------------------------------------
    def on_ws_connected(self, transport: picows.WSTransport) -> None:
        self.transport = transport
        self.venue.connected(self)
        if self.deferred is not None:
            self.venue.loop.call_later(self.venue.sim.config.faults.slow_start, self.release)
        else:
            self.venue.on_connect(self)
            self.flush()

    def on_ws_frame(self, transport: picows.WSTransport, frame: picows.WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            message = frame.get_payload_as_bytes()
            if self.venue.rate_limited(self, time.monotonic()):
                log.info("%s: client sent too many messages, disconnecting it", self.venue.name)
                self.cut()
                return
            if self.deferred is not None:
                self.deferred.append(message)
                return
            self.venue.on_message(self, message)
            self.flush()
        elif kind is WSMsgType.PONG:
            self.ping_sent_at = 0.0
        elif kind is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: picows.WSTransport) -> None:
        self.closed = True
        self.venue.disconnected(self)

    def pause_writing(self) -> None:  # the buffer limit in flush() handles slow readers
        pass

    def resume_writing(self) -> None:
        pass

    # -- slow start ---------------------------------------------------------------------------
    def release(self) -> None:
        """End of the slow start: greet, then answer what arrived meanwhile."""
        deferred, self.deferred = self.deferred or [], None
        if self.closed:
            return
        self.venue.on_connect(self)
        for message in deferred:
            self.venue.on_message(self, message)
        self.flush()

    @property
    def muted(self) -> bool:
        return self.deferred is not None

    # -- sending ------------------------------------------------------------------------------
    def send(self, payload: bytes) -> None:
        """Queue one text frame (flushed at the end of the tick or the request)."""
        self.pending.append(ws_frame(payload))
        if self.payloads is not None:
            self.payloads.append(payload)

    def send_many(self, framed: list[bytes], payloads: list[bytes]) -> None:
        """Queue pre-framed trade frames, with extra malformed ones when that fault is on."""
        ratio = self.venue.malformed_ratio
        if ratio:
            rng = self.venue.sim.fault_rng
            for f, p in zip(framed, payloads):
                self.send_framed(f, p)
                if rng.random() < ratio:
                    self.send(malformed(p, rng))
                    self.venue.stats.malformed_sent += 1
            return
        self.pending.extend(framed)
        if self.payloads is not None:
            self.payloads.extend(payloads)

    def send_framed(self, framed: bytes, payload: bytes) -> None:
        self.pending.append(framed)
        if self.payloads is not None:
            self.payloads.append(payload)

    def flush(self) -> None:
        if not self.pending or self.deferred is not None or self.closed:
            return
        pending, self.pending = self.pending, []
        payloads = self.payloads
        if payloads is not None:
            self.payloads = []
        if self.venue.sim.silent:
            return  # a stalled venue: the frames are lost, as on a real stall
        data = b"".join(pending)
        underlying = self.transport.underlying_transport
        underlying.write(data)
        stats = self.venue.stats
        stats.frames_sent += len(pending)
        stats.bytes_sent += len(data)
        self.last_sent = time.monotonic()
        if payloads:
            self.venue.recorder.sent(payloads, self.record_stream)
        if underlying.get_write_buffer_size() > self.venue.sim.config.max_buffer_bytes:
            stats.slow_drops += 1
            log.warning("%s: client %s reads too slowly, disconnecting it", self.venue.name, self.path)
            self.cut(graceful=False)

    def cut(self, graceful: bool = True) -> None:
        """Close the TCP connection without a WebSocket close frame (graceful: after what was
        written). Nothing more is queued or written on it."""
        if not self.closed:
            self.closed = True
            self.pending.clear()
            self.venue.disconnected(self)  # again from on_ws_disconnected: harmless
            self.transport.disconnect(graceful)

    def ping(self, now: float) -> None:
        self.transport.send_ping(str(int(time.time() * 1000)).encode())
        self.venue.stats.pings_sent += 1
        if not self.ping_sent_at:
            self.ping_sent_at = now
        self.next_ping = now + self.venue.sim.config.ping_interval_s


class Venue:
    """One simulated exchange endpoint. Subclasses set `name` and the wire methods."""

    name: str = ""
    #: the venue sends protocol pings every `ping_interval_s` and expects pongs
    sends_pings: bool = False
    #: connections are closed after the configured maximum age
    ages_out: bool = False

    def __init__(self, sim: "Simulator", port: int, markets: dict[str, Market]):
        self.sim = sim
        self.loop = sim.loop
        self.requested_port = port
        self.port = port
        self.markets = markets
        self.connections: set[Connection] = set()
        self.subscribers: dict[str, set[Connection]] = {}
        self.stats = VenueStats()
        self.recorder: Recorder | None = Recorder(sim.config.record_dir, self.name) if sim.config.record_dir else None
        self.malformed_ratio = sim.config.faults.malformed_ratio
        self.server: Any = None

    # -- server -------------------------------------------------------------------------------
    async def start(self, host: str) -> int:
        self.server = await picows.ws_create_server(
            self._route, host, self.requested_port, logger_name=_PICOWS_LOG,
            max_frame_size=1 << 20, enable_auto_pong=True,
        )
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    def _route(self, request: picows.WSUpgradeRequest):
        target = request.path.decode("latin-1")
        parts = urllib.parse.urlsplit(target)
        query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
        if request.headers.get("Upgrade", "").lower() != "websocket":
            try:
                if self.sim.rest_down():
                    self.stats.rest_refused += 1
                    answer = 503, {"error": "service unavailable (k2 simulate --rest-down)"}
                elif parts.path == _STATUS_PATHS.get(self.name):  # the venue's real status endpoint
                    phase = self.sim.maintenance_phase(self.name)
                    answer = status_answer(self.name, phase, *(self.sim.maintenance_window_ms(self.name)
                                                               if phase != "none" else (0, 0)))
                else:
                    answer = self.http(parts.path, query)
            except Exception:  # a bug here must not kill the server; the client sees a 500
                log.exception("%s: REST %s failed", self.name, target)
                answer = 500, b'{"error":"internal"}'
            status, body = answer[0], answer[1]
            body = body if isinstance(body, bytes) else encode_json(body)
            headers = {"Content-Type": "application/json", **(answer[2] if len(answer) > 2 else {})}
            if status == 200:
                response = picows.WSUpgradeResponse.create_ok_response(body, headers)
            else:
                response = picows.WSUpgradeResponse.create_error_response(status, body, headers)
            return picows.WSUpgradeResponseWithListener(response, None)
        return self.listener(parts.path, query)

    async def close(self) -> None:
        for conn in list(self.connections):
            conn.cut()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        if self.recorder:
            self.recorder.close()

    # -- what a venue module provides -----------------------------------------------------------
    def urls(self, address: str) -> dict[str, str]:
        """What a client sets as the venue's URLs ("ws", "rest", ...) for `host:port`."""
        raise NotImplementedError

    def listener(self, path: str, query: dict[str, list[str]]) -> Connection | None:
        """The connection for a WebSocket upgrade to `path`, or None for 404."""
        raise NotImplementedError

    def http(self, path: str, query: dict[str, list[str]]) -> tuple:
        """(status, JSON-able body or bytes[, extra headers]) for a plain GET."""
        raise NotImplementedError

    def on_connect(self, conn: Connection) -> None:
        """Greet a new connection (after any slow start)."""

    def on_message(self, conn: Connection, message: bytes) -> None:
        raise NotImplementedError

    def encode(self, market: Market, fills: list[Fill], now: int) -> list[bytes]:
        """Frames for one market's fills of one tick (`now` in µs); also remembers them in
        `market.history`."""
        raise NotImplementedError

    def error_event(self, conn: Connection) -> bytes:
        raise NotImplementedError

    def rate_limited(self, conn: Connection, now: float) -> bool:
        """True when `conn` exceeded the venue's incoming message limit (it is then closed)."""
        return False

    def shutdown_event(self, conn: Connection) -> bytes | None:
        return None

    def deliver(self, market: Market, payloads: list[bytes], subscribers: Iterable[Connection]) -> None:
        framed = [ws_frame(p) for p in payloads]
        for conn in subscribers:
            conn.send_many(framed, payloads)

    # -- subscriptions ------------------------------------------------------------------------
    def subscribe(self, conn: Connection, native: str) -> bool:
        """Route `native`'s trades to `conn`; False if the venue has no such market."""
        if not self.sim.activate(self.name, native):
            return False
        conn.subs.add(native)
        self.subscribers.setdefault(native, set()).add(conn)
        return True

    def unsubscribe(self, conn: Connection, native: str) -> None:
        conn.subs.discard(native)
        subs = self.subscribers.get(native)
        if subs:
            subs.discard(conn)

    def connected(self, conn: Connection) -> None:
        self.connections.add(conn)
        self.stats.connections = len(self.connections)
        self.stats.connections_total += 1

    def disconnected(self, conn: Connection) -> None:
        for native in list(conn.subs):
            self.unsubscribe(conn, native)
        self.connections.discard(conn)
        self.stats.connections = len(self.connections)

    # -- driven by the simulator ----------------------------------------------------------------
    def publish(self, fills: dict[Market, list[Fill]], now: int) -> None:
        """One engine tick of this venue's trades: encode, record, fan out (not yet written)."""
        stats = self.stats
        for market, market_fills in fills.items():
            stats.trades_generated += len(market_fills)
            self.publish_frames(market, self.encode(market, market_fills, now))

    def replay(self, native: str, frame: bytes) -> None:
        """Send a recorded trade frame as if it had just happened."""
        market = self.markets[native]
        self.stats.trades_generated += self.remember_replayed(market, frame)
        self.publish_frames(market, [frame])

    def remember_replayed(self, market: Market, frame: bytes) -> int:
        """Keep a replayed frame's trades in `market.history`; return how many it holds."""
        raise NotImplementedError

    def publish_frames(self, market: Market, payloads: list[bytes]) -> None:
        self.stats.trade_frames_generated += len(payloads)
        if self.recorder:
            self.recorder.generated(payloads)
        if self.sim.withholding:  # made and kept for REST and candles, never sent
            self.stats.withheld += len(payloads)
            return
        subs = self.subscribers.get(market.native)
        if subs:
            self.deliver(market, payloads, subs)

    def flush_all(self) -> None:
        for conn in list(self.connections):  # a flush may cut a slow client
            if conn.pending:
                conn.flush()

    def housekeeping(self, now: float) -> None:
        """Heartbeats, protocol pings, pong timeouts and connection age, once per tick."""
        if self.sim.silent:
            return
        config = self.sim.config
        for conn in list(self.connections):
            if conn.muted or conn.closed:
                continue
            if self.ages_out and now - conn.connected_at >= config.max_connection_age_s:
                self.expire(conn)
                continue
            if conn.heartbeat is not None and now - conn.last_sent >= config.heartbeat_s:
                conn.send(conn.heartbeat)
                self.stats.heartbeats_sent += 1
                conn.flush()
            if self.sends_pings:
                if conn.ping_sent_at and now - conn.ping_sent_at > config.pong_timeout_s:
                    log.info("%s: no pong for %.0f s, disconnecting", self.name, config.pong_timeout_s)
                    conn.cut()
                elif now >= conn.next_ping:
                    conn.ping(now)

    def expire(self, conn: Connection) -> None:
        event = self.shutdown_event(conn)
        if event:
            conn.send(event)
            conn.flush()
        self.stats.expired += 1
        conn.cut()

    def drop_all(self) -> int:
        n = 0
        for conn in list(self.connections):
            if not conn.closed:
                conn.flush()
                conn.cut()
                n += 1
        self.stats.drops += n
        return n

    def send_error_event(self) -> None:
        for conn in self.connections:
            if not conn.muted and not conn.closed:
                conn.send(self.error_event(conn))
                self.stats.errors_sent += 1
