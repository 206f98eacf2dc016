"""Devices through the API: create, duplicate, delete and their visibility across
organisations; the list's keyword / limit / offset / excludeAttributes; Traccar's
0 ids; accumulators."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from tests.web.harness import ADMIN, ALICE, BOB, T0, make_world
from tracker.models import Batch, NewPosition
from web.schemas import DeviceOut


@pytest.fixture
def world(tmp_path):
    changes = []
    world = make_world(tmp_path / "tracker.db", config_changed=lambda: changes.append(1))
    world.changes = changes
    return world


def call(world, method, path, body=None, *, auth=ALICE):
    raw = b"" if body is None else json.dumps(body).encode()
    return world.client.request(method, path, auth=auth, body=raw,
                                headers={"Content-Type": "application/json"})


def ok(response, status=200):
    assert response.status == status, response.body
    return response.json() if response.body else None


def message(response, status):
    assert response.status == status, response.body
    return response.json()["message"]


def listed(world, auth=ALICE, **params):
    return ok(call(world, "GET", "/api/devices?" + urllib.parse.urlencode(params, doseq=True),
                   auth=auth))


def names(devices):
    return [device["name"] for device in devices]


def fix(device_id, minutes, **attributes):
    time = T0 + dt.timedelta(minutes=minutes)
    return NewPosition(device_id=device_id, protocol="gt06", server_time=time, device_time=time,
                       fix_time=time, valid=True, latitude=52.5, longitude=13.4,
                       attributes=attributes)


# -- create -------------------------------------------------------------------------------

def test_post_creates_in_the_callers_organisation_with_traccar_shape(world):
    created = ok(call(world, "POST", "/api/devices",
                      {"name": " Van 7 ", "uniqueId": "777", "groupId": 0, "phone": "ignored",
                       "attributes": {"speedLimit": 40}}))
    TypeAdapter(DeviceOut).validate_python(created)
    assert created == {
        "id": created["id"], "name": "Van 7", "uniqueId": "777", "status": "unknown",
        "disabled": False, "lastUpdate": None, "positionId": 0, "groupId": 0, "calendarId": 0,
        "phone": None, "model": None, "contact": None, "category": None,
        "attributes": {"speedLimit": 40}}
    assert world.changes == [1]
    assert ok(call(world, "GET", f"/api/devices/{created['id']}")) == created
    assert world.store.device_by_unique_id("777").organisation_id == 1
    assert message(call(world, "GET", f"/api/devices/{created['id']}", auth=BOB), 404)
    bobs = ok(call(world, "POST", "/api/devices", {"name": "B", "uniqueId": "778"}, auth=BOB))
    assert world.store.device_by_unique_id("778").organisation_id == world.other_organisation_id
    assert bobs["id"] not in [d["id"] for d in listed(world)]


def test_post_with_a_group_of_the_callers_organisation(world):
    group = ok(call(world, "POST", "/api/groups", {"name": "Vans"}))
    created = ok(call(world, "POST", "/api/devices",
                      {"name": "Van", "uniqueId": "42", "groupId": group["id"]}))
    assert created["groupId"] == group["id"]
    theirs = ok(call(world, "POST", "/api/groups", {"name": "Theirs"}, auth=BOB))
    response = call(world, "POST", "/api/devices",
                    {"name": "Van", "uniqueId": "43", "groupId": theirs["id"]})
    assert response.status == 404
    assert world.store.device_by_unique_id("43") is None


def test_a_taken_unique_id_is_a_400_even_in_another_organisation(world):
    taken = world.devices["d3"].unique_id   # Bob's
    before = len(world.changes)
    text = message(call(world, "POST", "/api/devices", {"name": "Mine", "uniqueId": taken}), 400)
    assert text == f"uniqueId: {taken!r} is taken"
    assert len(world.changes) == before
    assert world.store.device_by_unique_id(taken).name == "Bob's car"


@pytest.mark.parametrize("body, expected", [
    ({"name": "Van"}, "uniqueId: required"),
    ({"name": "Van", "uniqueId": ""}, "uniqueId: required"),
    ({"name": "Van", "uniqueId": 123}, "uniqueId: required"),
    ({"name": "Van", "uniqueId": " 12"}, "uniqueId: must not start or end with whitespace"),
    ({"name": "Van", "uniqueId": "1" * 129}, "uniqueId: at most 128 characters"),
    ({"uniqueId": "12"}, "name: required"),
    ({"name": "Van", "uniqueId": "12", "groupId": -1}, "groupId: must be an id"),
    ({"name": "Van", "uniqueId": "12", "attributes": {"speedLimit": -5}}, "attributes.speedLimit"),
])
def test_post_refuses_bad_bodies_naming_the_field(world, body, expected):
    assert message(call(world, "POST", "/api/devices", body), 400).startswith(expected)
    assert len(world.store.devices()) == 3 and world.changes == []


# -- delete -------------------------------------------------------------------------------

def test_delete_removes_the_device_and_its_positions(world):
    d1 = world.devices["d1"]
    world.store.write_batch(Batch(positions=(fix(d1.id, 1),)))
    assert call(world, "DELETE", f"/api/devices/{d1.id}").status == 204
    assert world.changes == [1]
    assert message(call(world, "GET", f"/api/devices/{d1.id}"), 404) == "no such resource"
    assert world.store.count_positions(d1.id) == 0
    assert names(listed(world)) == ["Truck 2"]


def test_delete_of_an_invisible_or_unknown_device_is_the_same_404(world):
    d3 = world.devices["d3"]
    for path in (f"/api/devices/{d3.id}", "/api/devices/999999"):
        assert message(call(world, "DELETE", path), 404) == "no such resource"
    assert world.store.visible_device(None, d3.id) is not None and world.changes == []
    assert call(world, "DELETE", f"/api/devices/{d3.id}", auth=ADMIN).status == 204


# -- the list -----------------------------------------------------------------------------

@pytest.fixture
def fleet(world):
    """Alice's organisation: Truck 1, Truck 2, then these five."""
    for number, name in enumerate(["Van A", "van b", "Car", "Big truck", "50%_off"]):
        world.store.add_device(f"5{number:05d}", name)
    return world


@pytest.mark.parametrize("params, expected", [
    ({}, ["Truck 1", "Truck 2", "Van A", "van b", "Car", "Big truck", "50%_off"]),
    ({"limit": 2}, ["Truck 1", "Truck 2"]),
    ({"limit": 2, "offset": 2}, ["Van A", "van b"]),
    ({"offset": 5}, ["Big truck", "50%_off"]),
    ({"offset": 7}, []),
    ({"limit": 0}, ["Truck 1", "Truck 2", "Van A", "van b", "Car", "Big truck", "50%_off"]),
    ({"keyword": "truck"}, ["Truck 1", "Truck 2", "Big truck"]),
    ({"keyword": "VAN"}, ["Van A", "van b"]),
    ({"keyword": "truck", "limit": 1, "offset": 1}, ["Truck 2"]),
    ({"keyword": "50000"}, ["Van A", "van b", "Car", "Big truck", "50%_off"]),   # uniqueId
    ({"keyword": "%_"}, ["50%_off"]),
    ({"keyword": "nothing"}, []),
    ({"keyword": "", "limit": 1}, ["Truck 1"]),
    # id / uniqueId select, the keyword narrows them down
    ({"keyword": "truck", "uniqueId": ["100000000000001", "500002"]}, ["Truck 1"]),
])
def test_keyword_limit_offset(fleet, params, expected):
    assert names(listed(fleet, **params)) == expected


def test_bob_pages_only_through_his_organisation(fleet):
    assert names(listed(fleet, auth=BOB, keyword="car")) == ["Bob's car"]
    assert names(listed(fleet, auth=BOB, offset=1)) == []
    assert names(listed(fleet, auth=ADMIN, keyword="car")) == ["Bob's car", "Car"]
    assert names(listed(fleet, auth=ADMIN, limit=1, offset=2)) == ["Bob's car"]


def test_exclude_attributes_sends_an_empty_object(world):
    d1 = world.devices["d1"]
    ok(call(world, "PUT", f"/api/devices/{d1.id}", {"name": "Truck 1",
                                                  "attributes": {"speedLimit": 40}}))
    (full,) = listed(world, id=d1.id)
    assert full["attributes"] == {"speedLimit": 40}
    for value in ("true", "TRUE"):
        (bare,) = listed(world, id=d1.id, excludeAttributes=value)
        assert bare == {**full, "attributes": {}}
    assert listed(world, id=d1.id, excludeAttributes="false") == [full]


@pytest.mark.parametrize("query, expected", [
    ("limit=x", "limit must be a non-negative integer"),
    ("limit=-1", "limit must be a non-negative integer"),
    ("offset=1&offset=2", "offset may be given only once"),
    ("excludeAttributes=yes", "excludeAttributes must be true or false"),
    ("keyword=%00", "keyword"),
])
def test_bad_list_parameters_are_a_400_naming_them(world, query, expected):
    assert message(call(world, "GET", "/api/devices?" + query), 400).startswith(expected)


def test_unset_ids_are_0_as_traccar(world):
    world.store.add_device("900", "Never seen")
    (device,) = listed(world, uniqueId="900")
    assert (device["positionId"], device["groupId"], device["calendarId"]) == (0, 0, 0)
    d1 = world.devices["d1"]
    world.store.write_batch(Batch(positions=(fix(d1.id, 1),)))
    (device,) = listed(world, id=d1.id)
    assert device["positionId"] == world.store.visible_device(None, d1.id).position_id > 0


# -- accumulators -------------------------------------------------------------------------

def test_accumulators_round_trip_through_the_latest_position(world):
    d1 = world.devices["d1"]
    world.store.write_batch(Batch(positions=(fix(d1.id, 1, hours=60_000, sat=5),)))
    path = f"/api/devices/{d1.id}/accumulators"
    response = call(world, "PUT", path, {"deviceId": d1.id, "totalDistance": 1500.5,
                                         "hours": 7_200_000})
    assert (response.status, response.body) == (204, b"")
    (latest,) = ok(call(world, "GET", f"/api/positions?deviceId={d1.id}"))
    assert latest["attributes"] == {"sat": 5, "totalDistance": 1500.5, "hours": 7_200_000}
    assert call(world, "PUT", path, {"hours": 3_600_000.4}).status == 204   # deviceId optional
    (latest,) = ok(call(world, "GET", f"/api/positions?deviceId={d1.id}"))
    assert (latest["attributes"]["totalDistance"], latest["attributes"]["hours"]) == (
        1500.5, 3_600_000)


def test_accumulators_without_a_position_are_a_400(world):
    device = world.store.add_device("900", "Never seen")
    text = message(call(world, "PUT", f"/api/devices/{device.id}/accumulators",
                        {"totalDistance": 1}), 400)
    assert text == f"device {device.id} has no position yet to set accumulators on"


def test_accumulators_of_an_invisible_device_are_a_404_and_change_nothing(world):
    d3 = world.devices["d3"]
    world.store.write_batch(Batch(positions=(fix(d3.id, 1),)))
    path = f"/api/devices/{d3.id}/accumulators"
    assert message(call(world, "PUT", path, {"totalDistance": 1}), 404) == "no such resource"
    (latest,) = ok(call(world, "GET", f"/api/positions?deviceId={d3.id}", auth=BOB))
    assert "totalDistance" not in latest["attributes"]
    assert call(world, "PUT", path, {"totalDistance": 1}, auth=BOB).status == 204


@pytest.mark.parametrize("body, expected", [
    ({}, "totalDistance or hours: at least one is required"),
    ({"totalDistance": -1}, "totalDistance: must be a number from 0 to 2^53"),
    ({"hours": "5"}, "hours: must be a number"),
    ({"hours": True}, "hours: must be a number"),
    ({"hours": 2 ** 53 + 1}, "hours: must be a number"),
    ({"deviceId": 999999, "hours": 1}, "deviceId: must be the path's device id"),
    ({"deviceId": True, "hours": 1}, "deviceId: must be the path's device id"),
])
def test_bad_accumulators_are_a_400(world, body, expected):
    d1 = world.devices["d1"]
    world.store.write_batch(Batch(positions=(fix(d1.id, 1),)))
    path = f"/api/devices/{d1.id}/accumulators"
    assert message(call(world, "PUT", path, body), 400).startswith(expected)
    (latest,) = ok(call(world, "GET", f"/api/positions?deviceId={d1.id}"))
    assert latest["attributes"] == {}


# -- robustness ---------------------------------------------------------------------------

device_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2 ** 60) | st.sampled_from(["", " x", "7", "%"])
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["name", "uniqueId", "groupId", "attributes", "speedLimit", "deviceId",
                         "totalDistance", "hours", "id"]), inner, max_size=5),
    max_leaves=10)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/api/devices", "/api/devices/{d1}/accumulators"]),
       body=device_values)
def test_random_bodies_never_give_a_server_error(world, path, body):
    d1 = world.devices["d1"]
    world.store.write_batch(Batch(positions=(fix(d1.id, 1),)))   # idempotent
    response = call(world, "POST" if path == "/api/devices" else "PUT",
                    path.format(d1=d1.id), body)
    assert response.status in (200, 204, 400, 404), response.body
    json.loads(response.body or b"null")
