"""The batch writer: positions reach the database in batches on one dedicated thread.

Callers on the reactor thread `submit()` a `Batch` and get a Deferred that fires,
on the reactor thread, once that batch is committed.  That Deferred is what releases
a device's acknowledgement (store-then-ack).  The writer thread merges whatever is
queued (up to `max_positions`, waiting at most `max_delay_s` to fill a batch) into
ONE `Store.write_batch` transaction.

When the database fails, the writer keeps the merged batch and retries it with
exponential backoff (0.5 s doubling to 10 s) until it commits: nothing is
acknowledged meanwhile and ingestion resumes by itself when the database returns.
At most `max_pending` positions wait in memory; beyond that `submit` fails at once
with `WriterOverloaded`, so the device gets no ack and keeps its data.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable

from twisted.internet import defer
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from tracker.models import Batch
from tracker.storage.api import Store

log = Logger()

_STOP = object()


class WriterOverloaded(Exception):
    """Too much data waits for the database; refuse new data (no ack)."""


class WriterStopped(Exception):
    """The writer is shut down; no more data is accepted."""


@dataclasses.dataclass(slots=True)
class _Item:
    batch: Batch
    deferred: defer.Deferred
    size: int


class BatchWriter:
    """Commits submitted batches on a dedicated thread; see the module docstring."""

    def __init__(self, store: Store, reactor, *, max_positions: int = 2000,
                 max_delay_s: float = 0.05, max_pending: int = 100_000,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._store = store
        self._reactor = reactor
        self._max_positions = max_positions
        self._max_delay_s = max_delay_s
        self._max_pending = max_pending
        self._sleep = sleep
        self._queue: queue.Queue = queue.Queue()
        self._pending = 0              # positions queued or being written
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.committed_batches = 0
        self.failed_attempts = 0

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
            return defer.fail(WriterStopped("the batch writer is stopped"))
        size = max(1, len(batch.positions) + len(batch.events) + len(batch.statuses))
        with self._lock:
            if self._pending + size > self._max_pending:
                return defer.fail(WriterOverloaded(f"{self._pending} items wait for the database"))
            self._pending += size
        d: defer.Deferred = defer.Deferred()
        self._queue.put(_Item(batch, d, size))
        return d

    def stop(self) -> defer.Deferred:
        """Refuse new data, commit what is queued, end the thread.

        The returned Deferred fires when the thread has ended; it may wait for the
        database to come back when queued data cannot be committed yet.
        """
        self._stopped = True
        if self._thread is None:
            return defer.succeed(None)
        self._queue.put(_STOP)
        return deferToThreadPool(self._reactor, self._reactor.getThreadPool(), self._thread.join)

    # writer thread

    def _run(self) -> None:
        while True:
            items, stop = self._collect()
            if items:
                self._commit(items)
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

    def _commit(self, items: list[_Item]) -> None:
        """Write `items` as one transaction, retrying until it commits."""
        batch = merge_batches(item.batch for item in items)
        delay_s = 0.5
        while True:
            try:
                self._store.write_batch(batch)
                break
            except Exception as error:  # any database failure: keep the data, retry
                self.failed_attempts += 1
                log.warn("database write of {n} positions failed, retrying in {delay}s: {error}",
                         n=len(batch.positions), delay=delay_s, error=error)
                self._sleep(delay_s)
                delay_s = min(delay_s * 2, 10.0)
        self.committed_batches += 1
        with self._lock:
            self._pending -= sum(item.size for item in items)
        self._reactor.callFromThread(_fire_all, [item.deferred for item in items])


def _fire_all(deferreds: list[defer.Deferred]) -> None:
    for d in deferreds:
        d.callback(None)


def merge_batches(batches) -> Batch:
    """One batch holding all of `batches`, in order, with repeated positions
    (same device and fix time: a retransmission) kept once and only the last rule
    state of each device (the newest one supersedes the others)."""
    positions, events, statuses = [], [], []
    states = {}
    seen = set()
    for batch in batches:
        for position in batch.positions:
            key = (position.device_id, position.fix_time)
            if key not in seen:
                seen.add(key)
                positions.append(position)
        events.extend(batch.events)
        statuses.extend(batch.statuses)
        for state in batch.states:
            states.pop(state.device_id, None)   # re-insert: keep the order of the last ones
            states[state.device_id] = state
    return Batch(tuple(positions), tuple(events), tuple(statuses), tuple(states.values()))
