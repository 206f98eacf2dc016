"""The batch writer: batching, ordering, retry until commit, overload refusal,
splitting on permanent refusals (quarantine), bounded shutdown, observers."""

import datetime as dt
import threading
import time

import pytest
from sqlalchemy.exc import DataError, OperationalError
from twisted.python.threadpool import ThreadPool

from tracker.models import Batch, NewPosition, Origin
from tracker.storage import errors
from tracker.writer import BatchWriter, Quarantined, WriterOverloaded, WriterStopped, merge_batches

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


class ImmediateReactor:
    """callFromThread runs the call on the calling thread (unit-test double)."""

    def callFromThread(self, f, *args):
        f(*args)


class RecordingStore:
    """Fails the first `failures` writes, then records batches."""

    def __init__(self, failures=0):
        self.failures = failures
        self.batches = []

    def write_batch(self, batch):
        if self.failures:
            self.failures -= 1
            raise transient_error()
        self.batches.append(batch)

    # the SQL store's classification, as SqlStore gives it
    is_transient = staticmethod(errors.is_transient)
    describe = staticmethod(errors.describe)


def transient_error():
    return OperationalError("INSERT ...", {}, Exception("server closed the connection"))


class PgError(Exception):
    """A driver error with an SQLSTATE, as psycopg2 raises them."""

    def __init__(self, message, pgcode):
        super().__init__(message)
        self.pgcode = pgcode


BAD_DEVICE = 666


class RefusingStore(RecordingStore):
    """Refuses for good every batch holding a position of BAD_DEVICE, as PostgreSQL
    refuses a NUL in jsonb (SQLSTATE 22P05); `transient_first` failures first."""

    def __init__(self, transient_first=0):
        super().__init__(transient_first)
        self.quarantine = []
        self.attempts = 0

    def write_batch(self, batch):
        self.attempts += 1
        if any(p.device_id == BAD_DEVICE for p in batch.positions):
            raise DataError("INSERT ...", {}, PgError(
                "unsupported Unicode escape sequence\nDETAIL: \\u0000 cannot be converted",
                "22P05"))
        super().write_batch(batch)

    def write_quarantine(self, entries):
        self.quarantine.extend(entries)


class Observer:
    def __init__(self):
        self.seen = []

    def batch_committed(self, batch):
        self.seen.append(("committed", batch.positions[0].device_id))

    def batch_refused(self, batch):
        self.seen.append(("refused", batch.positions[0].device_id))


def outcomes(deferreds):
    """Each Deferred's result once fired: None (committed) or the failure's type."""
    results = [None] * len(deferreds)

    def record(result, i):
        results[i] = "ok" if result is None else result.type
    for i, d in enumerate(deferreds):
        d.addBoth(record, i)
    return results


def position(device_id, second):
    return NewPosition(device_id=device_id, protocol="gt06", server_time=T0, device_time=T0,
                       fix_time=T0 + dt.timedelta(seconds=second), valid=True,
                       latitude=1.0, longitude=2.0)


def wait_all(deferreds, timeout=5.0):
    done = threading.Event()
    remaining = [len(deferreds)]

    def one(_):
        remaining[0] -= 1
        if remaining[0] == 0:
            done.set()
    for d in deferreds:
        d.addCallback(one)
    assert done.wait(timeout), "batches were not committed"


def test_submitted_batches_commit_in_order_and_fire_their_deferreds():
    store = RecordingStore()
    writer = BatchWriter(store, ImmediateReactor(), max_delay_s=0.01)
    writer.start()
    deferreds = [writer.submit(Batch(positions=(position(1, i),))) for i in range(50)]
    wait_all(deferreds)
    stored = [p.fix_time for b in store.batches for p in b.positions]
    assert stored == sorted(stored) and len(stored) == 50
    assert len(store.batches) < 50, "positions were not batched"
    assert writer.pending == 0


def test_a_failing_database_is_retried_and_nothing_fires_before_commit():
    store = RecordingStore(failures=2)
    sleeps = []
    writer = BatchWriter(store, ImmediateReactor(), max_delay_s=0.0, sleep=sleeps.append)
    d = writer.submit(Batch(positions=(position(1, 0),)))
    fired = []
    d.addCallback(fired.append)
    assert fired == []
    writer.start()
    wait_all([d])
    assert sleeps == [0.5, 1.0]
    assert writer.failed_attempts == 2
    assert len(store.batches) == 1


def test_overload_is_refused_at_once():
    writer = BatchWriter(RecordingStore(), ImmediateReactor(), max_pending=2)
    writer.submit(Batch(positions=(position(1, 0), position(1, 1))))
    failure = []
    writer.submit(Batch(positions=(position(1, 2),))).addErrback(failure.append)
    assert failure and failure[0].check(WriterOverloaded)


def test_merge_keeps_order_and_drops_retransmitted_positions():
    a = Batch(positions=(position(1, 0), position(2, 0)))
    b = Batch(positions=(position(1, 0), position(1, 1)))
    merged = merge_batches([a, b])
    assert [(p.device_id, p.fix_time.second) for p in merged.positions] == [(1, 0), (2, 0), (1, 1)]


@pytest.mark.parametrize("max_positions", [1, 3])
def test_batches_respect_the_size_cap(max_positions):
    store = RecordingStore()
    writer = BatchWriter(store, ImmediateReactor(), max_positions=max_positions, max_delay_s=0.05)
    deferreds = [writer.submit(Batch(positions=(position(1, i),))) for i in range(7)]
    writer.start()
    wait_all(deferreds)
    assert max(len(b.positions) for b in store.batches) <= max_positions


def test_a_permanent_refusal_stores_every_other_frame_and_quarantines_the_bad_one():
    store = RefusingStore()
    observer = Observer()
    writer = BatchWriter(store, ImmediateReactor(), max_delay_s=0.05)
    writer.observers.append(observer)
    devices = [1, 2, 3, BAD_DEVICE, 5, 6, 7, 8]
    deferreds = [writer.submit(Batch(positions=(position(d, 0),), origin=Origin(
        "osmand", unique_id=f"id{d}", remote_address="192.0.2.1:5", raw=b"GET /?note=a%00b")))
        for d in devices]
    results = outcomes(deferreds)
    writer.start()
    deadline = time.monotonic() + 5
    while None in results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert results == ["ok"] * 3 + [Quarantined] + ["ok"] * 4
    stored = sorted(p.device_id for b in store.batches for p in b.positions)
    assert stored == [1, 2, 3, 5, 6, 7, 8]
    [entry] = store.quarantine
    assert entry.protocol == "osmand" and entry.unique_id == f"id{BAD_DEVICE}"
    assert entry.device_id == BAD_DEVICE and entry.remote_address == "192.0.2.1:5"
    assert bytes.fromhex(entry.frame_hex) == b"GET /?note=a%00b"
    assert "22P05" in entry.error and "unsupported Unicode escape" in entry.error
    assert "INSERT" not in entry.error, "the statement is not copied into the entry"
    assert observer.seen == [("committed", 1), ("committed", 2), ("committed", 3),
                             ("refused", BAD_DEVICE), ("committed", 5), ("committed", 6),
                             ("committed", 7), ("committed", 8)]
    assert writer.quarantined == 1 and writer.pending == 0
    assert store.attempts <= 1 + 2 * 3, "a bad frame costs about log2(n) extra writes"


def test_transient_failures_while_splitting_are_still_retried():
    store = RefusingStore(transient_first=2)
    writer = BatchWriter(store, ImmediateReactor(), max_delay_s=0.05, sleep=lambda s: None)
    deferreds = [writer.submit(Batch(positions=(position(d, 0),))) for d in (1, BAD_DEVICE, 3)]
    results = outcomes(deferreds)
    writer.start()
    deadline = time.monotonic() + 5
    while None in results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert results == ["ok", Quarantined, "ok"]
    assert writer.failed_attempts == 2
    assert store.quarantine[0].protocol == "server", "a batch without origin is the server's"


def test_a_non_database_error_is_permanent_and_does_not_block_the_writer():
    class BuggyStore(RecordingStore):
        quarantine = []

        def write_batch(self, batch):
            if any(p.device_id == BAD_DEVICE for p in batch.positions):
                raise TypeError("Object of type set is not JSON serializable")
            super().write_batch(batch)

        def write_quarantine(self, entries):
            self.quarantine.extend(entries)

    store = BuggyStore()
    writer = BatchWriter(store, ImmediateReactor(), max_delay_s=0.0)
    writer.start()
    bad = writer.submit(Batch(positions=(position(BAD_DEVICE, 0),)))
    good = writer.submit(Batch(positions=(position(1, 0),)))
    results = outcomes([bad, good])
    deadline = time.monotonic() + 5
    while None in results and time.monotonic() < deadline:
        time.sleep(0.01)
    assert results == [Quarantined, "ok"]
    assert "TypeError" in store.quarantine[0].error


def test_shutdown_ends_in_bounded_time_while_the_database_keeps_failing():
    store = RecordingStore(failures=10**9)
    observer = Observer()
    pool = ThreadPool(minthreads=1, maxthreads=1)
    pool.start()
    reactor = ImmediateReactor()
    reactor.getThreadPool = lambda: pool
    writer = BatchWriter(store, reactor, max_delay_s=0.0, stop_timeout_s=0.3)
    writer.observers.append(observer)
    writer.start()
    results = outcomes([writer.submit(Batch(positions=(position(1, 0),)))])
    time.sleep(0.2)                        # the writer is in its backoff now
    started = time.monotonic()
    stopped = outcomes([writer.stop()])
    try:
        while None in stopped and time.monotonic() - started < 5:
            time.sleep(0.01)
    finally:
        pool.stop()
    assert stopped == ["ok"], "stop() did not finish"
    assert time.monotonic() - started < 3.0
    assert results == [WriterStopped]
    assert observer.seen == [("refused", 1)]
    assert writer.dropped == 1 and store.batches == []
    assert writer.submit(Batch(positions=(position(2, 0),))).addErrback(
        lambda f: f.type).result is WriterStopped


def test_refused_submissions_are_told_to_the_observers():
    observer = Observer()
    writer = BatchWriter(RecordingStore(), ImmediateReactor(), max_pending=1)
    writer.observers.append(observer)
    writer.submit(Batch(positions=(position(1, 0),)))
    writer.submit(Batch(positions=(position(2, 0),))).addErrback(lambda f: None)
    assert observer.seen == [("refused", 2)]
