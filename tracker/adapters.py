"""Twisted adapters: one TCP and one UDP adapter that serve any registered codec.

The adapters own no protocol knowledge (h2's Twisted adapter is the model): they
feed bytes to the codec's sans-IO session, hand the decoded frames to a
`DeviceChannel`, and write the reply bytes the channel releases.

Per device channel, frames are handled in arrival order:
1. the device is identified (login frame, or an id carried in the frame);
   an unknown device is refused: no reply, the connection closed (TCP) or the
   peer forgotten (UDP);
2. positions go through the pipeline and are submitted to the batch writer;
3. the frame's reply is released only after its data is committed, and replies
   leave in the order their frames arrived (store-then-ack);
4. data that can never be stored (the sanitiser's `Unstorable`, or the
   database's permanent refusal: `tracker.writer.Quarantined`) is kept in the
   quarantine table; the device gets the protocol's refusal (`Frame.refusal`)
   or, where the protocol has none, the connection is closed (HTTP: 400).

Bad input: a `ProtocolError` closes that TCP connection or drops that datagram,
with a log line naming protocol, remote address and frame hex; nothing else is
affected.

Limits (TCP, per listener): the codec's frame size cap; a connection cap
(`max_connections`: the connection beyond it is closed at once); a first-frame
deadline (`first_frame_timeout_s`: a connection that has not produced one complete
decoded frame by then is closed); an idle timeout (`idle_timeout_s`) that only
complete frames reset, not single bytes, so a drip of partial or garbage bytes
cannot hold a connection open.  UDP: at most `max_peers` peers, forgotten after
`idle_timeout_s` of silence.

Log lines about what devices send (bad frame, decoder bug, connection limit, idle
close, no first frame, data before login, refused unknown device) go through the
directory's `RateLimitedLog` (`tracker.lograte`): at most a few per kind and remote
host per minute, then one "... N more suppressed" line.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.internet import defer, protocol
from twisted.internet.interfaces import ITCPTransport, IUDPTransport
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from protocols import Codec, CommandResult, Frame, Login, Position, ProtocolError, Session
from tracker.devices import DeviceDirectory
from tracker.lograte import source_of
from tracker.models import Batch, Device, Origin, QuarantineEntry
from tracker.pipeline import build_batch
from tracker.rules import RuleService
from tracker.sanitize import Unstorable
from tracker.writer import BatchWriter, Quarantined, WriterOverloaded, WriterStopped

log = Logger()

LOG_HEX_BYTES = 256   # at most this much of a bad frame goes into the log


def frame_hex(data: bytes) -> str:
    """Hex of `data` for a log line, truncated to LOG_HEX_BYTES."""
    text = data[:LOG_HEX_BYTES].hex()
    return text + ("..." if len(data) > LOG_HEX_BYTES else "")


def log_allowed(ingest: "Ingest", kind: str, remote: str) -> bool:
    """Whether a log line of `kind` about `remote` ("host:port") may be written now:
    the directory's RateLimitedLog, keyed by protocol, kind and remote host (so one
    protocol's flood does not silence another's lines)."""
    return ingest.directory.limited_log.allow(f"{ingest.codec.name} {kind}", source_of(remote))


class Ingest:
    """What every channel of one protocol shares.

    `rules` (a RuleService) evaluates every frame's data; with `connections` it is
    also told when a device is identified on a channel and when the channel ends
    (deviceOnline / deviceOffline), as is `commands` (a CommandDispatcher), when
    given.  HTTP requests are no lasting channel: their Ingest has neither.
    """

    def __init__(self, codec: Codec, directory: DeviceDirectory, writer: BatchWriter,
                 rules: RuleService, *, options=None, commands=None,
                 connections: bool = True) -> None:
        self.codec = codec
        self.directory = directory
        self.writer = writer
        self.rules = rules
        self.options = options or {}
        self.commands = commands
        self.connections = connections


class DeviceChannel:
    """One device's conversation: a TCP connection or a UDP peer.

    `send(bytes)` writes to the device; `close()` ends the conversation.
    `session` is the codec session (it encodes downlink commands).
    """

    def __init__(self, ingest: Ingest, session: Session, remote: str,
                 send: Callable[[bytes], object], close: Callable[[], object]) -> None:
        self.ingest = ingest
        self.session = session
        self.remote = remote
        self.device: Device | None = None
        self.closed = False
        self.refused: str | None = None    # why the last refused frame was quarantined
        self._send = send
        self._close = close
        self._work: defer.Deferred = defer.succeed(None)   # identification, in order
        self._acks: defer.Deferred = defer.succeed(None)   # replies, in order

    def frames_received(self, frames: list[Frame]) -> None:
        for frame in frames:
            self._work.addCallback(self._process_next, frame)
        self._work.addErrback(self._failed, "processing a frame")

    def _process_next(self, _previous: object, frame: Frame) -> defer.Deferred | None:
        return self._process(frame)

    def send_command(self, data: bytes) -> None:
        """Write a downlink command now (commands need no storage first)."""
        if not self.closed:
            self._send(data)

    def close(self) -> None:
        if not self.closed:
            self._close()
        self.lost()

    def lost(self) -> None:
        """The conversation ended (closed by us or by the peer)."""
        if self.closed:
            return
        self.closed = True
        if self.device is None or not self.ingest.connections:
            return
        if self.ingest.commands is not None:
            self.ingest.commands.disconnected(self.device.id, self)
        self.ingest.rules.disconnected(self.device)

    def flushed(self) -> defer.Deferred:
        """Fires once every reply queued so far has been released (or dropped)."""
        done: defer.Deferred = defer.Deferred()

        def fire(result):
            if not done.called:
                done.callback(None)
            return result

        def after_work(result):
            self._acks.addBoth(fire)
            return result

        self._work.addBoth(after_work)
        return done

    def _process(self, frame: Frame):
        if self.closed:
            return None
        unique_id = _frame_unique_id(frame) or self.session.unique_id
        if unique_id is None:
            if any(isinstance(m, Position) for m in frame.messages):
                if log_allowed(self.ingest, "data before login", self.remote):
                    log.warn("{protocol} data before login from {remote} dropped: {hex}",
                             protocol=self.ingest.codec.name, remote=self.remote,
                             hex=frame_hex(frame.raw))
                return None
            self._release(frame, defer.succeed(None))
            return None
        if self.device is not None and self.device.unique_id == unique_id:
            self._submit(frame)
            return None
        d = self.ingest.directory.identify(unique_id, self.ingest.codec.name, self.remote)
        d.addCallback(self._identified, frame, unique_id)
        return d

    def _identified(self, device: Device | None, frame: Frame, unique_id: str) -> None:
        if device is None:
            if log_allowed(self.ingest, "refused connection", self.remote):
                log.info("{protocol} connection from {remote} refused: unknown device {unique_id}",
                         protocol=self.ingest.codec.name, remote=self.remote, unique_id=unique_id)
            self.close()
            return
        self.device = device
        if self.ingest.connections:
            self.ingest.rules.connected(device)
            if self.ingest.commands is not None:
                self.ingest.commands.connected(device.id, self)
        self._submit(frame)

    def _submit(self, frame: Frame) -> None:
        data = [m for m in frame.messages if isinstance(m, Position | CommandResult)]
        committed: defer.Deferred = defer.succeed(None)
        device = self.device
        assert device is not None, "frames are submitted once the device is identified"
        if data:
            now = self.ingest.directory.now()
            origin = Origin(self.ingest.codec.name, device.unique_id, self.remote, frame.raw)
            try:
                batch = build_batch(device, self.ingest.codec.name, data,
                                    self.ingest.rules, now, origin=origin)
            except Unstorable as error:
                committed = self._quarantine(origin, str(error), now)
            else:
                if batch.positions or batch.events or batch.statuses:
                    committed = self.ingest.writer.submit(batch)
        self._release(frame, committed)

    def _quarantine(self, origin: Origin, reason: str, now) -> defer.Deferred:
        """Store the frame in quarantine (through the writer, in order with the
        device's other data); the Deferred fails with Quarantined once it is."""
        assert self.device is not None
        entry = QuarantineEntry.of(origin, reason, now, device_id=self.device.id)
        d = self.ingest.writer.submit(Batch(quarantine=(entry,), origin=origin))

        def refused(_):
            raise Quarantined(reason)
        return d.addCallback(refused)

    def _release(self, frame: Frame, committed: defer.Deferred) -> None:
        """Send the frame's reply once `committed` fires and earlier replies left;
        its refusal (or close) when the data was quarantined."""
        self._acks.addCallback(lambda _: committed)
        self._acks.addCallbacks(self._write, self._refused, callbackArgs=(frame.reply,),
                                errbackArgs=(frame,))
        self._acks.addErrback(self._failed, "storing data (no ack sent)")

    def _write(self, _, reply: bytes) -> None:
        if reply and not self.closed:
            self._send(reply)

    def _refused(self, failure, frame: Frame) -> None:
        """The frame's data cannot be stored for good: answer as the protocol does
        for a refused message, or close where it has no such answer."""
        failure.trap(Quarantined)
        self.refused = failure.value.reason
        if frame.refusal:
            self._write(None, frame.refusal)
        else:
            self.close()

    def _failed(self, failure, doing: str) -> None:
        """Close without an answer; the log line is rate-limited per source, since
        an overloaded writer fails every device at once."""
        if failure.check(WriterOverloaded, WriterStopped):
            if log_allowed(self.ingest, "not stored", self.remote):
                log.warn("{protocol} device {remote}: not stored ({error}); closing without ack",
                         protocol=self.ingest.codec.name, remote=self.remote, error=failure.value)
        elif log_allowed(self.ingest, "failure", self.remote):
            log.failure("{protocol} device {remote}: failed {doing}; closing", failure,
                        protocol=self.ingest.codec.name, remote=self.remote, doing=doing)
        self.close()


def _frame_unique_id(frame: Frame) -> str | None:
    for message in frame.messages:
        if isinstance(message, Login):
            return message.unique_id
        if getattr(message, "unique_id", None):
            return message.unique_id
    return None


class DeviceStreamProtocol(protocol.Protocol, TimeoutMixin):
    """TCP: one codec session and one device channel per connection.

    Deadlines (the factory's): the first complete frame within
    `first_frame_timeout_s` of connecting; then a complete frame at least every
    `idle_timeout_s` (bytes that complete no frame do not count).
    """

    transport: ITCPTransport   # set by Twisted before connectionMade

    def __init__(self, factory: "DeviceStreamFactory") -> None:
        self.factory = factory
        self.session = factory.ingest.codec.new_session(factory.ingest.options)
        self.channel: DeviceChannel | None = None
        self._first_frame_deadline = None   # the pending delayed call, until a frame came

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        remote = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        ingest = self.factory.ingest
        self.channel = DeviceChannel(ingest, self.session, remote,
                                     self.transport.write, self.transport.loseConnection)
        self.factory.connections += 1
        if self.factory.connections > self.factory.max_connections:
            if log_allowed(ingest, "connection limit", remote):
                log.warn("{protocol}: connection limit {limit} reached, refusing {remote}",
                         protocol=ingest.codec.name, limit=self.factory.max_connections,
                         remote=remote)
            self.channel.close()
            return
        self.setTimeout(self.factory.idle_timeout_s)
        if self.factory.first_frame_timeout_s is not None:
            self._first_frame_deadline = self.callLater(self.factory.first_frame_timeout_s,
                                                        self._no_first_frame)

    @property
    def _open_channel(self) -> DeviceChannel:
        """The channel; connectionMade sets it before any data or deadline."""
        assert self.channel is not None
        return self.channel

    def dataReceived(self, data: bytes) -> None:
        if self._open_channel.closed:
            return
        ingest = self.factory.ingest
        try:
            frames = self.session.receive_data(data, ingest.directory.now())
        except ProtocolError as error:
            if log_allowed(ingest, "bad frame", self._open_channel.remote):
                log.warn("{protocol} bad frame from {remote}, closing: {error}; frame {hex}",
                         protocol=ingest.codec.name, remote=self._open_channel.remote,
                         error=error, hex=frame_hex(error.frame or data))
            self._open_channel.close()
            return
        except Exception:
            if log_allowed(ingest, "decoder bug", self._open_channel.remote):
                log.failure("{protocol} decoder bug on data from {remote}: {hex}",
                            protocol=ingest.codec.name, remote=self._open_channel.remote,
                            hex=frame_hex(data))
            self._open_channel.close()
            return
        if frames:   # only complete frames count as activity
            self.resetTimeout()
            self._cancel_first_frame_deadline()
        self._open_channel.frames_received(frames)

    def _no_first_frame(self) -> None:
        self._first_frame_deadline = None
        if self._open_channel.closed:
            return
        if log_allowed(self.factory.ingest, "no first frame", self._open_channel.remote):
            log.info("{protocol} connection from {remote} sent no complete frame in {timeout} s, "
                     "closing", protocol=self.factory.ingest.codec.name,
                     remote=self._open_channel.remote, timeout=self.factory.first_frame_timeout_s)
        self._open_channel.close()

    def _cancel_first_frame_deadline(self) -> None:
        deadline, self._first_frame_deadline = self._first_frame_deadline, None
        if deadline is not None and deadline.active():
            deadline.cancel()

    def timeoutConnection(self) -> None:
        if log_allowed(self.factory.ingest, "idle close", self._open_channel.remote):
            log.info("{protocol} connection from {remote} idle, closing",
                     protocol=self.factory.ingest.codec.name, remote=self._open_channel.remote)
        self._open_channel.close()

    def connectionLost(self, reason=protocol.connectionDone) -> None:
        self.setTimeout(None)
        self._cancel_first_frame_deadline()
        self.factory.connections -= 1
        if self.channel is not None:
            self.channel.lost()


class DeviceStreamFactory(protocol.ServerFactory):
    """Builds DeviceStreamProtocol for one codec; counts its connections.

    `idle_timeout_s`: longest time between complete frames; `max_connections`:
    open connections at most (the next is closed at once); `first_frame_timeout_s`:
    the first complete frame must come this soon after connecting (None: no
    such deadline, only the idle timeout).
    """

    def __init__(self, ingest: Ingest, reactor, idle_timeout_s: float = 600.0,
                 max_connections: int = 50_000, *,
                 first_frame_timeout_s: float | None = 30.0) -> None:
        self.ingest = ingest
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self.first_frame_timeout_s = first_frame_timeout_s
        self.connections = 0
        self._reactor = reactor

    def buildProtocol(self, addr) -> DeviceStreamProtocol:
        p = DeviceStreamProtocol(self)
        # TimeoutMixin uses the injected clock (callLater is meant to be replaced)
        p.callLater = self._reactor.callLater   # type: ignore[method-assign]
        return p


class DeviceDatagramProtocol(protocol.DatagramProtocol):
    """UDP: one codec session and device channel per remote address.

    Peers silent for `idle_timeout_s` are forgotten; at most `max_peers` are kept
    (the longest silent is forgotten first).
    """

    transport: IUDPTransport   # set by Twisted before the first datagram

    def __init__(self, ingest: Ingest, reactor, idle_timeout_s: float = 600.0,
                 max_peers: int = 50_000) -> None:
        self.ingest = ingest
        self._reactor = reactor
        self._idle_timeout_s = idle_timeout_s
        self._max_peers = max_peers
        self._peers: dict[tuple, tuple[Session, DeviceChannel, float]] = {}

    def datagramReceived(self, data: bytes, addr) -> None:
        session, channel = self._peer(addr)
        try:
            frames = session.receive_datagram(data, self.ingest.directory.now())
        except ProtocolError as error:
            if log_allowed(self.ingest, "bad frame", channel.remote):
                log.warn("{protocol} bad datagram from {remote} dropped: {error}; frame {hex}",
                         protocol=self.ingest.codec.name, remote=channel.remote, error=error,
                         hex=frame_hex(error.frame or data))
            return
        except Exception:
            if log_allowed(self.ingest, "decoder bug", channel.remote):
                log.failure("{protocol} decoder bug on datagram from {remote}: {hex}",
                            protocol=self.ingest.codec.name, remote=channel.remote,
                            hex=frame_hex(data))
            return
        channel.frames_received(frames)

    def _peer(self, addr) -> tuple[Session, DeviceChannel]:
        now = self._reactor.seconds()
        entry = self._peers.pop(addr, None)
        if entry is None or entry[1].closed or now - entry[2] > self._idle_timeout_s:
            self._forget_oldest()
            session = self.ingest.codec.new_session(self.ingest.options)
            channel = DeviceChannel(self.ingest, session, f"{addr[0]}:{addr[1]}",
                                    lambda data: self.transport.write(data, addr),
                                    lambda: self._peers.pop(addr, None))
            entry = (session, channel, now)
        self._peers[addr] = (entry[0], entry[1], now)   # re-insert: dict order = recency
        return entry[0], entry[1]

    def _forget_oldest(self) -> None:
        while len(self._peers) >= self._max_peers:
            _, channel, _ = self._peers.pop(next(iter(self._peers)))
            channel.lost()
