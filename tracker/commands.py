"""Downlink commands: queued in the database, sent to connected devices.

A command is stored "queued" (by the API or `tracker command send`, possibly in
another process) and sent when its device is connected: at once when the device
is connected to this server, else when it next identifies itself; a poll every
`poll_interval_s` also picks up commands queued by other processes.  Sending
encodes the command with the device's codec session; a protocol that cannot carry
it marks it "failed" with the reason.  The device's answer arrives as a
`CommandResult` message, stored as a `commandResult` event that marks the oldest
"sent" command of that device "answered".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from protocols import Command, UnsupportedCommand
from tracker.models import StoredCommand
from tracker.ports import Store

log = Logger()


class CommandDispatcher:
    """Tracks which device is connected where and sends it its queued commands."""

    def __init__(self, store: Store, reactor, threadpool, poll_interval_s: float = 2.0) -> None:
        self._store = store
        self._reactor = reactor
        self._threadpool = threadpool
        self._poll_interval_s = poll_interval_s
        self._channels: dict[int, Any] = {}     # device id -> its latest DeviceChannel
        self._in_flight: set[int] = set()       # command ids being sent
        self._arrived: set[int] = set()         # connected since the last read began
        self._reading_arrivals = False
        self._poll = task.LoopingCall(self.poll)
        self._poll.clock = reactor

    def start(self) -> None:
        self._poll.start(self._poll_interval_s, now=False).addErrback(
            lambda f: log.failure("command poll stopped", f))

    def stop(self) -> None:
        if self._poll.running:
            self._poll.stop()

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._reactor.seconds(), dt.UTC)

    def _call(self, fn, *args) -> defer.Deferred:
        return deferToThreadPool(self._reactor, self._threadpool, fn, *args)

    # connections

    def connected(self, device_id: int, channel) -> None:
        """`channel` now speaks for the device: send what waits for it.

        Devices that connect while the previous read of queued commands is running
        are read together when it ends, so a reconnect storm (a cell tower back up,
        a flood of logins) costs one query per round trip on the database pool, not
        one per device, and the API's queries are not queued behind them."""
        self._channels[device_id] = channel
        self._arrived.add(device_id)
        if not self._reading_arrivals:
            self._read_arrivals()

    def _read_arrivals(self) -> None:
        device_ids, self._arrived = sorted(self._arrived), set()
        self._reading_arrivals = True

        def done(_: object) -> None:
            self._reading_arrivals = False
            if self._arrived:
                self._read_arrivals()
        self.deliver(device_ids).addBoth(done)

    def disconnected(self, device_id: int, channel) -> None:
        if self._channels.get(device_id) is channel:
            del self._channels[device_id]

    def channel(self, device_id: int):
        """The device's open channel, or None."""
        channel = self._channels.get(device_id)
        return channel if channel is not None and not channel.closed else None

    def command_types(self, device_id: int) -> frozenset[str] | None:
        """What the connected device's protocol can carry; None when not connected."""
        channel = self.channel(device_id)
        return channel.ingest.codec.command_types if channel is not None else None

    # sending

    @defer.inlineCallbacks
    def queue(self, device_id: int, type: str, attributes: Mapping[str, Any],
              user_id: int | None = None):
        """Store a command and try to send it now; Deferred[StoredCommand] in its
        state after the attempt ("sent", "queued" or "failed")."""
        command = yield self._call(self._store.queue_command, device_id, type, attributes,
                                   self.now(), user_id)
        yield self._send([command])
        commands = yield self._call(self._store.commands, None, device_id, 20)
        return next((c for c in commands if c.id == command.id), command)

    def poll(self) -> defer.Deferred:
        """Send what other processes queued for connected devices."""
        connected = [d for d in self._channels if self.channel(d) is not None]
        return self.deliver(connected) if connected else defer.succeed(None)

    def deliver(self, device_ids: Sequence[int]) -> defer.Deferred:
        d = self._call(self._store.queued_commands, list(device_ids))
        d.addCallback(self._send)
        d.addErrback(lambda f: log.failure("could not read queued commands", f))
        return d

    @defer.inlineCallbacks
    def _send(self, commands: Sequence[StoredCommand]):
        for command in commands:
            channel = self.channel(command.device_id)
            if channel is None or command.id in self._in_flight:
                continue
            self._in_flight.add(command.id)
            try:
                yield self._send_one(channel, command)
            finally:
                self._in_flight.discard(command.id)

    def _send_one(self, channel, command: StoredCommand) -> defer.Deferred:
        try:
            data = channel.session.encode_command(
                Command(command.type, command.attributes, command.id), self.now())
        except UnsupportedCommand as error:
            log.info("command {id} ({type}) for device {device} failed: {error}",
                     id=command.id, type=command.type, device=command.device_id, error=error)
            return self._call(self._store.mark_command, command.id, "failed", self.now(), str(error))
        except Exception:   # an encoder bug: this command fails, the queue goes on
            log.failure("command {id} ({type}) for device {device}: encoder error",
                        id=command.id, type=command.type, device=command.device_id)
            return self._call(self._store.mark_command, command.id, "failed", self.now(),
                              "the protocol could not encode this command")
        channel.send_command(data)
        log.info("sent command {id} ({type}) to device {device}",
                 id=command.id, type=command.type, device=command.device_id)
        return self._call(self._store.mark_command, command.id, "sent", self.now())
