"""Device identification: unique id (IMEI) -> device row, and the unknown policy.

Lookups run on the database thread pool and are cached for `cache_s` seconds, so a
connected device costs no query per frame.  A unique id that is not registered is
refused (policy "refuse": the caller closes the connection without an ack) or
registered (policy "register"); either way the attempt is recorded with time,
protocol and remote address for `tracker device unknown`.
"""

from __future__ import annotations

import datetime as dt

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from tracker.models import Device, UnknownDeviceAttempt
from tracker.storage.api import DuplicateError, Store

log = Logger()


class DeviceDirectory:
    """Resolves unique ids to devices for the adapters; see the module docstring."""

    def __init__(self, store: Store, reactor, threadpool, unknown_policy: str = "refuse",
                 cache_s: float = 300.0) -> None:
        self._store = store
        self._reactor = reactor
        self._threadpool = threadpool
        self._register_unknown = unknown_policy == "register"
        self._cache_s = cache_s
        self._cache: dict[str, tuple[Device, float]] = {}

    def now(self) -> dt.datetime:
        """The reactor's time as an aware UTC datetime (tests drive it with Clock)."""
        return dt.datetime.fromtimestamp(self._reactor.seconds(), dt.UTC)

    def identify(self, unique_id: str, protocol: str, remote: str) -> defer.Deferred:
        """Deferred[Device | None]: the device, or None when it is refused."""
        cached = self._cache.get(unique_id)
        if cached is not None and cached[1] > self._reactor.seconds():
            return defer.succeed(cached[0])
        attempt = UnknownDeviceAttempt(unique_id, protocol, remote, self.now())
        d = deferToThreadPool(self._reactor, self._threadpool, self._lookup, attempt)
        d.addCallback(self._remember, unique_id)
        return d

    def _lookup(self, attempt: UnknownDeviceAttempt) -> Device | None:
        """Database thread: find, or record and maybe register, the device."""
        device = self._store.device_by_unique_id(attempt.unique_id)
        if device is not None:
            return device
        self._store.record_unknown_device(attempt)
        if not self._register_unknown:
            log.info("refused unknown device {unique_id} ({protocol}) from {remote}",
                     unique_id=attempt.unique_id, protocol=attempt.protocol,
                     remote=attempt.remote_address)
            return None
        try:
            device = self._store.add_device(attempt.unique_id, attempt.unique_id)
        except DuplicateError:  # registered meanwhile by another connection
            device = self._store.device_by_unique_id(attempt.unique_id)
        log.info("registered unknown device {unique_id} ({protocol}) from {remote}",
                 unique_id=attempt.unique_id, protocol=attempt.protocol,
                 remote=attempt.remote_address)
        return device

    def _remember(self, device: Device | None, unique_id: str) -> Device | None:
        if device is not None and not device.disabled:
            self._cache[unique_id] = (device, self._reactor.seconds() + self._cache_s)
            return device
        return None
