"""SqlStore's configuration for the rule engine (organisations, groups, device settings,
geofences and links, calendars, rules, revision), rule states and event reports; run
on SQLite and on PostGIS through the `store` fixture."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy import delete, select

from tests.tracker.test_storage import ADMIN, at, member_of, new_device, position
from tracker.models import Batch, NewEvent, RuleState, StatusUpdate
from tracker.storage import UNCHANGED, InUseError, NotFoundError, SqlStore
from tracker.storage.schema import UTCDateTime, devices, events
from tracker.storage.sql import MIGRATIONS_DIR

SQUARE = {"type": "Feature", "properties": {},
          "geometry": {"type": "Polygon", "coordinates": [
              [[13.0, 52.0], [13.1, 52.0], [13.1, 52.1], [13.0, 52.1], [13.0, 52.0]]]}}
CIRCLE = {"type": "Feature", "properties": {"radius_m": 150.0},
          "geometry": {"type": "Point", "coordinates": [13.4, 52.5]}}
IGNITION_ON = {"when": {"attribute": "ignition", "operator": "==", "value": True}}
WEEKDAYS = {"intervals": [{"days": ["mo", "tu", "we", "th", "fr"],
                           "start": "08:00", "end": "18:00"}]}


@pytest.fixture
def second(store: SqlStore) -> int:
    """A second organisation's id (the default one is 1)."""
    return store.add_organisation("Second")


def delete_device(store: SqlStore, device_id: int) -> None:
    """Devices are deleted outside the `Store` interface (CLI, retention)."""
    with store.engine.begin() as conn:
        conn.execute(delete(devices).where(devices.c.id == device_id))


# -- organisations --------------------------------------------------------------------


def test_organisation_timezone_defaults_to_utc_and_can_be_set(store, second):
    assert [(o.id, o.name, o.timezone) for o in store.organisations()] == [
        (1, "Default", "UTC"), (second, "Second", "UTC")]
    store.set_organisation_timezone(second, "Europe/Berlin")
    assert [o.timezone for o in store.organisations()] == ["UTC", "Europe/Berlin"]
    with pytest.raises(NotFoundError):
        store.set_organisation_timezone(999, "UTC")


# -- CRUD round trips ---------------------------------------------------------------------


def test_group_round_trip_and_partial_update(store):
    group = store.add_group(None, "Vans", {"speedLimit": 50})
    assert (group.organisation_id, group.name, group.attributes) == (1, "Vans", {"speedLimit": 50})
    assert store.groups(None) == [group]
    renamed = store.update_group(None, group.id, name="Big vans")
    assert (renamed.name, renamed.attributes) == ("Big vans", {"speedLimit": 50})
    changed = store.update_group(None, group.id, attributes={"speedLimit": 60.5})
    assert (changed.name, changed.attributes) == ("Big vans", {"speedLimit": 60.5})
    assert store.groups(ADMIN) == [changed]
    store.delete_group(None, group.id)
    assert store.groups(None) == []
    with pytest.raises(NotFoundError):
        store.update_group(None, group.id, name="x")
    with pytest.raises(NotFoundError):
        store.delete_group(None, group.id)


def test_update_device_sets_name_group_and_settings(store):
    """Every device read carries group and settings; UNCHANGED keeps the group, None
    removes it; settings are replaced as a whole."""
    device = new_device(store)
    assert (device.group_id, device.attributes) == (None, {})
    group = store.add_group(None, "Vans")
    updated = store.update_device(None, device.id, group_id=group.id,
                                  attributes={"speedLimit": 40, "x": 1})
    assert (updated.name, updated.group_id, updated.attributes) == (
        "Van", group.id, {"speedLimit": 40, "x": 1})
    assert store.device_by_unique_id(device.unique_id) == updated
    assert store.devices() == [updated]
    renamed = store.update_device(ADMIN, device.id, name="Truck", attributes={"x": 2},
                                  group_id=UNCHANGED)
    assert (renamed.name, renamed.group_id, renamed.attributes) == ("Truck", group.id, {"x": 2})
    ungrouped = store.update_device(None, device.id, group_id=None)
    assert (ungrouped.name, ungrouped.group_id, ungrouped.attributes) == ("Truck", None, {"x": 2})
    with pytest.raises(NotFoundError):
        store.update_device(None, 9999, name="ghost")
    with pytest.raises(NotFoundError):
        store.update_device(None, device.id, group_id=9999)


def test_new_device_has_no_group_and_empty_settings(store):
    device = store.add_device("imei-1", "Van")
    assert (device.group_id, device.attributes) == (None, {})
    assert store.device_by_unique_id("imei-1") == device


def test_geofence_round_trip_and_put_semantics(store):
    calendar = store.add_calendar(None, "Office hours", WEEKDAYS)
    zone = store.add_geofence(None, "Yard", SQUARE, description="the depot",
                              calendar_id=calendar.id, attributes={"speedLimit": 10})
    assert (zone.organisation_id, zone.name, zone.geometry, zone.description,
            zone.calendar_id, zone.attributes) == (
        1, "Yard", SQUARE, "the depot", calendar.id, {"speedLimit": 10})
    assert store.geofence(None, zone.id) == zone
    assert store.geofences(None) == [zone]
    replaced = store.update_geofence(None, zone.id, name="Ring", geometry=CIRCLE)
    assert (replaced.name, replaced.geometry, replaced.description, replaced.calendar_id,
            replaced.attributes) == ("Ring", CIRCLE, "", None, {})
    assert store.geofence(ADMIN, zone.id) == replaced
    store.delete_geofence(None, zone.id)
    assert store.geofence(None, zone.id) is None
    assert store.geofences(None) == []
    with pytest.raises(NotFoundError):
        store.update_geofence(None, zone.id, name="x", geometry=SQUARE)
    with pytest.raises(NotFoundError):
        store.delete_geofence(None, zone.id)


def test_geofences_are_listed_by_id(store):
    zones = [store.add_geofence(None, name, SQUARE) for name in ("a", "b", "c")]
    assert [z.id for z in store.geofences(None)] == sorted(z.id for z in zones)


def test_calendar_round_trip(store):
    calendar = store.add_calendar(None, "Office hours", WEEKDAYS)
    assert (calendar.organisation_id, calendar.name, calendar.data) == (
        1, "Office hours", WEEKDAYS)
    assert store.calendars(None) == [calendar]
    updated = store.update_calendar(None, calendar.id, name="Nights", data={"intervals": []})
    assert (updated.id, updated.name, updated.data) == (calendar.id, "Nights", {"intervals": []})
    assert store.calendars(ADMIN) == [updated]
    store.delete_calendar(None, calendar.id)
    assert store.calendars(None) == []
    with pytest.raises(NotFoundError):
        store.update_calendar(None, calendar.id, name="x", data={})
    with pytest.raises(NotFoundError):
        store.delete_calendar(None, calendar.id)


def test_rule_round_trip_keeps_disabled_rules(store):
    on = store.add_rule(None, "Ignition", IGNITION_ON)
    off = store.add_rule(None, "Fuel", {"when": {"attribute": "fuel", "operator": "dropsBy",
                                                 "value": 10}}, enabled=False)
    assert (on.organisation_id, on.name, on.enabled) == (1, "Ignition", True)
    assert on.definition == IGNITION_ON
    assert off.enabled is False
    assert store.rules(None) == [on, off]
    assert store.rule(None, off.id) == off
    updated = store.update_rule(None, off.id, name="Fuel drop",
                                definition={"when": {"event": "alarm", "value": "sos"}})
    assert (updated.name, updated.enabled, updated.definition) == (
        "Fuel drop", True, {"when": {"event": "alarm", "value": "sos"}})
    assert store.rule(ADMIN, off.id) == updated
    store.delete_rule(None, on.id)
    assert store.rules(None) == [updated]
    assert store.rule(None, on.id) is None
    with pytest.raises(NotFoundError):
        store.delete_rule(None, on.id)
    with pytest.raises(NotFoundError):
        store.update_rule(None, on.id, name="x", definition={})


# -- scoping -----------------------------------------------------------------------------


def _one_of_each(store: SqlStore, organisation_id: int) -> dict[str, int]:
    """A group, calendar, geofence, rule and device in the organisation (via the CLI)."""
    group = store.add_group(None, f"group {organisation_id}", organisation_id=organisation_id)
    calendar = store.add_calendar(None, "cal", WEEKDAYS, organisation_id=organisation_id)
    zone = store.add_geofence(None, "zone", SQUARE, calendar_id=calendar.id,
                              organisation_id=organisation_id)
    rule = store.add_rule(None, "rule", {"when": {"event": "geofenceEnter"}},
                          organisation_id=organisation_id)
    device = new_device(store, organisation_id)
    return {"group": group.id, "calendar": calendar.id, "geofence": zone.id,
            "rule": rule.id, "device": device.id}


def test_members_see_only_their_organisations_configuration(store, second):
    ours, theirs = _one_of_each(store, 1), _one_of_each(store, second)
    member = member_of(second)
    assert [g.id for g in store.groups(member)] == [theirs["group"]]
    assert [c.id for c in store.calendars(member)] == [theirs["calendar"]]
    assert [z.id for z in store.geofences(member)] == [theirs["geofence"]]
    assert [r.id for r in store.rules(member)] == [theirs["rule"]]
    assert store.geofence(member, ours["geofence"]) is None
    assert store.rule(member, ours["rule"]) is None
    assert store.geofence(member, theirs["geofence"]) is not None
    assert store.geofences(member, device_id=ours["device"]) == []
    for reader in (ADMIN, None):
        assert [g.id for g in store.groups(reader)] == [ours["group"], theirs["group"]]
        assert [z.id for z in store.geofences(reader)] == [ours["geofence"], theirs["geofence"]]
        assert [r.id for r in store.rules(reader)] == [ours["rule"], theirs["rule"]]
        assert [c.id for c in store.calendars(reader)] == [ours["calendar"],
                                                          theirs["calendar"]]


def test_cross_organisation_writes_raise_not_found_and_change_nothing(store, second):
    ours, theirs = _one_of_each(store, 1), _one_of_each(store, second)
    member = member_of(second)
    before = (store.groups(None), store.geofences(None), store.calendars(None),
              store.rules(None), store.devices())
    attempts = [
        lambda: store.update_group(member, ours["group"], name="x"),
        lambda: store.delete_group(member, ours["group"]),
        lambda: store.update_device(member, ours["device"], name="x"),
        lambda: store.update_device(member, theirs["device"], group_id=ours["group"]),
        lambda: store.update_geofence(member, ours["geofence"], name="x", geometry=SQUARE),
        lambda: store.delete_geofence(member, ours["geofence"]),
        lambda: store.link_geofence(member, ours["geofence"], device_id=theirs["device"]),
        lambda: store.link_geofence(member, theirs["geofence"], device_id=ours["device"]),
        lambda: store.link_geofence(member, theirs["geofence"], group_id=ours["group"]),
        lambda: store.unlink_geofence(member, ours["geofence"], device_id=ours["device"]),
        lambda: store.update_calendar(member, ours["calendar"], name="x", data={}),
        lambda: store.delete_calendar(member, ours["calendar"]),
        lambda: store.update_rule(member, ours["rule"], name="x", definition={}),
        lambda: store.delete_rule(member, ours["rule"]),
        lambda: store.update_geofence(member, theirs["geofence"], name="x", geometry=SQUARE,
                                      calendar_id=ours["calendar"]),
        lambda: store.add_geofence(member, "x", SQUARE, calendar_id=ours["calendar"]),
        lambda: store.add_rule(member, "x", {"when": {"event": "geofenceEnter"}, "zone": ours["geofence"]}),
    ]
    for number, attempt in enumerate(attempts):
        with pytest.raises(NotFoundError):
            attempt()
            pytest.fail(f"attempt {number} did not raise")
    assert (store.groups(None), store.geofences(None), store.calendars(None),
            store.rules(None), store.devices()) == before


def test_objects_are_created_in_the_members_organisation(store, second):
    member = member_of(second)
    assert store.add_group(member, "mine").organisation_id == second
    assert store.add_calendar(member, "mine", WEEKDAYS).organisation_id == second
    assert store.add_geofence(member, "mine", SQUARE).organisation_id == second
    assert store.add_rule(member, "mine", IGNITION_ON).organisation_id == second
    with pytest.raises(NotFoundError):
        store.add_group(member, "elsewhere", organisation_id=1)
    assert store.add_group(ADMIN, "admin's").organisation_id == 1
    assert store.add_group(ADMIN, "placed", organisation_id=second).organisation_id == second
    assert store.add_group(None, "cli").organisation_id == 1
    with pytest.raises(NotFoundError):
        store.add_group(None, "nowhere", organisation_id=999)


def test_administrator_may_not_mix_organisations_either(store, second):
    """References must be in the referring object's organisation, whoever asks."""
    ours, theirs = _one_of_each(store, 1), _one_of_each(store, second)
    with pytest.raises(NotFoundError):
        store.link_geofence(ADMIN, ours["geofence"], device_id=theirs["device"])
    with pytest.raises(NotFoundError):
        store.link_geofence(None, ours["geofence"], group_id=theirs["group"])
    with pytest.raises(NotFoundError):
        store.update_device(ADMIN, ours["device"], group_id=theirs["group"])
    with pytest.raises(NotFoundError):
        store.add_geofence(None, "x", SQUARE, calendar_id=theirs["calendar"])
    with pytest.raises(NotFoundError):
        store.add_rule(ADMIN, "x", {"when": {"event": "geofenceEnter"}, "zone": theirs["geofence"]})
    with pytest.raises(NotFoundError):
        store.add_rule(None, "x", {"when": {"event": "geofenceEnter"}, "calendar": theirs["calendar"]})
    store.link_geofence(ADMIN, theirs["geofence"], device_id=theirs["device"])
    assert [z.id for z in store.geofences(ADMIN, device_id=theirs["device"])] == [
        theirs["geofence"]]


# -- links ----------------------------------------------------------------------------------


def test_link_is_idempotent_and_unlink_of_a_missing_link_fails(store):
    device, zone = new_device(store), store.add_geofence(None, "Yard", SQUARE)
    store.link_geofence(None, zone.id, device_id=device.id)
    store.link_geofence(None, zone.id, device_id=device.id)
    assert store.geofences(None, device_id=device.id) == [zone]
    assert store.rule_config().device_geofences == ((device.id, zone.id),)
    store.unlink_geofence(None, zone.id, device_id=device.id)
    assert store.geofences(None, device_id=device.id) == []
    with pytest.raises(NotFoundError, match="not linked"):
        store.unlink_geofence(None, zone.id, device_id=device.id)


def test_link_errors(store):
    device, zone = new_device(store), store.add_geofence(None, "Yard", SQUARE)
    group = store.add_group(None, "Vans")
    with pytest.raises(ValueError, match="exactly one"):
        store.link_geofence(None, zone.id)
    with pytest.raises(ValueError, match="exactly one"):
        store.link_geofence(None, zone.id, device_id=device.id, group_id=group.id)
    with pytest.raises(NotFoundError):
        store.link_geofence(None, 9999, device_id=device.id)
    with pytest.raises(NotFoundError):
        store.link_geofence(None, zone.id, device_id=9999)
    with pytest.raises(NotFoundError):
        store.link_geofence(None, zone.id, group_id=9999)
    with pytest.raises(NotFoundError):
        store.unlink_geofence(None, 9999, group_id=group.id)
    assert store.rule_config().device_geofences == ()


def test_geofence_filters_by_device_and_by_group_directly_only(store):
    """A device's filter lists its own links, not those it has through its group."""
    group = store.add_group(None, "Vans")
    device = store.update_device(None, new_device(store).id, group_id=group.id)
    other = new_device(store)
    own, shared, unused = (store.add_geofence(None, name, SQUARE)
                           for name in ("own", "shared", "unused"))
    store.link_geofence(None, own.id, device_id=device.id)
    store.link_geofence(None, shared.id, group_id=group.id)
    store.link_geofence(None, shared.id, group_id=group.id)
    assert store.geofences(None, device_id=device.id) == [own]
    assert store.geofences(None, group_id=group.id) == [shared]
    assert store.geofences(None, device_id=other.id) == []
    assert store.geofences(None) == [own, shared, unused]
    assert store.rule_config().group_geofences == ((group.id, shared.id),)
    store.unlink_geofence(None, shared.id, group_id=group.id)
    assert store.geofences(None, group_id=group.id) == []


# -- deletes and what they take along --------------------------------------------------------


def test_deleting_a_device_removes_its_links_and_rule_state(store):
    device, kept = new_device(store), new_device(store)
    zone = store.add_geofence(None, "Yard", SQUARE)
    for each in (device, kept):
        store.link_geofence(None, zone.id, device_id=each.id)
    store.write_batch(Batch(states=(RuleState(device.id, {"inside": [zone.id]}),
                                    RuleState(kept.id, {"inside": []}))))
    delete_device(store, device.id)
    assert store.geofences(None, device_id=device.id) == []
    assert store.rule_config().device_geofences == ((kept.id, zone.id),)
    assert store.rule_states() == {kept.id: {"inside": []}}


def test_deleting_a_group_ungroups_its_devices_and_drops_its_links(store):
    group, other_group = store.add_group(None, "Vans"), store.add_group(None, "Cars")
    device = store.update_device(None, new_device(store).id, group_id=group.id)
    car = store.update_device(None, new_device(store).id, group_id=other_group.id)
    zone = store.add_geofence(None, "Yard", SQUARE)
    store.link_geofence(None, zone.id, group_id=group.id)
    store.link_geofence(None, zone.id, group_id=other_group.id)
    store.delete_group(None, group.id)
    assert store.device_by_unique_id(device.unique_id).group_id is None
    assert store.device_by_unique_id(car.unique_id).group_id == other_group.id
    assert store.rule_config().group_geofences == ((other_group.id, zone.id),)
    assert store.geofences(None) == [zone]


def test_deleting_a_calendar_leaves_its_geofences_always_active(store):
    calendar = store.add_calendar(None, "Office hours", WEEKDAYS)
    zone = store.add_geofence(None, "Yard", SQUARE, calendar_id=calendar.id)
    store.delete_calendar(None, calendar.id)
    assert store.geofence(None, zone.id).calendar_id is None
    assert store.calendars(None) == []


def test_deleting_a_geofence_removes_its_links(store):
    device, group = new_device(store), store.add_group(None, "Vans")
    zone, kept = store.add_geofence(None, "Yard", SQUARE), store.add_geofence(None, "Ring", CIRCLE)
    for each in (zone, kept):
        store.link_geofence(None, each.id, device_id=device.id)
        store.link_geofence(None, each.id, group_id=group.id)
    store.delete_geofence(None, zone.id)
    config = store.rule_config()
    assert config.device_geofences == ((device.id, kept.id),)
    assert config.group_geofences == ((group.id, kept.id),)


def test_geofence_named_by_a_rule_cannot_be_deleted(store):
    """Also when the rule is disabled; the message names the rule."""
    zone = store.add_geofence(None, "Yard", SQUARE)
    rule = store.add_rule(None, "Yard watch", {"when": {"event": "geofenceEnter"}, "zone": zone.id},
                          enabled=False)
    with pytest.raises(InUseError) as info:
        store.delete_geofence(None, zone.id)
    assert str(info.value) == f"geofence {zone.id} is used by rule {rule.id} (Yard watch)"
    assert store.geofence(None, zone.id) == zone
    store.delete_rule(None, rule.id)
    store.delete_geofence(None, zone.id)
    assert store.geofence(None, zone.id) is None


def test_geofence_named_by_a_geofence_event_condition_cannot_be_deleted(store):
    zone, other = store.add_geofence(None, "Yard", SQUARE), store.add_geofence(None, "Ring", CIRCLE)
    rule = store.add_rule(None, "Left the yard",
                          {"when": {"event": "geofenceExit", "value": zone.id}})
    with pytest.raises(InUseError, match=f"geofence {zone.id} is used by rule {rule.id}"):
        store.delete_geofence(None, zone.id)
    store.delete_geofence(None, other.id)
    assert store.geofences(None) == [zone]
    with pytest.raises(NotFoundError):
        store.add_rule(None, "x", {"when": {"event": "geofenceEnter", "value": other.id}})


def test_calendar_named_by_a_rule_cannot_be_deleted(store):
    calendar = store.add_calendar(None, "Nights", WEEKDAYS)
    zone = store.add_geofence(None, "Yard", SQUARE, calendar_id=calendar.id)
    rule = store.add_rule(None, "Night moves", {**IGNITION_ON, "calendar": calendar.id})
    with pytest.raises(InUseError, match=f"calendar {calendar.id} is used by rule {rule.id}"):
        store.delete_calendar(None, calendar.id)
    assert store.geofence(None, zone.id).calendar_id == calendar.id
    store.update_rule(None, rule.id, name="Moves", definition=IGNITION_ON)
    store.delete_calendar(None, calendar.id)
    assert store.calendars(None) == []


# -- configuration revision -------------------------------------------------------------------


def test_every_configuration_write_bumps_the_revision_once_and_reads_do_not(store, second):
    device = new_device(store)
    group = store.add_group(None, "Vans")
    calendar = store.add_calendar(None, "Office", WEEKDAYS)
    zone = store.add_geofence(None, "Yard", SQUARE)
    rule = store.add_rule(None, "r", IGNITION_ON)
    writes = {
        "add_device": lambda: store.add_device("fresh", "new"),
        "timezone": lambda: store.set_organisation_timezone(1, "Europe/Berlin"),
        "add_group": lambda: store.add_group(None, "Cars"),
        "update_group": lambda: store.update_group(None, group.id, name="Trucks"),
        "update_device": lambda: store.update_device(None, device.id, group_id=group.id),
        "add_calendar": lambda: store.add_calendar(None, "c", WEEKDAYS),
        "update_calendar": lambda: store.update_calendar(None, calendar.id, name="c2",
                                                         data=WEEKDAYS),
        "add_geofence": lambda: store.add_geofence(None, "z", CIRCLE),
        "update_geofence": lambda: store.update_geofence(None, zone.id, name="z2",
                                                         geometry=SQUARE),
        "link_device": lambda: store.link_geofence(None, zone.id, device_id=device.id),
        "link_group": lambda: store.link_geofence(None, zone.id, group_id=group.id),
        "unlink_device": lambda: store.unlink_geofence(None, zone.id, device_id=device.id),
        "unlink_group": lambda: store.unlink_geofence(None, zone.id, group_id=group.id),
        "add_rule": lambda: store.add_rule(None, "r2", IGNITION_ON),
        "update_rule": lambda: store.update_rule(None, rule.id, name="r3", definition={}),
        "delete_rule": lambda: store.delete_rule(None, rule.id),
        "delete_geofence": lambda: store.delete_geofence(None, zone.id),
        "delete_calendar": lambda: store.delete_calendar(None, calendar.id),
        "delete_group": lambda: store.delete_group(None, group.id),
    }
    reads = [store.organisations, lambda: store.groups(None), lambda: store.geofences(None),
             lambda: store.calendars(None), lambda: store.rules(None), store.rule_config,
             store.rule_states, store.devices, lambda: store.geofence(None, zone.id),
             lambda: store.rule(None, rule.id)]
    for name, write in writes.items():
        before = store.config_revision()
        for read in reads:
            read()
        assert store.config_revision() == before, f"reads before {name}"
        write()
        assert store.config_revision() == before + 1, name
        assert store.rule_config().revision == before + 1


def test_refused_writes_and_batches_leave_the_revision_alone(store):
    device = new_device(store)
    before = store.config_revision()
    with pytest.raises(NotFoundError):
        store.update_group(None, 9999, name="x")
    with pytest.raises(NotFoundError):
        store.update_device(None, device.id, group_id=9999)
    store.write_batch(Batch(positions=(position(device.id, 1),),
                            states=(RuleState(device.id, {"a": 1}),)))
    assert store.config_revision() == before


# -- write_batch: rule states and events -------------------------------------------------------


def test_rule_states_are_upserted_and_the_last_of_a_batch_wins(store):
    first, second_device = new_device(store), new_device(store)
    store.write_batch(Batch(states=(RuleState(first.id, {"n": 1}),
                                    RuleState(second_device.id, {"n": 10}),
                                    RuleState(first.id, {"n": 2, "inside": [3]}))))
    assert store.rule_states() == {first.id: {"n": 2, "inside": [3]},
                                   second_device.id: {"n": 10}}
    store.write_batch(Batch(positions=(position(first.id, 1),),
                            states=(RuleState(first.id, {"n": 3}),)))
    assert store.rule_states() == {first.id: {"n": 3}, second_device.id: {"n": 10}}


def test_rule_states_of_unknown_devices_are_dropped(store):
    device = new_device(store)
    store.write_batch(Batch(states=(RuleState(9999, {"n": 1}), RuleState(device.id, {"n": 2}))))
    assert store.rule_states() == {device.id: {"n": 2}}


@pytest.mark.parametrize("failing", ["state", "event"])
def test_a_failing_batch_stores_neither_state_nor_positions(store, failing):
    """States share the batch's transaction, whichever part of the batch fails."""
    device = new_device(store)
    store.write_batch(Batch(states=(RuleState(device.id, {"n": 1}),)))
    bad_state = {("not", "a", "json", "key"): 1} if failing == "state" else {"n": 2}
    event_time = at(1).replace(tzinfo=None) if failing == "event" else at(1)
    with pytest.raises((TypeError, ValueError, sa.exc.StatementError)):
        store.write_batch(Batch(
            positions=(position(device.id, 1),),
            events=(NewEvent(device.id, "geofenceEnter", event_time, geofence_id=1),),
            statuses=(StatusUpdate(device.id, at(1), {"ignition": True}),),
            states=(RuleState(device.id, bad_state),)))
    assert store.count_positions() == 0
    assert store.events(ADMIN, None, at(0), at(9)) == []
    assert store.rule_states() == {device.id: {"n": 1}}
    assert store.device_by_unique_id(device.unique_id).last_update is None


def test_geofence_events_for_different_zones_at_one_instant_are_all_kept(store):
    """The subject (here the geofence id) is part of the unique key; a retransmitted
    event is still stored once."""
    device = new_device(store)
    enter_yard = NewEvent(device.id, "geofenceEnter", at(1), geofence_id=7)
    enter_ring = NewEvent(device.id, "geofenceEnter", at(1), geofence_id=8)
    store.write_batch(Batch(events=(enter_yard, enter_ring)))
    store.write_batch(Batch(events=(enter_ring,)))
    stored = store.events(ADMIN, device.id, at(0), at(2))
    assert sorted(e.geofence_id for e in stored) == [7, 8]
    with store.engine.connect() as conn:
        subjects = conn.execute(select(events.c.subject).order_by(events.c.subject)).scalars()
        assert list(subjects) == ["7", "8"]


def test_event_subject_comes_from_the_attributes_first(store):
    """Two rule events at one instant are told apart by their ruleId."""
    device = new_device(store)
    store.write_batch(Batch(events=(
        NewEvent(device.id, "alarm", at(1), {"ruleId": 1}),
        NewEvent(device.id, "alarm", at(1), {"ruleId": 2}),
        NewEvent(device.id, "alarm", at(1), {"ruleId": 2}))))
    assert sorted(e.attributes["ruleId"] for e in store.events(ADMIN, device.id, at(0),
                                                               at(2))) == [1, 2]


# -- event reports ------------------------------------------------------------------------------


@pytest.fixture
def report(store, second):
    """Devices a and b in group g, c alone, d in another organisation, with events."""
    group = store.add_group(None, "g")
    a, b, c = (store.update_device(None, new_device(store).id, group_id=gid)
               for gid in (group.id, group.id, None))
    d = new_device(store, second)
    store.write_batch(Batch(events=(
        NewEvent(a.id, "geofenceEnter", at(2), geofence_id=5),
        NewEvent(b.id, "alarm", at(1), {"alarm": "sos"}),
        NewEvent(c.id, "ignitionOn", at(3)),
        NewEvent(a.id, "geofenceExit", at(4), geofence_id=5),
        NewEvent(c.id, "alarm", at(2), {"alarm": "sos"}),
        NewEvent(d.id, "alarm", at(2), {"alarm": "sos"}))))
    return {"g": group.id, "a": a.id, "b": b.id, "c": c.id, "d": d.id}


def _who(report, events_):
    names = {device_id: name for name, device_id in report.items()}
    return [(names[e.device_id], e.type, e.event_time) for e in events_]


def test_events_report_filters_and_orders(store, report):
    def run(user=ADMIN, start_min=0, end_min=9, **filters):
        return _who(report, store.events_report(user, at(start_min), at(end_min), **filters))

    everything = run()
    assert [(who, time) for who, _, time in everything] == [
        ("b", at(1)), ("a", at(2)), ("c", at(2)), ("d", at(2)), ("c", at(3)), ("a", at(4))]
    assert run(device_ids=[report["c"]]) == [("c", "alarm", at(2)), ("c", "ignitionOn", at(3))]
    assert [who for who, _, _ in run(group_ids=[report["g"]])] == ["b", "a", "a"]
    assert [who for who, _, _ in run(group_ids=[report["g"]], device_ids=[report["c"]])] == [
        "b", "a", "c", "c", "a"]
    assert run(types=["geofenceEnter", "ignitionOn"]) == [
        ("a", "geofenceEnter", at(2)), ("c", "ignitionOn", at(3))]
    assert [who for who, _, _ in run(start_min=2, end_min=3)] == ["a", "c", "d", "c"]
    assert len(run(limit=2)) == 2 and run(limit=2) == everything[:2]
    assert run(group_ids=[9999]) == []
    geofence_ids = [e.geofence_id for e in store.events_report(ADMIN, at(0), at(9),
                                                               device_ids=[report["a"]])]
    assert geofence_ids == [5, 5]


def test_events_report_is_scoped_to_the_users_organisation(store, report, second):
    member = member_of(second)
    assert _who(report, store.events_report(member, at(0), at(9))) == [
        ("d", "alarm", at(2))]
    assert store.events_report(member, at(0), at(9), device_ids=[report["a"]]) == []
    assert store.events_report(member, at(0), at(9), group_ids=[report["g"]]) == []
    assert len(store.events_report(member_of(1), at(0), at(9))) == 5


def test_event_by_id_is_scoped(store, report, second):
    [ours] = store.events_report(ADMIN, at(0), at(9), device_ids=[report["b"]])
    assert store.event(ADMIN, ours.id) == ours
    assert store.event(member_of(1), ours.id) == ours
    assert store.event(member_of(second), ours.id) is None
    assert store.event(ADMIN, 999_999) is None


# -- the configuration as the rule engine reads it -----------------------------------------------


def test_rule_config_has_enabled_devices_and_rules_and_everything_else(store, second):
    store.set_organisation_timezone(second, "Europe/Berlin")
    group = store.add_group(None, "Vans", {"speedLimit": 50})
    device = store.update_device(None, new_device(store).id, group_id=group.id,
                                 attributes={"speedLimit": 30})
    parked = new_device(store)
    with store.engine.begin() as conn:
        conn.execute(sa.update(devices).where(devices.c.id == parked.id).values(disabled=True))
    calendar = store.add_calendar(None, "Office", WEEKDAYS)
    zone = store.add_geofence(None, "Yard", SQUARE, calendar_id=calendar.id)
    other_zone = store.add_geofence(None, "Theirs", CIRCLE, organisation_id=second)
    store.link_geofence(None, zone.id, device_id=device.id)
    store.link_geofence(None, zone.id, device_id=parked.id)
    store.link_geofence(None, zone.id, group_id=group.id)
    rule = store.add_rule(None, "Yard", {"when": {"event": "geofenceEnter"}, "zone": zone.id})
    store.add_rule(None, "Off", IGNITION_ON, enabled=False)

    config = store.rule_config()
    assert config.revision == store.config_revision()
    assert [(o.id, o.timezone) for o in config.organisations] == [
        (1, "UTC"), (second, "Europe/Berlin")]
    assert config.devices == (device,)
    assert (config.devices[0].group_id, config.devices[0].attributes) == (
        group.id, {"speedLimit": 30})
    assert config.groups == (group,)
    assert config.geofences == (zone, other_zone)
    assert config.calendars == (calendar,)
    assert config.rules == (rule,)
    assert config.device_geofences == ((device.id, zone.id),)
    assert config.group_geofences == ((group.id, zone.id),)


def test_empty_store_has_an_empty_rule_config(store):
    config = store.rule_config()
    assert (config.devices, config.geofences, config.rules, config.device_geofences) == (
        (), (), (), ())
    assert [o.id for o in config.organisations] == [1]
    assert store.rule_states() == {}


# -- migration from 0002 -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def empty_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty database on SQLite or PostGIS."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
    else:
        yield request.getfixturevalue("fresh_postgis_url")


OLD_EVENTS = sa.table("events", sa.column("device_id"), sa.column("type"),
                      sa.column("event_time", UTCDateTime()), sa.column("position_id"),
                      sa.column("attributes", sa.JSON()), sa.column("alarm"))
OLD_POSITIONS = sa.table(
    "positions", *(sa.column(name) for name in (
        "device_id", "protocol", "valid", "latitude", "longitude")),
    sa.column("attributes", sa.JSON()),
    *(sa.column(name, UTCDateTime()) for name in ("server_time", "device_time", "fix_time")))
OLD_COMMANDS = sa.table("commands", sa.column("device_id"), sa.column("type"),
                        sa.column("attributes", sa.JSON()), sa.column("status"),
                        sa.column("created", UTCDateTime()))


def test_migration_from_0002_keeps_data_and_turns_alarms_into_subjects(empty_url):
    """Rebuilding devices and events on SQLite must not cascade-delete anything."""
    store = SqlStore(empty_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0002")
    with store.engine.begin() as conn:
        device_id = conn.execute(sa.text(
            "INSERT INTO devices (unique_id, name, organisation_id) "
            "VALUES ('old', 'Old van', 1) RETURNING id")).scalar_one()
        conn.execute(sa.insert(OLD_POSITIONS).values(
            device_id=device_id, protocol="gt06", valid=True, latitude=52.5, longitude=13.4,
            attributes={}, server_time=at(1), device_time=at(1), fix_time=at(1)))
        conn.execute(sa.insert(OLD_EVENTS).values(
            device_id=device_id, type="alarm", event_time=at(1), position_id=None,
            attributes={"alarm": "sos"}, alarm="sos"))
        conn.execute(sa.insert(OLD_COMMANDS).values(
            device_id=device_id, type="engineStop", attributes={}, status="queued",
            created=at(1)))
    try:
        store.migrate()
        [event] = store.events(ADMIN, device_id, at(0), at(2))
        assert (event.type, event.attributes, event.geofence_id) == (
            "alarm", {"alarm": "sos"}, None)
        with store.engine.connect() as conn:
            assert conn.execute(select(events.c.subject)).scalars().all() == ["sos"]
        assert store.count_positions(device_id) == 1
        assert [c.type for c in store.queued_commands([device_id])] == ["engineStop"]
        device = store.device_by_unique_id("old")
        assert (device.name, device.group_id, device.attributes) == ("Old van", None, {})
        assert [o.timezone for o in store.organisations()] == ["UTC"]
        assert store.config_revision() == 0
        store.write_batch(Batch(events=(NewEvent(device_id, "alarm", at(1), {"alarm": "sos"}),
                                        NewEvent(device_id, "alarm", at(1),
                                                 {"alarm": "powerCut"}))))
        assert len(store.events(ADMIN, device_id, at(0), at(2))) == 2
        # Foreign keys are back on after migrating: cascades work.
        delete_device(store, device_id)
        assert store.count_positions() == 0
    finally:
        store.close()
