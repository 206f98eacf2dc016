"""Test doubles for the adapters: a line codec, a reactor, a thread pool, a store.

The line codec speaks a toy protocol so the adapter tests exercise the adapters,
not GT06: "LOGIN <id>", "POS <seconds> <lat> <lon> [alarm]", "HB", one per line;
"BAD" and lines over 64 bytes raise ProtocolError.  Every frame's reply is
"ACK <line>\n".
"""

from __future__ import annotations

import datetime as dt

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from protocols import Frame, Login, Position, ProtocolError
from tracker.models import Device, Organisation, RuleConfig
from tracker.rules import RuleService

EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class LineSession:
    def __init__(self):
        self.unique_id = None
        self._buffer = b""

    def receive_data(self, data, now):
        self._buffer += data
        if len(self._buffer) > 64 and b"\n" not in self._buffer:
            raise ProtocolError("line too long", self._buffer)
        *lines, self._buffer = self._buffer.split(b"\n")
        return [self.decode_frame(line, now) for line in lines]

    def receive_datagram(self, data, now):
        return [self.decode_frame(line, now) for line in data.split(b"\n") if line]

    def decode_frame(self, frame, now):
        words = frame.decode("ascii", "replace").split()
        reply = b"ACK " + frame + b"\n"
        if not words or words[0] == "BAD" or len(frame) > 64:
            raise ProtocolError("bad line", frame)
        if words[0] == "LOGIN":
            self.unique_id = words[1]
            return Frame((Login(words[1]),), reply, frame)
        if words[0] == "POS":
            attributes = {"alarm": words[4]} if len(words) > 4 else {}
            position = Position(fix_time=EPOCH + dt.timedelta(seconds=int(words[1])), valid=True,
                                latitude=float(words[2]), longitude=float(words[3]),
                                attributes=attributes)
            return Frame((position,), reply, frame)
        if words[0] == "HB":
            status = Position(fix_time=now, valid=False, latitude=0, longitude=0, outdated=True)
            return Frame((status,), reply, frame)
        return Frame((), reply, frame)


class LineCodec:
    name = "line"
    default_listen = ("tcp:0",)
    max_frame_bytes = 64

    def new_session(self, options=None):
        return LineSession()


class FakeReactor(Clock):
    """A Clock whose callFromThread runs the call at once."""

    def callFromThread(self, f, *args, **kwargs):
        f(*args, **kwargs)


class SyncThreadPool:
    """Runs 'threaded' calls at once, on the calling thread."""

    def callInThreadWithCallback(self, on_result, f, *args, **kwargs):
        try:
            result = f(*args, **kwargs)
        except Exception:
            on_result(False, Failure())
        else:
            on_result(True, result)


class MemoryDevices:
    """The device part of the Store interface, in memory."""

    def __init__(self, *unique_ids):
        self.devices = {}
        self.unknown = []
        for unique_id in unique_ids:
            self.add_device(unique_id, unique_id)

    def device_by_unique_id(self, unique_id):
        return self.devices.get(unique_id)

    def add_device(self, unique_id, name, organisation_id=None):
        device = Device(len(self.devices) + 1, unique_id, name, 1)
        self.devices[unique_id] = device
        return device

    def record_unknown_device(self, attempt):
        self.unknown.append(attempt)


class QueryHttpSession:
    """A toy HTTP protocol: GET /?id=<id>&t=<seconds>&lat=..&lon=.. is one fix;
    a request without an id gives nothing; a bad number is a ProtocolError."""

    def __init__(self):
        self.unique_id = None

    def decode_frame(self, request, now):
        import urllib.parse
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(request.url).query))
        if "id" not in query:
            return Frame((), b"", request.url.encode())
        if not query.get("lat", "0").replace(".", "").isdigit():
            raise ProtocolError("bad lat", request.url.encode())
        position = Position(fix_time=EPOCH + dt.timedelta(seconds=int(query.get("t", 0))),
                            valid=True, latitude=float(query.get("lat", 0)),
                            longitude=float(query.get("lon", 0)), unique_id=query["id"])
        return Frame((position,), b"", request.url.encode())


class QueryHttpCodec:
    name = "query"
    default_listen = ("http:0",)
    max_frame_bytes = 1024
    command_types = frozenset()

    def new_session(self, options=None):
        return QueryHttpSession()


class ManualWriter:
    """Commits only when the test says so."""

    def __init__(self):
        self.submitted = []

    def submit(self, batch):
        d = defer.Deferred()
        self.submitted.append((batch, d))
        return d

    def commit(self, index):
        self.submitted[index][1].callback(None)


def rule_config(devices=(), **fields) -> RuleConfig:
    """A configuration with one organisation and nothing configured unless given."""
    values = dict(revision=0, organisations=(Organisation(1, "default"),), devices=tuple(devices),
                  groups=(), geofences=(), calendars=(), rules=(), device_geofences=(),
                  group_geofences=())
    values.update(fields)
    return RuleConfig(**values)


def rule_service(reactor=None, config: RuleConfig | None = None, states=None) -> RuleService:
    """A RuleService on an in-memory configuration (no store, no loops started)."""
    service = RuleService(store=None, reactor=reactor, threadpool=None)
    service.use(config or rule_config(), states or {})
    return service
