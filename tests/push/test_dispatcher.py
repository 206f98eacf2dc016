"""The notification dispatcher on a real SQLite store, with in-process notifiers.

(The gateways themselves are tested against their fakes in test_<channel>.py; here
a scripted notifier stands in for them, which is what the dispatcher sees.)
"""

from __future__ import annotations

import datetime as dt

import pytest

from tracker.models import Batch, NewEvent, NewPosition
from tracker.push.base import FAILED, INVALID_TOKEN, RETRY, SENT, SendResult
from tracker.push.dispatcher import Dispatcher
from tracker.storage import SqlStore

T0 = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


class ScriptedNotifier:
    """Answers from `script` (then SENT) and records what it was asked to send."""

    def __init__(self, channel="fcm", *script):
        self.channel = channel
        self.script = list(script)
        self.sent = []

    def send(self, target, message):
        self.sent.append((target, message))
        return self.script.pop(0) if self.script else SendResult(SENT)

    def close(self):
        pass


@pytest.fixture
def store(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def world(store):
    device = store.add_device("860000000000001", "Van 1")
    user = store.add_user("fleet@example.com", "pw12345678")
    return store, device, user


def sos(store, device, minutes=0.0, alarm="sos", event_type="alarm"):
    """Store a position with an alarm event, as the pipeline does."""
    time = T0 + dt.timedelta(minutes=minutes)
    store.write_batch(Batch(
        positions=(NewPosition(device_id=device.id, protocol="gt06", server_time=time,
                               device_time=time, fix_time=time, valid=True, latitude=52.52,
                               longitude=13.405),),
        events=(NewEvent(device.id, event_type, time, {"alarm": alarm}, time),)))


def dispatcher(store, clock, *notifiers, **options):
    return Dispatcher(store, reactor=None, threadpool=None,
                      notifiers={n.channel: n for n in notifiers}, clock=clock,
                      random_fraction=lambda: 1.0, public_url="https://fleet.example.com",
                      **options)


def test_an_alarm_reaches_each_token_of_a_subscribed_user_once(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "fcm-token-1", T0)
    store.add_push_token(user.id, "huawei", "android", "hw-token-1", T0)
    fcm, huawei = ScriptedNotifier("fcm"), ScriptedNotifier("huawei")
    clock = Clock()
    sos(store, device)
    run = dispatcher(store, clock, fcm, huawei)
    assert run.run_cycle() == (1, 2)
    assert run.run_cycle() == (0, 0)                   # nothing twice
    (target, message), = fcm.sent
    assert target.token == "fcm-token-1" and huawei.sent[0][0].token == "hw-token-1"
    assert message.critical and message.title == "Van 1: SOS alarm"
    assert "2026-11-23 12:00 (UTC)" in message.body and "52.52000, 13.40500" in message.body
    assert message.data["url"] == f"https://fleet.example.com/devices/{device.id}"
    assert {d.status for d in store.deliveries_of(user.id)} == {"sent"}


def test_a_retry_waits_with_backoff_then_succeeds_and_every_attempt_is_stored(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    fcm = ScriptedNotifier("fcm", SendResult(RETRY, "HTTP 503"))
    clock = Clock()
    sos(store, device)
    run = dispatcher(store, clock, fcm, backoff_min_s=5)
    run.run_cycle()
    (delivery,) = store.deliveries_of(user.id)
    assert (delivery.status, delivery.attempts, delivery.last_error) == ("pending", 1, "HTTP 503")
    clock.advance(4)
    run.run_cycle()
    assert len(fcm.sent) == 1                          # not before the backoff
    clock.advance(1)
    run.run_cycle()
    assert len(fcm.sent) == 2
    (delivery,) = store.deliveries_of(user.id)
    attempts = store.delivery_attempts([delivery.id])[delivery.id]
    assert [(a["status"], a["error"]) for a in attempts] == [("retry", "HTTP 503"), ("sent", None)]
    assert all(a["token_hash"] != "tok" and len(a["token_hash"]) == 64 for a in attempts)


def test_retry_after_is_honoured_and_pauses_the_channel(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    fcm = ScriptedNotifier("fcm", SendResult(RETRY, "QUOTA_EXCEEDED", retry_after_s=120))
    clock = Clock()
    sos(store, device)
    run = dispatcher(store, clock, fcm, backoff_min_s=1)
    run.run_cycle()
    sos(store, device, minutes=5, alarm="powerCut")    # another event on the same channel
    clock.advance(60)
    run.run_cycle()
    assert len(fcm.sent) == 1                          # the channel is paused
    clock.advance(61)
    run.run_cycle()
    assert len(fcm.sent) == 3


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    run = Dispatcher(None, None, None, {}, backoff_min_s=5, backoff_max_s=60,
                     random_fraction=lambda: 0.0)
    assert [run.backoff_s(n, None) for n in range(6)] == [2.5, 5, 10, 20, 30, 30]
    assert run.backoff_s(0, 100) == 100


def test_a_permanent_failure_is_not_retried_and_attempts_are_capped(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    store.add_push_token(user.id, "jpush", "android", "jtok", T0)
    fcm = ScriptedNotifier("fcm", SendResult(FAILED, "INVALID_ARGUMENT"))
    jpush = ScriptedNotifier("jpush", *[SendResult(RETRY, "HTTP 500")] * 5)
    clock = Clock()
    sos(store, device)
    run = dispatcher(store, clock, fcm, jpush, max_attempts=3, backoff_min_s=1)
    for _ in range(6):
        run.run_cycle()
        clock.advance(10)
    statuses = {d.channel: (d.status, d.attempts) for d in store.deliveries_of(user.id)}
    assert statuses == {"fcm": ("failed", 1), "jpush": ("failed", 3)}


def test_a_dead_token_is_pruned_and_gets_nothing_more(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "dead", T0)
    fcm = ScriptedNotifier("fcm", SendResult(INVALID_TOKEN, "UNREGISTERED"))
    clock = Clock()
    sos(store, device)
    run = dispatcher(store, clock, fcm)
    run.run_cycle()
    (token,) = store.push_tokens(user.id)
    assert token.disabled is not None and token.disabled_reason == "UNREGISTERED"
    sos(store, device, minutes=10, alarm="powerCut")
    run.run_cycle()
    assert len(fcm.sent) == 1
    store.add_push_token(user.id, "fcm", "android", "dead", T0)   # the app registers it again
    assert store.push_tokens(user.id)[0].disabled is None


def test_pending_notifications_survive_a_crash(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    clock = Clock()
    sos(store, device)
    down = ScriptedNotifier("fcm", SendResult(RETRY, "connection refused"))
    dispatcher(store, clock, down, backoff_min_s=1).run_cycle()   # then the process dies
    sos(store, device, minutes=1, alarm="powerCut")               # committed, never expanded
    clock.advance(5)
    fcm = ScriptedNotifier("fcm")
    assert dispatcher(store, clock, fcm).run_cycle() == (1, 2)    # a new process
    assert sorted(m.data["alarm"] for _, m in fcm.sent) == ["powerCut", "sos"]


def test_preferences_choose_types_devices_and_channels(world):
    store, device, user = world
    other = store.add_device("860000000000002", "Van 2")
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    store.add_push_token(user.id, "email", "web", "me@example.com", T0)
    store.set_preferences(user.id, {"types": ["alarm", "geofenceEnter"], "alarms": ["sos"],
                                    "devices": [device.id], "channels": ["email"]})
    fcm, email = ScriptedNotifier("fcm"), ScriptedNotifier("email")
    clock = Clock()
    sos(store, device)                                   # wanted: on e-mail only
    sos(store, device, minutes=1, alarm="lowBattery")   # not an alarm asked for
    sos(store, other, minutes=2)                        # not a device asked for
    dispatcher(store, clock, fcm, email).run_cycle()
    assert fcm.sent == [] and [m.data["alarm"] for _, m in email.sent] == ["sos"]


def test_quiet_hours_hold_back_all_but_critical_alarms(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    store.set_preferences(user.id, {"types": ["alarm"], "timezone": "Asia/Shanghai",
                                    "language": "zh", "quietHours": {"from": "19:00", "to": "07:00"}})
    fcm = ScriptedNotifier("fcm")
    clock = Clock()                                     # 12:00 UTC is 20:00 in Shanghai
    sos(store, device, alarm="lowBattery")
    sos(store, device, minutes=1, alarm="sos")
    dispatcher(store, clock, fcm).run_cycle()
    (_, message), = fcm.sent
    assert message.data["alarm"] == "sos" and message.title == "Van 1：SOS求救报警"
    assert "2026-11-23 20:01 (Asia/Shanghai)" in message.body
    assert {d.status for d in store.deliveries_of(user.id)} == {"sent", "suppressed"}


def test_an_alarm_storm_is_coalesced(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    fcm = ScriptedNotifier("fcm")
    clock = Clock()
    run = dispatcher(store, clock, fcm, coalesce_s=60)
    for second in range(0, 50, 10):                      # five SOS within 40 s
        sos(store, device, minutes=second / 60)
        run.run_cycle()
    sos(store, device, minutes=5)                        # five minutes later: a new one
    run.run_cycle()
    assert len(fcm.sent) == 2
    assert [d.status for d in store.deliveries_of(user.id)].count("coalesced") == 4


def test_a_cycle_expands_one_batch_and_then_sends_what_is_due(world):
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    fcm = ScriptedNotifier("fcm")
    for minute in range(5):
        sos(store, device, minutes=minute, alarm=f"a{minute}")
    run = dispatcher(store, Clock(), fcm, batch=2)
    assert run.run_cycle() == (2, 2)
    assert run.run_cycle() == (2, 2)
    assert run.run_cycle() == (1, 1)
    assert len(fcm.sent) == 5


def test_other_organisations_users_get_nothing(world):
    store, device, _ = world
    org = store.add_organisation("Other")
    stranger = store.add_user("other@example.com", "pw12345678", organisation_id=org)
    store.add_push_token(stranger.id, "fcm", "android", "tok", T0)
    fcm = ScriptedNotifier("fcm")
    sos(store, device)
    dispatcher(store, Clock(), fcm).run_cycle()
    assert fcm.sent == [] and store.pending_outbox() == []


def test_a_full_batch_polls_again_at_once(world):
    from twisted.internet.task import Clock as ReactorClock

    from tests.web.harness import SyncThreadPool
    store, device, user = world
    store.add_push_token(user.id, "fcm", "android", "tok", T0)
    for minute in range(3):
        sos(store, device, minutes=minute, alarm=f"a{minute}")
    fcm = ScriptedNotifier("fcm")
    reactor = ReactorClock()
    reactor.callFromThread = lambda f, *a, **k: f(*a, **k)
    run = Dispatcher(store, reactor, SyncThreadPool(), {"fcm": fcm}, batch=2, clock=Clock())
    run.poll()
    assert len(fcm.sent) == 2
    reactor.advance(0)                  # the follow-up cycle, without waiting for poll_s
    assert len(fcm.sent) == 3
