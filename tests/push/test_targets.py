"""Push targets in the store and the dispatcher: never moved between users, and
unconfirmed ones get nothing.

The victim's alarms go through the real dispatcher and the real Huawei notifier to
the fake Push Kit (tests/push/fake_huawei.py), so "still receives" means a request
reached the gateway with the victim's token; e-mail through the real EmailNotifier
to the fake SMTP server.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from sqlalchemy import select, update

from tests.push.fake_huawei import FakeHuawei
from tests.push.fake_smtp import FakeSmtp
from tests.push.test_dispatcher import T0, Clock, ScriptedNotifier, dispatcher, sos
from tracker.ports import NotFoundError
from tracker.push import confirm
from tracker.push.confirm import ConfirmationRefused, PushTargetTaken
from tracker.push.dispatcher import Dispatcher
from tracker.push.email import EmailNotifier
from tracker.push.huawei import HuaweiNotifier
from tracker.storage import SqlStore
from tracker.storage.schema import push_tokens

HW_TOKEN = "IQAAAACy0kYhAADx2yK1-victims-phone-0123456789"
ADDRESS = "ops@fleet.example"
CODE = "12345678"


@pytest.fixture
def store(tmp_path):
    store = SqlStore(f"sqlite:///{tmp_path / 't.db'}")
    store.migrate()
    yield store
    store.close()


@pytest.fixture
def people(store):
    """A device of organisation 1, its user `victim`, a colleague in the same
    organisation and a stranger in another one."""
    device = store.add_device("860000000000001", "Van 1")
    victim = store.add_user("victim@example.com", "pw12345678")
    colleague = store.add_user("colleague@example.com", "pw12345678")
    other = store.add_organisation("Other")
    stranger = store.add_user("stranger@example.com", "pw12345678", organisation_id=other)
    return store, device, victim, colleague, stranger


@pytest.fixture
def huawei():
    with FakeHuawei() as fake:
        notifier = HuaweiNotifier({"app_id": fake.app_id, "client_secret": fake.client_secret,
                                   "base_url": fake.url, "auth_url": fake.url})
        yield fake, notifier
        notifier.close()


def sends(gateway) -> list[list[str]]:
    """The device tokens of every send request that reached the fake Push Kit."""
    return [r.json["message"]["token"] for r in gateway.received if r.path.endswith(":send")]


def owner_of(store, channel, token) -> int:
    with store._read() as conn:
        return conn.execute(select(push_tokens.c.user_id).where(
            push_tokens.c.channel == channel, push_tokens.c.token == token)).scalar_one()


@pytest.mark.parametrize("thief", ["colleague", "stranger"])
def test_a_token_another_user_holds_is_refused_and_the_victim_still_gets_alarms(people, huawei,
                                                                               thief):
    store, device, victim, colleague, stranger = people
    attacker = {"colleague": colleague, "stranger": stranger}[thief]
    gateway, notifier = huawei
    mine = store.add_push_token(victim.id, "huawei", "android", HW_TOKEN, T0)
    with pytest.raises(PushTargetTaken) as refused:
        store.register_push_token(attacker.id, "huawei", "ios", HW_TOKEN, T0)
    assert "victim" not in str(refused.value) and str(victim.id) not in str(refused.value)
    assert owner_of(store, "huawei", HW_TOKEN) == victim.id
    assert store.push_tokens(attacker.id) == []
    assert store.push_tokens(victim.id) == [mine]                  # untouched, platform too
    sos(store, device)
    assert dispatcher(store, Clock(), notifier).run_cycle() == (1, 1)
    assert sends(gateway) == [[HW_TOKEN]]
    (delivery,) = store.deliveries_of(victim.id)
    assert delivery.status == "sent"


def test_the_operator_path_refuses_another_users_token_too(people):
    """add_push_token (what ``tracker notification token-add`` calls) never moves one."""
    store, _, victim, _, stranger = people
    store.add_push_token(victim.id, "huawei", "android", HW_TOKEN, T0)
    with pytest.raises(PushTargetTaken):
        store.add_push_token(stranger.id, "huawei", "android", HW_TOKEN, T0)
    assert owner_of(store, "huawei", HW_TOKEN) == victim.id


def test_an_e_mail_address_another_user_holds_is_refused_confirmed_or_pending(people):
    store, _, victim, _, stranger = people
    store.register_push_token(victim.id, "email", "web", ADDRESS, T0, confirm_code=CODE)
    with pytest.raises(PushTargetTaken):                        # pending, code still live
        store.register_push_token(stranger.id, "email", "web", ADDRESS, T0, confirm_code="1")
    store.confirm_push_token(victim.id, store.push_tokens(victim.id)[0].id, CODE, T0)
    later = T0 + dt.timedelta(days=30)
    with pytest.raises(PushTargetTaken):                        # confirmed: for good
        store.register_push_token(stranger.id, "email", "web", ADDRESS, later, confirm_code="1")
    assert owner_of(store, "email", ADDRESS) == victim.id


def test_registering_again_is_idempotent_and_enables_a_pruned_token(people):
    store, _, victim, _, _ = people
    first = store.register_push_token(victim.id, "huawei", "android", HW_TOKEN, T0)
    assert first.token.confirmed == T0 and not first.code_issued
    with store._write() as conn:
        conn.execute(update(push_tokens).values(disabled=T0, disabled_reason="80300007"))
    again = store.register_push_token(victim.id, "huawei", "android", HW_TOKEN,
                                      T0 + dt.timedelta(hours=1))
    assert again.token.id == first.token.id and again.token.disabled is None
    assert again.token.confirmed == T0 and again.token.created == T0
    assert len(store.push_tokens(victim.id)) == 1


def test_an_unconfirmed_e_mail_target_gets_nothing(people):
    store, device, victim, _, _ = people
    store.register_push_token(victim.id, "email", "web", ADDRESS, T0, confirm_code=CODE)
    (target,) = store.push_tokens(victim.id)
    assert target.confirmed is None
    (recipient,) = [r for r in store.recipients(device.organisation_id) if r.user.id == victim.id]
    assert recipient.tokens == []
    email = ScriptedNotifier("email")
    sos(store, device)
    assert dispatcher(store, Clock(), email).run_cycle() == (1, 0)
    assert email.sent == [] and store.deliveries_of(victim.id) == []


def test_the_dispatcher_skips_an_unconfirmed_token_it_is_handed(people):
    """Defence in depth: even if a store handed out an unconfirmed target, the
    dispatcher neither expands to it nor sends to a due delivery of it."""
    store, device, victim, _, _ = people
    store.add_push_token(victim.id, "email", "web", ADDRESS, T0)
    sos(store, device)
    email = ScriptedNotifier("email")
    run = dispatcher(store, Clock(), email)
    recipients = store.recipients

    def unconfirmed_recipients(organisation_id):
        found = recipients(organisation_id)
        return [r._replace(tokens=[_unconfirmed(t) for t in r.tokens]) for r in found]

    store.recipients = unconfirmed_recipients
    assert run.run_cycle() == (1, 0)
    assert store.deliveries_of(victim.id) == []
    store.recipients = recipients
    sos(store, device, minutes=5, alarm="powerCut")
    due = store.due_deliveries
    store.due_deliveries = lambda *a: [dataclasses.replace(d, token=_unconfirmed(d.token))
                                       for d in due(*a)]
    run.run_cycle()
    assert email.sent == []
    (delivery,) = store.deliveries_of(victim.id)
    assert (delivery.status, delivery.last_error) == ("failed", "target not confirmed")


def _unconfirmed(token):
    return dataclasses.replace(token, confirmed=None)


def test_a_mailed_code_confirms_and_the_address_receives_the_next_alarm(people):
    store, device, victim, _, _ = people
    with FakeSmtp() as smtp:
        notifier = EmailNotifier({"host": smtp.host, "port": smtp.port, "starttls": False,
                                  "from_address": "alerts@tracker.example", "timeout_s": 5})
        registration = store.register_push_token(victim.id, "email", "web", ADDRESS, T0,
                                                 confirm_code=confirm.new_code())
        assert registration.code_issued
        # (the API mails the code it passed; here the store's side only)
        code = "87654321"
        again = store.register_push_token(victim.id, "email", "web", ADDRESS, T0, confirm_code=code)
        assert again.code_issued and again.token.id == registration.token.id
        sos(store, device)
        run = Dispatcher(store, None, None, {"email": notifier}, clock=Clock(),
                         random_fraction=lambda: 1.0)
        run.run_cycle()
        assert smtp.messages == []
        confirmed = store.confirm_push_token(victim.id, again.token.id, code,
                                             T0 + dt.timedelta(minutes=3))
        assert confirmed.confirmed == T0 + dt.timedelta(minutes=3)
        sos(store, device, minutes=10, alarm="powerCut")
        run.run_cycle()
        (mail,) = smtp.messages
        assert mail.rcpt_tos == [ADDRESS] and "Power cut" in mail.message["Subject"]


def test_a_wrong_code_is_counted_and_the_fifth_voids_it(people):
    store, _, victim, _, _ = people
    target = store.register_push_token(victim.id, "email", "web", ADDRESS, T0,
                                       confirm_code=CODE).token
    for left in (4, 3, 2, 1):
        with pytest.raises(ConfirmationRefused, match=f"{left} tr") as refused:
            store.confirm_push_token(victim.id, target.id, "00000000", T0)
        assert refused.value.reason == "wrong"
    with pytest.raises(ConfirmationRefused, match="last try") as refused:
        store.confirm_push_token(victim.id, target.id, "00000000", T0)
    assert refused.value.reason == "void"
    with pytest.raises(ConfirmationRefused) as refused:     # the right code no longer works
        store.confirm_push_token(victim.id, target.id, CODE, T0)
    assert refused.value.reason == "void"
    assert store.push_tokens(victim.id)[0].confirmed is None
    fresh = store.register_push_token(victim.id, "email", "web", ADDRESS, T0, confirm_code="5555")
    assert fresh.code_issued and fresh.token.id == target.id
    assert store.confirm_push_token(victim.id, target.id, " 5555 ", T0).confirmed == T0


def test_an_expired_code_is_refused(people):
    store, _, victim, _, _ = people
    target = store.register_push_token(victim.id, "email", "web", ADDRESS, T0,
                                       confirm_code=CODE).token
    late = T0 + dt.timedelta(seconds=confirm.CODE_TTL_S)
    with pytest.raises(ConfirmationRefused) as refused:
        store.confirm_push_token(victim.id, target.id, CODE, late)
    assert refused.value.reason == "expired"
    just_in_time = late - dt.timedelta(seconds=1)
    assert store.confirm_push_token(victim.id, target.id, CODE, just_in_time).confirmed is not None


def test_someone_elses_target_cannot_be_confirmed(people):
    store, _, victim, colleague, _ = people
    target = store.register_push_token(victim.id, "email", "web", ADDRESS, T0,
                                       confirm_code=CODE).token
    with pytest.raises(NotFoundError):
        store.confirm_push_token(colleague.id, target.id, CODE, T0)
    with pytest.raises(NotFoundError):
        store.confirm_push_token(victim.id, target.id + 1, CODE, T0)
    assert store.push_tokens(victim.id)[0].confirmed is None


def test_a_dead_claim_on_an_address_is_replaced(people):
    """An address someone registered but never confirmed is not theirs forever."""
    store, _, victim, _, stranger = people
    store.register_push_token(stranger.id, "email", "web", ADDRESS, T0, confirm_code=CODE)
    later = T0 + dt.timedelta(seconds=confirm.CODE_TTL_S)
    mine = store.register_push_token(victim.id, "email", "web", ADDRESS, later, confirm_code="42")
    assert mine.code_issued and owner_of(store, "email", ADDRESS) == victim.id
    assert store.push_tokens(stranger.id) == []


def test_only_the_digest_of_the_code_is_stored(people):
    store, _, victim, _, _ = people
    store.register_push_token(victim.id, "email", "web", ADDRESS, T0, confirm_code=CODE)
    with store._read() as conn:
        stored = conn.execute(select(push_tokens.c.confirm_code_hash)).scalar_one()
    assert CODE not in stored and len(stored) == 64
    assert stored.endswith(confirm.code_digest(CODE)[:62])


def test_operator_added_e_mail_targets_are_confirmed(people):
    store, _, victim, _, _ = people
    assert store.add_push_token(victim.id, "email", "web", ADDRESS, T0).confirmed == T0


def test_withdraw_removes_only_an_unconfirmed_target_of_the_user(people):
    store, _, victim, colleague, _ = people
    pending = store.register_push_token(victim.id, "email", "web", ADDRESS, T0,
                                        confirm_code=CODE).token
    app = store.add_push_token(victim.id, "huawei", "android", HW_TOKEN, T0)
    assert not store.withdraw_push_token(colleague.id, pending.id)
    assert not store.withdraw_push_token(victim.id, app.id)
    assert store.withdraw_push_token(victim.id, pending.id)
    assert [t.id for t in store.push_tokens(victim.id)] == [app.id]
