"""The batch writer: positions reach the database in batches on one dedicated thread.

Callers on the reactor thread `submit()` a `Batch` and get a Deferred that fires,
on the reactor thread, once that batch is committed.  That Deferred is what releases
a device's acknowledgement (store-then-ack).  The writer thread merges whatever is
queued (up to `max_positions`, waiting at most `max_delay_s` to fill a batch) into
ONE `Store.write_batch` transaction.

Failures (the store's `is_transient` tells them apart):

- transient (connection lost, database down, lock timeout, serialisation failure):
  the writer keeps the merged batch and retries it with exponential backoff (0.5 s
  doubling to 10 s) until it commits; nothing is acknowledged meanwhile and
  ingestion resumes by itself when the database returns;
- permanent (the database refuses a value: bad text, out-of-range number, broken
  constraint; or our own code cannot serialise a row): retrying would block every
  device forever, so the merged batch is split in halves, each written on its own,
  down to the one submitted batch (one device frame) that fails alone.  That one is
  moved to the `quarantine` table (its origin: protocol, device, raw frame; and the
  database's message) and its Deferred fails with `Quarantined`: the adapter sends
  the protocol's refusal or closes.  Every other batch commits and is acknowledged.
  A bad frame costs about log2(batches merged) extra transactions.

Observers (`observers`, e.g. the rule service) hear on the reactor thread, per
submitted batch and in submission order, `batch_committed(batch)` or
`batch_refused(batch)` (quarantined, overloaded, or dropped at shutdown): the rule
service adopts a device's new rule state only once it is committed.

At most `max_pending` positions wait in memory; beyond that `submit` fails at once
with `WriterOverloaded`, so the device gets no ack and keeps its data.  `stop()`
commits what is queued but gives a database that keeps failing only
`stop_timeout_s`: then the rest is dropped unacknowledged (devices resend it) and
the thread ends, so shutdown takes bounded time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from tracker.models import Batch, NewEvent, NewPosition, Origin, QuarantineEntry, RuleState, StatusUpdate
from tracker.ports import Store

log = Logger()

_STOP = object()
SERVER_ORIGIN = Origin(protocol="server")   # batches the server made itself (rule ticks)


class WriterOverloaded(Exception):
    """Too much data waits for the database; refuse new data (no ack)."""


class WriterStopped(Exception):
    """The writer is shut down; no more data is accepted."""


class Quarantined(Exception):
    """The data cannot be stored for good; it was moved to the quarantine table.
    `reason` is what the database (or the sanitiser) said."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BatchObserver(Protocol):
    def batch_committed(self, batch: Batch) -> None: ...

    def batch_refused(self, batch: Batch) -> None: ...


@dataclasses.dataclass(slots=True)
class _Item:
    batch: Batch
    deferred: defer.Deferred
    size: int


class BatchWriter:
    """Commits submitted batches on a dedicated thread; see the module docstring."""

    def __init__(self, store: Store, reactor, *, max_positions: int = 2000,
                 max_delay_s: float = 0.05, max_pending: int = 100_000,
                 stop_timeout_s: float = 30.0,
                 sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._store = store
        self._reactor = reactor
        self._max_positions = max_positions
        self._max_delay_s = max_delay_s
        self._max_pending = max_pending
        self._stop_timeout_s = stop_timeout_s
        self._wake = threading.Event()          # set by stop(): cut a backoff short
        self._sleep = sleep if sleep is not None else self._pause
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0              # positions queued or being written
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._stop_deadline: float | None = None
        self.observers: list[BatchObserver] = []
        self.committed_batches = 0
        self.failed_attempts = 0       # transient failures (each retried)
        self.quarantined = 0           # frames quarantined (sanitiser's or database's refusal)
        self.dropped = 0               # submitted batches dropped at shutdown

    @property
    def pending(self) -> int:
        """Positions (and events/statuses, counted one each) not yet committed."""
        return self._pending

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="batch-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: Batch) -> defer.Deferred:
        """Queue `batch`; the Deferred fires (reactor thread) once it is committed."""
        if self._stopped:
            return self._refuse(batch, WriterStopped("the batch writer is stopped"))
        size = max(1, len(batch.positions) + len(batch.events) + len(batch.statuses))
        with self._lock:
            if self._pending + size > self._max_pending:
                overloaded = WriterOverloaded(f"{self._pending} items wait for the database")
                return self._refuse(batch, overloaded)
            self._pending += size
        d: defer.Deferred = defer.Deferred()
        self._queue.put(_Item(batch, d, size))
        return d

    def _refuse(self, batch: Batch, error: Exception) -> defer.Deferred:
        for observer in self.observers:
            observer.batch_refused(batch)
        return defer.fail(error)

    def stop(self) -> defer.Deferred:
        """Refuse new data, commit what is queued, end the thread.

        The returned Deferred fires when the thread has ended: at once when the
        queue is written, at most about `stop_timeout_s` later while the database
        keeps failing.
        """
        self._stopped = True
        if self._thread is None:
            return defer.succeed(None)
        self._stop_deadline = time.monotonic() + self._stop_timeout_s
        self._queue.put(_STOP)
        self._wake.set()
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._thread.join)

    # writer thread

    def _run(self) -> None:
        while True:
            items, stop = self._collect()
            if items:
                self._store_items(items)
            if stop:
                return

    def _collect(self) -> tuple[list[_Item], bool]:
        """Block for the first item, then gather more for up to max_delay_s."""
        first = self._queue.get()
        if first is _STOP:
            return [], True
        items = [first]
        positions = len(first.batch.positions)
        deadline = time.monotonic() + self._max_delay_s
        while positions < self._max_positions:
            timeout = deadline - time.monotonic()
            try:
                item = self._queue.get(timeout=timeout) if timeout > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return items, True
            items.append(item)
            positions += len(item.batch.positions)
        return items, False

    def _store_items(self, items: list[_Item]) -> None:
        """Write `items`, splitting groups that fail permanently (module docstring);
        settle every item, in order, on the reactor thread."""
        groups = [items]
        while groups:
            group = groups.pop(0)
            batch = merge_batches(item.batch for item in group)
            error = self._write(functools.partial(self._store.write_batch, batch),
                                len(batch.positions))
            if error is None:
                self.committed_batches += 1
                self.quarantined += len(batch.quarantine)    # refused by the sanitiser
                self._settle(group, None)
            elif isinstance(error, WriterStopped):
                self.dropped += len(group)
                self._settle(group, error)
            elif len(group) > 1:
                log.warn("database refused a batch of {n} frames for good ({error}); "
                         "splitting it to find the bad one", n=len(group),
                         error=self._store.describe(error))
                half = len(group) // 2
                groups[0:0] = [group[:half], group[half:]]
            else:
                self._settle(group, self._quarantine(group[0], error))

    def _write(self, write: Callable[[], None], positions: int) -> Exception | None:
        """Run `write` until it commits (None), fails for good (that error), or the
        stop deadline passes while it keeps failing (WriterStopped)."""
        delay_s = 0.5
        while True:
            try:
                write()
                return None
            except Exception as error:
                if not self._store.is_transient(error):
                    return error
                self.failed_attempts += 1
                if self._stop_deadline is not None and time.monotonic() >= self._stop_deadline:
                    log.error("database still failing at shutdown; {n} positions dropped "
                              "unacknowledged (devices resend them): {error}",
                              n=positions, error=self._store.describe(error))
                    return WriterStopped("the database kept failing during shutdown")
                log.warn("database write of {n} positions failed, retrying in {delay}s: {error}",
                         n=positions, delay=delay_s, error=self._store.describe(error))
                wait_s = delay_s
                if self._stop_deadline is not None:
                    wait_s = max(0.0, min(wait_s, self._stop_deadline - time.monotonic()))
                self._sleep(wait_s)
                delay_s = min(delay_s * 2, 10.0)

    def _pause(self, seconds: float) -> None:
        """Backoff: until stop() is called, which cuts it short once; then plainly."""
        if self._stop_deadline is None:
            self._wake.wait(seconds)
        else:
            time.sleep(seconds)

    def _quarantine(self, item: _Item, error: Exception) -> Exception:
        """Move the one submitted batch that fails alone to the quarantine table."""
        batch = item.batch
        records: tuple[NewPosition | NewEvent | StatusUpdate, ...] = (
            *batch.positions, *batch.events, *batch.statuses)
        device_ids = {record.device_id for record in records}
        reason = self._store.describe(error)
        entry = QuarantineEntry.of(batch.origin or SERVER_ORIGIN, reason, self._clock(),
                                   device_id=min(device_ids) if device_ids else None)
        stored = self._write(lambda: self._store.write_quarantine([entry]), 0)
        if stored is not None:
            log.error("could not quarantine refused data ({error}); dropped: {entry}",
                      error=self._store.describe(stored), entry=entry)
        else:
            self.quarantined += 1
        log.warn("{protocol} data of device {device} quarantined: {reason}",
                 protocol=entry.protocol, device=entry.unique_id or entry.device_id,
                 reason=reason)
        return Quarantined(reason)

    def _settle(self, items: list[_Item], error: Exception | None) -> None:
        with self._lock:
            self._pending -= sum(item.size for item in items)
        self._reactor.callFromThread(self._fire, items, error)

    def _fire(self, items: list[_Item], error: Exception | None) -> None:
        """Reactor thread: tell the observers, then fire the items' Deferreds."""
        for item in items:
            for observer in self.observers:
                try:
                    if error is None:
                        observer.batch_committed(item.batch)
                    else:
                        observer.batch_refused(item.batch)
                except Exception:
                    log.failure("batch observer {observer} failed", observer=observer)
        for item in items:
            if error is None:
                item.deferred.callback(None)
            else:
                item.deferred.errback(error)


def merge_batches(batches: Iterable[Batch]) -> Batch:
    """One batch holding all of `batches`, in order, with repeated positions
    (same device and fix time: a retransmission) kept once and only the last rule
    state of each device (the newest one supersedes the others)."""
    positions: list[NewPosition] = []
    events: list[NewEvent] = []
    statuses: list[StatusUpdate] = []
    quarantine: list[QuarantineEntry] = []
    states: dict[int, RuleState] = {}
    seen: set[tuple[int, dt.datetime]] = set()
    for batch in batches:
        for position in batch.positions:
            key = (position.device_id, position.fix_time)
            if key not in seen:
                seen.add(key)
                positions.append(position)
        events.extend(batch.events)
        statuses.extend(batch.statuses)
        quarantine.extend(batch.quarantine)
        for state in batch.states:
            states.pop(state.device_id, None)   # re-insert: keep the order of the last ones
            states[state.device_id] = state
    return Batch(tuple(positions), tuple(events), tuple(statuses), tuple(states.values()),
                 tuple(quarantine))
