"""The batch writer: batching, ordering, retry until commit, overload refusal."""

import datetime as dt
import threading

import pytest

from tracker.models import Batch, NewPosition
from tracker.writer import BatchWriter, WriterOverloaded, merge_batches

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
            raise ConnectionError("database is down")
        self.batches.append(batch)


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
