"""Traccar notifications and their device/group links in storage, on SQLite and on
PostGIS through the `store` fixture."""

from __future__ import annotations

import pytest
from sqlalchemy import delete

from tests.tracker.test_storage import new_device
from tracker.storage import NotFoundError, SqlStore
from tracker.storage.schema import devices


@pytest.fixture
def alice(store: SqlStore):
    return store.add_user("alice@example.com", "correct horse battery")


def test_links_are_kept_listed_by_owner_and_survive_an_update(store, alice):
    kept = store.add_traccar_notification(alice.id, "alarm", False, "firebase", {"alarms": "sos"})
    other = store.add_traccar_notification(alice.id, "geofenceEnter", True, "mail", {})
    device = new_device(store)
    group = store.add_group(None, "Vans")
    store.link_notification(alice, kept.id, device_id=device.id)
    store.link_notification(alice, kept.id, device_id=device.id)        # once is enough
    store.link_notification(alice, kept.id, group_id=group.id)
    assert [n.id for n in store.traccar_notifications(alice.id, device_id=device.id)] == [kept.id]
    assert [n.id for n in store.traccar_notifications(alice.id, group_id=group.id)] == [kept.id]
    assert [n.id for n in store.traccar_notifications(alice.id)] == [kept.id, other.id]
    updated = store.update_traccar_notification(alice.id, kept.id, type="alarm", always=False,
                                                notificators="firebase,mail", attributes={})
    assert (updated.device_ids, updated.group_ids) == ({device.id}, {group.id})
    (recipient,) = [r for r in store.recipients(1) if r.user.id == alice.id]
    assert [(s.id, s.device_ids) for s in recipient.subscriptions] == [
        (kept.id, {device.id}), (other.id, frozenset())]

    store.unlink_notification(alice, kept.id, device_id=device.id)
    with pytest.raises(NotFoundError):
        store.unlink_notification(alice, kept.id, device_id=device.id)
    assert store.traccar_notifications(alice.id, device_id=device.id) == []


def test_links_need_the_users_own_notification_and_a_device_they_may_see(store, alice):
    bob = store.add_user("bob@example.com", "correct horse battery")
    bobs = store.add_traccar_notification(bob.id, "alarm", False, "firebase", {})
    mine = store.add_traccar_notification(alice.id, "alarm", False, "firebase", {})
    elsewhere = new_device(store, store.add_organisation("Second"))
    with pytest.raises(NotFoundError, match="notification"):
        store.link_notification(alice, bobs.id, device_id=new_device(store).id)
    with pytest.raises(NotFoundError, match="device"):
        store.link_notification(alice, mine.id, device_id=elsewhere.id)
    with pytest.raises(ValueError):
        store.link_notification(alice, mine.id)


def test_a_deleted_device_or_notification_takes_its_links_along(store, alice):
    notification = store.add_traccar_notification(alice.id, "alarm", False, "firebase", {})
    gone, stays = new_device(store), new_device(store)
    for device in (gone, stays):
        store.link_notification(alice, notification.id, device_id=device.id)
    with store.engine.begin() as conn:            # devices are deleted outside the Store API
        conn.execute(delete(devices).where(devices.c.id == gone.id))
    (stored,) = store.traccar_notifications(alice.id)
    assert stored.device_ids == {stays.id}
    assert store.delete_traccar_notification(alice.id, notification.id)
    assert not store.delete_traccar_notification(alice.id, notification.id)
    assert store.traccar_notifications(alice.id, device_id=stays.id) == []
