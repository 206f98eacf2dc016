"""Device identification: unique id (IMEI) -> device row, and the unknown policy.

Lookups run on the database thread pool and are cached for `cache_s` seconds, so a
connected device costs no query per frame.  A unique id that is not registered is
refused (policy "refuse": the caller closes the connection without an ack) or
registered (policy "register").

Unknown identifiers are what a flood is made of (random IMEIs, over UDP from
spoofed sources), so they are bounded at every step:

- impossible ids: an empty id, one over `MAX_UNIQUE_ID_CHARS` or with a NUL or a
  lone surrogate (no database stores it) is refused without a lookup, as an
  unknown id (rate limits, bookkeeping with the text escaped, negative cache);
- negative cache: an id refused (unknown, or a disabled device) is refused again
  for `refused_cache_s` seconds without any database work (at most
  `REFUSED_MAX` ids are remembered, the oldest forgotten first).  A device
  registered meanwhile is accepted once that time is over;
- rate limits: token buckets of `unknown_rate_per_source` new unknown ids per
  second per source (the remote host without port; `REMOTE_SOURCES_MAX` sources
  tracked) and `unknown_rate_global` in all, each holding at most one second's
  worth (and at least one token).  A lookup that finds the id unknown takes a
  token from both; while either is empty, an id that was never resolved to a
  device since start is refused without a lookup (counted in
  `rate_limited_unknown`).  Ids resolved to a device before are always looked up,
  so a flood does not lock out known devices whose cache entry expired; a device
  never seen since start may be refused during a flood and retries;
- bookkeeping: each looked-up unknown id (refused or registered) is kept in
  memory (at most `unknown_max_rows` pending, oldest dropped) and written in one
  transaction every `bookkeeping_interval_s` seconds on a thread of its own, not
  the database pool the API uses; the same transaction trims the table to the
  newest `unknown_max_rows` rows.  A failed write is logged and dropped
  (bookkeeping is best effort).  `start()` starts that thread and loop,
  `stop()` writes what is pending and stops it.

Counters for health output (ints, since start): `refused_unknown` (refusals of
unknown ids: looked up or from the negative cache), `rate_limited_unknown`
(refused without a lookup by a rate limit), `recorded_unknown` (attempts written
to the table).  `limited_log` is the rate-limited log (`tracker.lograte`) shared by
every device adapter using this directory.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from tracker.lograte import RateLimitedLog, source_of
from tracker.models import Device, UnknownDeviceAttempt
from tracker.ports import DuplicateError, Store
from tracker.sanitize import safe_text

log = Logger()

REFUSED_MAX = 100_000         # refused ids remembered at most
REMOTE_SOURCES_MAX = 10_000   # per-source rate buckets kept at most (least recently used dropped)
MAX_UNIQUE_ID_CHARS = 128     # the devices.unique_id column


class TokenBucket:
    """`rate_per_s` tokens per second, holding at most max(1, rate_per_s).

    `take` may drive it below zero (down to minus its capacity): lookups already
    running when it ran empty are still charged, and the debt delays the next.
    """

    __slots__ = ("rate_per_s", "capacity", "tokens", "stamp")

    def __init__(self, rate_per_s: float, now: float) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = max(1.0, rate_per_s)
        self.tokens = self.capacity
        self.stamp = now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate_per_s)
        self.stamp = max(self.stamp, now)

    def available(self, now: float) -> bool:
        """At least one whole token is there."""
        self._refill(now)
        return self.tokens >= 1.0

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens = max(-self.capacity, self.tokens - 1.0)


class DeviceDirectory:
    """Resolves unique ids to devices for the adapters; see the module docstring.

    `threadpool` is the database pool for lookups and registrations;
    `bookkeeping_threadpool` (tests) replaces the directory's own one-thread pool
    for writing unknown-device attempts.
    """

    def __init__(self, store: Store, reactor, threadpool, unknown_policy: str = "refuse",
                 cache_s: float = 300.0, *, refused_cache_s: float = 60.0,
                 unknown_rate_per_source: float = 5.0, unknown_rate_global: float = 50.0,
                 unknown_max_rows: int = 10_000, bookkeeping_interval_s: float = 1.0,
                 bookkeeping_threadpool=None) -> None:
        self._store = store
        self._reactor = reactor
        self._threadpool = threadpool
        self._register_unknown = unknown_policy == "register"
        self._cache_s = cache_s
        # Entries stay after they expire: an id in here was a device at some point.
        self._cache: dict[str, tuple[Device, float]] = {}
        self._refused_cache_s = refused_cache_s
        # id -> (refused until, whether it was unknown); oldest first
        self._refused: OrderedDict[str, tuple[float, bool]] = OrderedDict()
        self._rate_per_source = unknown_rate_per_source
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()
        self._global = TokenBucket(unknown_rate_global, reactor.seconds())
        self._max_rows = unknown_max_rows
        self._interval_s = bookkeeping_interval_s
        self._own_pool = bookkeeping_threadpool is None
        self._bookkeeping = (ThreadPool(minthreads=1, maxthreads=1, name="unknown-devices")
                             if bookkeeping_threadpool is None else bookkeeping_threadpool)
        self._pending: list[UnknownDeviceAttempt] = []
        self._writing: defer.Deferred | None = None
        self._loop: task.LoopingCall | None = None
        self.limited_log = RateLimitedLog(reactor)
        self.refused_unknown = 0
        self.rate_limited_unknown = 0
        self.recorded_unknown = 0
        self.dropped_unknown = 0      # pending attempts dropped unwritten (over the bound)

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        """Start the bookkeeping thread and its write loop (call from the reactor)."""
        if self._loop is not None:
            return
        if self._own_pool and not self._bookkeeping.started:
            self._bookkeeping.start()
        self._loop = task.LoopingCall(self.flush)
        self._loop.clock = self._reactor
        self._loop.start(self._interval_s, now=False).addErrback(
            lambda failure: log.failure("unknown-device bookkeeping loop failed", failure))

    def stop(self) -> defer.Deferred:
        """Write what is pending and stop the thread; fires when done.  Safe to call
        from the reactor, twice, or without `start()` (pending attempts are then
        written only if the bookkeeping pool was given by the caller)."""
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        if loop is None and self._own_pool:
            return defer.succeed(None)
        d = defer.maybeDeferred(self.flush)

        def stopped(result):
            if self._own_pool and self._bookkeeping.started:
                self._bookkeeping.stop()
            self.limited_log.flush()
            return result
        return d.addBoth(stopped)

    def flush(self) -> defer.Deferred:
        """Write the pending attempts now (one transaction, table trimmed); fires
        when written.  While a write runs, the next waits for it."""
        if self._writing is not None:
            after: defer.Deferred = defer.Deferred()
            self._writing.addBoth(lambda _: after.callback(None))
            return after.addCallback(lambda _: self.flush())
        if not self._pending:
            return defer.succeed(None)
        batch, self._pending = self._pending, []
        self._writing = deferToThreadPool(self._reactor, self._bookkeeping,
                                          self._store.record_unknown_devices, batch,
                                          self._max_rows)
        self._writing.addCallbacks(self._written, self._write_failed,
                                   callbackArgs=(len(batch),), errbackArgs=(len(batch),))
        return self._writing

    def _written(self, _, count: int) -> None:
        self._writing = None
        self.recorded_unknown += count

    def _write_failed(self, failure, count: int) -> None:
        self._writing = None
        self.dropped_unknown += count
        if self.limited_log.allow("unknown-device bookkeeping failed", "database"):
            log.failure("unknown devices: {count} attempts not recorded", failure, count=count)

    # -- identification -----------------------------------------------------------

    def now(self) -> dt.datetime:
        """The reactor's time as an aware UTC datetime (tests drive it with Clock)."""
        return dt.datetime.fromtimestamp(self._reactor.seconds(), dt.UTC)

    def identify(self, unique_id: str, protocol: str, remote: str) -> defer.Deferred:
        """Deferred[Device | None]: the device, or None when it is refused.

        `remote` is "host:port"; the host is the source for the rate limit.
        """
        now = self._reactor.seconds()
        cached = self._cache.get(unique_id)
        if cached is not None and cached[1] > now:
            return defer.succeed(cached[0])
        refused = self._refused.get(unique_id)
        if refused is not None:
            if refused[0] > now:
                self.refused_unknown += refused[1]
                return defer.succeed(None)
            del self._refused[unique_id]
        source = source_of(remote)
        if cached is None and not self._may_look_up(source, now):
            self.rate_limited_unknown += 1
            if self.limited_log.allow("unknown device rate limit", source):
                log.warn("{protocol} unknown device {unique_id} from {remote} refused unlooked: "
                         "over the rate of new unknown devices", protocol=protocol,
                         unique_id=unique_id, remote=remote)
            return defer.succeed(None)
        attempt = UnknownDeviceAttempt(unique_id, protocol, remote, self.now())
        if not unique_id or safe_text(unique_id, MAX_UNIQUE_ID_CHARS) != unique_id:
            # No device can have this id (nor be registered with it): no lookup.
            return defer.succeed(self._resolved((None, True), attempt, source))
        d = deferToThreadPool(self._reactor, self._threadpool, self._lookup, unique_id)
        d.addCallback(self._resolved, attempt, source)
        return d

    def _may_look_up(self, source: str, now: float) -> bool:
        bucket = self._sources.pop(source, None)
        if bucket is None:
            while len(self._sources) >= REMOTE_SOURCES_MAX:
                self._sources.popitem(last=False)
            bucket = TokenBucket(self._rate_per_source, now)
        self._sources[source] = bucket   # (re)inserted last: most recently used
        return bucket.available(now) and self._global.available(now)

    def _lookup(self, unique_id: str) -> tuple[Device | None, bool]:
        """Database thread: (the device or None, whether the id was unknown); with
        the "register" policy an unknown id is registered."""
        device = self._store.device_by_unique_id(unique_id)
        if device is not None or not self._register_unknown:
            return device, device is None
        try:
            device = self._store.add_device(unique_id, unique_id)
        except DuplicateError:  # registered meanwhile by another connection
            device = self._store.device_by_unique_id(unique_id)
        return device, True

    def _resolved(self, result: tuple[Device | None, bool], attempt: UnknownDeviceAttempt,
                  source: str) -> Device | None:
        device, unknown = result
        now = self._reactor.seconds()
        if unknown:
            bucket = self._sources.get(source)
            if bucket is not None:   # (None: dropped meanwhile as least recently used)
                bucket.take(now)
            self._global.take(now)
            self._record(attempt)
            fields = dict(unique_id=attempt.unique_id, protocol=attempt.protocol,
                          remote=attempt.remote_address)
            if device is None:
                self.refused_unknown += 1
                if self.limited_log.allow("refused unknown device", source):
                    log.info("refused unknown device {unique_id} ({protocol}) from {remote}",
                             **fields)
            elif self.limited_log.allow("registered unknown device", source):
                log.info("registered unknown device {unique_id} ({protocol}) from {remote}",
                         **fields)
        if device is not None and not device.disabled:
            self._cache[attempt.unique_id] = (device, now + self._cache_s)
            return device
        self._refuse(attempt.unique_id, now, unknown)
        return None

    def _refuse(self, unique_id: str, now: float, unknown: bool) -> None:
        """Remember a refusal for refused_cache_s (the oldest entries go first)."""
        self._refused.pop(unique_id, None)
        while self._refused and (len(self._refused) >= REFUSED_MAX
                                 or next(iter(self._refused.values()))[0] <= now):
            self._refused.popitem(last=False)
        self._refused[unique_id] = (now + self._refused_cache_s, unknown)

    def _record(self, attempt: UnknownDeviceAttempt) -> None:
        self._pending.append(attempt)
        excess = len(self._pending) - self._max_rows
        if excess > 0:   # the table keeps the newest max_rows anyway
            del self._pending[:excess]
            self.dropped_unknown += excess
