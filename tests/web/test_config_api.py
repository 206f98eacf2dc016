"""Configuration over the REST API: geofences, permissions, groups, device settings,
calendars, rules, and the event reads; scoping, errors and config_changed."""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.web.harness import ADMIN, ALICE, BOB, T0, make_world
from tracker.models import Batch, NewEvent, NewPosition

JSON = "application/json; charset=utf-8"
CIRCLE = {"name": "Depot", "area": "CIRCLE (52.5 13.4, 200)"}
SQUARE_WKT = "POLYGON ((13.0 52.0, 13.1 52.0, 13.1 52.1, 13.0 52.1, 13.0 52.0))"
CALENDAR = {"intervals": [{"days": ["fri", "mon"], "from": "08:00", "to": "17:30"}]}
RULE = {"name": "Fridge warm", "when": {"attribute": "temperature1", "operator": ">",
                                        "value": 8, "for": 300},
        "then": {"type": "sensorThreshold", "message": "{device}: {value}"}}


@pytest.fixture
def world(tmp_path):
    changes = []
    world = make_world(tmp_path / "tracker.db", config_changed=lambda: changes.append(1))
    world.changes = changes
    return world


def call(world, method, path, body=None, *, auth=ALICE, headers=None):
    all_headers = {"Content-Type": "application/json"}
    all_headers.update(headers or {})
    raw = b"" if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    return world.client.request(method, path, auth=auth, body=raw, headers=all_headers)


def ok(response, status=200):
    assert response.status == status, response.body
    return response.json() if response.body else None


def error(response, status):
    assert response.status == status, response.body
    assert response.header("Content-Type") == JSON
    body = response.json()
    assert body["status"] == status
    return body["message"]


def q(**params):
    return "?" + urllib.parse.urlencode(params, doseq=True)


# -- geofences -----------------------------------------------------------------------------

def test_traccar_circle_gives_its_area_and_a_point_with_radius(world):
    created = ok(call(world, "POST", "/api/geofences", CIRCLE))
    assert created == {
        "id": created["id"], "name": "Depot", "description": "",
        "area": "CIRCLE (52.5 13.4, 200)", "calendarId": None, "attributes": {},
        "geojson": {"type": "Feature", "geometry": {"type": "Point", "coordinates": [13.4, 52.5]},
                    "properties": {"radius_m": 200.0}},
    }
    assert ok(call(world, "GET", f"/api/geofences/{created['id']}")) == created
    assert ok(call(world, "GET", "/api/geofences")) == [created]


def test_traccar_polygon_is_closed_and_kept_in_lat_lon(world):
    created = ok(call(world, "POST", "/api/geofences", {
        "name": "Yard", "description": "north gate", "area": "POLYGON ((52 13, 52.1 13, 52.1 13.1))",
        "calendarId": 0, "attributes": {"speedLimit": 10, "colour": "red"}}))
    assert created["area"] == "POLYGON ((52 13, 52.1 13, 52.1 13.1, 52 13))"
    assert created["geojson"]["geometry"] == {
        "type": "Polygon", "coordinates": [[[13.0, 52.0], [13.0, 52.1], [13.1, 52.1], [13.0, 52.0]]]}
    assert created["description"] == "north gate"
    assert created["attributes"] == {"speedLimit": 10, "colour": "red"}   # unknown keys kept


def test_wkt_in_is_lon_lat(world):
    created = ok(call(world, "POST", "/api/geofences", {"name": "Square", "wkt": SQUARE_WKT}))
    assert created["area"] == "POLYGON ((52 13, 52 13.1, 52.1 13.1, 52.1 13, 52 13))"
    assert created["geojson"]["geometry"]["coordinates"][0][1] == [13.1, 52.0]


def test_a_geojson_feature_is_a_whole_body_and_comes_back_as_a_feature_collection(world):
    feature = {"type": "Feature", "geometry": {"type": "LineString",
                                               "coordinates": [[13.0, 52.0], [13.2, 52.1]]},
               "properties": {"width_m": 60, "name": "Road", "description": "B96",
                              "attributes": {"speedLimit": 43.2}}}
    created = ok(call(world, "POST", "/api/geofences", feature))
    assert (created["name"], created["description"]) == ("Road", "B96")
    assert created["area"] == "LINESTRING (52 13, 52.1 13.2)"
    # Traccar's corridor half-width is shown for Traccar clients
    assert created["attributes"] == {"speedLimit": 43.2, "polylineDistance": 30.0}

    for how in ({"path": "/api/geofences?format=geojson"},
                {"path": "/api/geofences", "headers": {"Accept": "application/geo+json"}}):
        response = call(world, "GET", how["path"], headers=how.get("headers"))
        assert response.status == 200
        assert response.header("Content-Type") == "application/geo+json"
        assert response.json() == {"type": "FeatureCollection", "features": [{
            "type": "Feature", "id": created["id"],
            "geometry": {"type": "LineString", "coordinates": [[13.0, 52.0], [13.2, 52.1]]},
            "properties": {"width_m": 60.0, "name": "Road", "description": "B96",
                           "calendarId": None, "attributes": {"speedLimit": 43.2}}}]}
    one = call(world, "GET", f"/api/geofences/{created['id']}?format=geojson")
    assert one.header("Content-Type") == "application/geo+json"
    assert one.json()["id"] == created["id"] and one.json()["type"] == "Feature"


def test_geojson_key_and_a_feature_round_trip(world):
    """A Feature from the FeatureCollection can be PUT back and changes nothing."""
    created = ok(call(world, "POST", "/api/geofences", {
        "name": "Circle", "geojson": {"type": "Feature", "geometry": {
            "type": "Point", "coordinates": [2.35, 48.85]}, "properties": {"radius_m": 150}}}))
    assert created["area"] == "CIRCLE (48.85 2.35, 150)"
    feature = call(world, "GET", f"/api/geofences/{created['id']}?format=geojson").json()
    assert ok(call(world, "PUT", f"/api/geofences/{created['id']}", feature)) == created


def test_get_result_put_back_with_area_and_geojson_is_accepted(world):
    created = ok(call(world, "POST", "/api/geofences", CIRCLE))
    again = dict(created, name="Depot 2")
    assert ok(call(world, "PUT", f"/api/geofences/{created['id']}", again))["name"] == "Depot 2"
    moved = dict(again, area="CIRCLE (52.6 13.4, 200)")   # area edited, geojson stale
    message = error(call(world, "PUT", f"/api/geofences/{created['id']}", moved), 400)
    assert "describe different zones" in message


@pytest.mark.parametrize("body, expected", [
    ({"name": "x", "area": "POLYGON ((0 0, 1 1, 0 1, 1 0))"}, "Self-intersection"),
    ({"name": "x", "area": "CIRCLE (95 13.4, 200)"}, "latitude 95.0 out of range"),
    ({"name": "x", "area": "CIRCLE (52.5 13.4, 0)"}, "radius 0.0 m out of range"),
    ({"name": "x", "wkt": "POLYGON ((0 0, 1 0, 1 1))"}, "wkt: "),
    ({"name": "x", "geojson": {"type": "Point", "coordinates": [13.4, 52.5]}}, "geojson: "),
    ({"name": "x"}, "area: required"),
    ({"area": "CIRCLE (52.5 13.4, 200)"}, "name: required"),
    ({"name": " ", "area": "CIRCLE (52.5 13.4, 200)"}, "name: must not be empty"),
    ({"name": "x" * 201, "area": "CIRCLE (52.5 13.4, 200)"}, "name: at most 200"),
    (dict(CIRCLE, attributes={"speedLimit": -1}), "attributes.speedLimit: must be a number >= 0"),
    (dict(CIRCLE, attributes={"dwellMinutes": 0}), "attributes.dwellMinutes: must be a number > 0"),
    (dict(CIRCLE, attributes={"hysteresisFixes": 1.5}), "attributes.hysteresisFixes: must be an integer"),
    (dict(CIRCLE, attributes={"hysteresisMeters": "far"}), "attributes.hysteresisMeters"),
    (dict(CIRCLE, attributes=[1]), "attributes: must be an object"),
    (dict(CIRCLE, calendarId="3"), "calendarId: must be an id"),
    ({"name": "x", "area": "LINESTRING (52 13, 52.1 13.1)", "attributes": {"polylineDistance": 0}},
     "attributes.polylineDistance: must be a number > 0"),
])
def test_invalid_geofences_are_400_naming_the_problem(world, body, expected):
    message = error(call(world, "POST", "/api/geofences", body), 400)
    assert expected in message
    assert ok(call(world, "GET", "/api/geofences")) == []
    assert world.changes == []


def test_put_replaces_the_geofence_and_delete_removes_it(world):
    created = ok(call(world, "POST", "/api/geofences", dict(CIRCLE, description="old",
                                                            attributes={"speedLimit": 5})))
    path = f"/api/geofences/{created['id']}"
    replaced = ok(call(world, "PUT", path, {"id": created["id"], "name": "Depot B",
                                            "wkt": SQUARE_WKT}))
    assert replaced["name"] == "Depot B"
    assert replaced["description"] == "" and replaced["attributes"] == {}   # full replacement
    assert replaced["geojson"]["geometry"]["type"] == "Polygon"
    assert ok(call(world, "GET", path)) == replaced
    assert call(world, "DELETE", path).status == 204
    assert error(call(world, "GET", path), 404) == "no such resource"
    assert error(call(world, "DELETE", path), 404) == "no such resource"


def test_put_with_another_id_in_the_body_is_400(world):
    created = ok(call(world, "POST", "/api/geofences", CIRCLE))
    message = error(call(world, "PUT", f"/api/geofences/{created['id']}",
                         dict(CIRCLE, id=created["id"] + 1)), 400)
    assert message.startswith("id:")


def test_missing_geofence_put_is_404(world):
    assert error(call(world, "PUT", "/api/geofences/77", CIRCLE), 404) == "no such resource"


def test_calendar_of_another_organisation_is_404(world):
    theirs = ok(call(world, "POST", "/api/calendars", {"name": "B", "data": CALENDAR}, auth=BOB))
    message = error(call(world, "POST", "/api/geofences", dict(CIRCLE, calendarId=theirs["id"])), 404)
    assert "calendar" in message
    mine = ok(call(world, "POST", "/api/calendars", {"name": "A", "data": CALENDAR}))
    created = ok(call(world, "POST", "/api/geofences", dict(CIRCLE, calendarId=mine["id"])))
    assert created["calendarId"] == mine["id"]


# -- permissions ---------------------------------------------------------------------------

def test_link_a_zone_to_a_device_and_a_group_then_unlink(world):
    zone = ok(call(world, "POST", "/api/geofences", CIRCLE))
    other = ok(call(world, "POST", "/api/geofences", dict(CIRCLE, name="Other")))
    group = ok(call(world, "POST", "/api/groups", {"name": "Vans"}))
    d1 = world.devices["d1"]
    device_link = {"deviceId": d1.id, "geofenceId": zone["id"]}
    group_link = {"groupId": group["id"], "geofenceId": other["id"]}
    assert call(world, "POST", "/api/permissions", device_link).status == 204
    assert call(world, "POST", "/api/permissions", device_link).status == 204   # idempotent
    assert call(world, "POST", "/api/permissions", group_link).status == 204

    def linked(**params):
        return [g["id"] for g in ok(call(world, "GET", "/api/geofences" + q(**params)))]

    assert linked(deviceId=d1.id) == [zone["id"]]
    assert linked(groupId=group["id"]) == [other["id"]]
    assert linked(deviceId=world.devices["d2"].id) == []
    assert linked(deviceId=d1.id, all="true") == [zone["id"]]   # ?all is ignored
    assert linked() == [zone["id"], other["id"]]

    assert call(world, "DELETE", "/api/permissions", device_link).status == 204
    assert linked(deviceId=d1.id) == []
    assert "not linked" in error(call(world, "DELETE", "/api/permissions", device_link), 404)
    assert call(world, "DELETE", "/api/permissions", group_link).status == 204
    assert linked(groupId=group["id"]) == []


@pytest.mark.parametrize("body", [
    {"userId": 1, "deviceId": 1},
    {"deviceId": 1},
    {"deviceId": 1, "groupId": 1, "geofenceId": 1},
    {"deviceId": 1, "geofenceId": 1, "userId": 1},
    {"notificationId": 1, "geofenceId": 1},
])
def test_other_permissions_are_400(world, body):
    assert error(call(world, "POST", "/api/permissions", body), 400).startswith(
        "unsupported permission")


def test_permission_ids_must_be_ids(world):
    message = error(call(world, "POST", "/api/permissions", {"deviceId": "1", "geofenceId": 1}), 400)
    assert message.startswith("deviceId:")


def test_permissions_across_organisations_are_404(world):
    zone = ok(call(world, "POST", "/api/geofences", CIRCLE))
    bobs_device = world.devices["d3"]
    error(call(world, "POST", "/api/permissions",
               {"deviceId": bobs_device.id, "geofenceId": zone["id"]}), 404)
    error(call(world, "POST", "/api/permissions",
               {"deviceId": bobs_device.id, "geofenceId": zone["id"]}, auth=BOB), 404)
    assert world.changes == [1]   # only the POST of the zone


def test_geofence_filters_of_invisible_devices_and_groups_are_404(world):
    bobs_group = ok(call(world, "POST", "/api/groups", {"name": "B"}, auth=BOB))
    message = error(call(world, "GET", f"/api/geofences?deviceId={world.devices['d3'].id}"), 404)
    assert message == f"no device with id {world.devices['d3'].id}"
    assert error(call(world, "GET", "/api/geofences?deviceId=999"), 404) == "no device with id 999"
    assert error(call(world, "GET", f"/api/geofences?groupId={bobs_group['id']}"), 404).startswith(
        "no group with id")
    assert error(call(world, "GET", "/api/geofences?deviceId=x"), 400).startswith("deviceId")


# -- groups and device settings ------------------------------------------------------------

def test_groups_crud_in_traccar_shape(world):
    created = ok(call(world, "POST", "/api/groups", {"name": "Vans", "groupId": 0,
                                                     "attributes": {"speedLimit": 40}}))
    assert created == {"id": created["id"], "name": "Vans", "groupId": None,
                       "attributes": {"speedLimit": 40}}
    path = f"/api/groups/{created['id']}"
    assert ok(call(world, "GET", "/api/groups")) == [created]
    assert ok(call(world, "GET", path)) == created
    renamed = ok(call(world, "PUT", path, {"id": created["id"], "name": "Trucks"}))
    assert renamed == dict(created, name="Trucks", attributes={})
    assert call(world, "DELETE", path).status == 204
    assert ok(call(world, "GET", "/api/groups")) == []
    error(call(world, "GET", path), 404)


@pytest.mark.parametrize("body, expected", [
    ({"name": "x", "groupId": 3}, "groupId: groups inside groups are not supported"),
    ({"name": "x", "attributes": {"speedLimit": "fast"}}, "attributes.speedLimit"),
    ({"name": "x", "attributes": {"hysteresisFixes": 0}}, "attributes.hysteresisFixes"),
    ({}, "name: required"),
])
def test_invalid_groups_are_400(world, body, expected):
    assert expected in error(call(world, "POST", "/api/groups", body), 400)


def test_device_put_changes_name_group_and_settings(world):
    group = ok(call(world, "POST", "/api/groups", {"name": "Vans"}))
    d1 = world.devices["d1"]
    path = f"/api/devices/{d1.id}"
    device = ok(call(world, "GET", path))
    assert device["groupId"] == 0 and device["attributes"] == {}
    device.update(name="Van 1", groupId=group["id"], attributes={"speedLimit": 48.6, "note": "x"})
    changed = ok(call(world, "PUT", path, device))
    assert (changed["name"], changed["groupId"], changed["attributes"]) == (
        "Van 1", group["id"], {"speedLimit": 48.6, "note": "x"})
    listed = [d for d in ok(call(world, "GET", "/api/devices")) if d["id"] == d1.id]
    assert listed == [changed]
    assert world.store.device_by_unique_id(d1.unique_id).attributes == {"speedLimit": 48.6,
                                                                        "note": "x"}
    cleared = ok(call(world, "PUT", path, dict(changed, groupId=0, attributes={})))
    assert (cleared["groupId"], cleared["attributes"]) == (0, {})


def test_device_put_cannot_change_the_unique_id(world):
    d1 = world.devices["d1"]
    message = error(call(world, "PUT", f"/api/devices/{d1.id}",
                         {"name": "x", "uniqueId": "999"}), 400)
    assert message.startswith("uniqueId:")
    assert world.store.device_by_unique_id(d1.unique_id).name == "Truck 1"


def test_device_put_errors(world):
    d1, d3 = world.devices["d1"], world.devices["d3"]
    bobs_group = ok(call(world, "POST", "/api/groups", {"name": "B"}, auth=BOB))
    assert "group" in error(call(world, "PUT", f"/api/devices/{d1.id}",
                                 {"name": "x", "groupId": bobs_group["id"]}), 404)
    assert error(call(world, "PUT", f"/api/devices/{d3.id}", {"name": "x"}), 404) == (
        "no such resource")
    assert error(call(world, "GET", f"/api/devices/{d3.id}"), 404) == "no such resource"
    assert error(call(world, "PUT", f"/api/devices/{d1.id}",
                      {"name": "x", "attributes": {"speedLimit": True}}), 400).startswith(
        "attributes.speedLimit")
    assert error(call(world, "PUT", f"/api/devices/{d1.id}", b"{nope"), 400) == "malformed JSON body"
    assert ok(call(world, "GET", f"/api/devices/{d3.id}", auth=BOB))["name"] == "Bob's car"


def test_deleting_a_group_leaves_its_devices_without_one(world):
    group = ok(call(world, "POST", "/api/groups", {"name": "Vans"}))
    d1 = world.devices["d1"]
    ok(call(world, "PUT", f"/api/devices/{d1.id}", {"name": "Truck 1", "groupId": group["id"]}))
    assert call(world, "DELETE", f"/api/groups/{group['id']}").status == 204
    assert ok(call(world, "GET", f"/api/devices/{d1.id}"))["groupId"] == 0


# -- calendars -----------------------------------------------------------------------------

def test_calendars_crud_with_our_schedule_object(world):
    created = ok(call(world, "POST", "/api/calendars", {"name": "Office", "data": CALENDAR,
                                                        "attributes": {"x": 1}}))
    assert created == {"id": created["id"], "name": "Office", "attributes": {}, "data": {
        "intervals": [{"days": ["mon", "fri"], "from": "08:00", "to": "17:30"}]}}   # canonical
    path = f"/api/calendars/{created['id']}"
    assert ok(call(world, "GET", "/api/calendars")) == [created]
    night = {"intervals": [{"from": "22:00", "to": "06:00"}]}
    changed = ok(call(world, "PUT", path, {"name": "Night", "data": night}))
    assert changed["data"]["intervals"][0]["days"] == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert ok(call(world, "GET", path)) == changed
    assert call(world, "DELETE", path).status == 204
    assert ok(call(world, "GET", "/api/calendars")) == []


@pytest.mark.parametrize("body, expected", [
    ({"name": "x", "data": "QkVHSU46VkNBTEVOREFS"}, "Traccar's iCalendar is not supported"),
    ({"name": "x", "data": {"intervals": [{"from": "25:00", "to": "26:00"}]}},
     "data.intervals[0].from: expected HH:MM"),
    ({"name": "x", "data": {"intervals": []}}, "data.intervals: at least one"),
    ({"name": "x", "data": []}, "data: expected an object"),
    ({"name": "x"}, "data: required"),
])
def test_invalid_calendars_are_400_naming_the_field(world, body, expected):
    assert expected in error(call(world, "POST", "/api/calendars", body), 400)


def test_calendar_named_by_a_rule_cannot_be_deleted_409(world):
    calendar = ok(call(world, "POST", "/api/calendars", {"name": "Office", "data": CALENDAR}))
    rule = ok(call(world, "POST", "/api/rules", dict(RULE, calendar=calendar["id"])))
    message = error(call(world, "DELETE", f"/api/calendars/{calendar['id']}"), 409)
    assert f"rule {rule['id']}" in message
    assert call(world, "DELETE", f"/api/rules/{rule['id']}").status == 204
    assert call(world, "DELETE", f"/api/calendars/{calendar['id']}").status == 204


def test_geofence_named_by_a_rule_cannot_be_deleted_409(world):
    zone = ok(call(world, "POST", "/api/geofences", CIRCLE))
    ok(call(world, "POST", "/api/rules", dict(RULE, zone=zone["id"])))
    error(call(world, "DELETE", f"/api/geofences/{zone['id']}"), 409)
    assert ok(call(world, "GET", f"/api/geofences/{zone['id']}"))["name"] == "Depot"


# -- rules ---------------------------------------------------------------------------------

def test_rules_crud_flattened_and_canonical(world):
    zone = ok(call(world, "POST", "/api/geofences", CIRCLE))
    group = ok(call(world, "POST", "/api/groups", {"name": "Fridges"}))
    d1, d2 = world.devices["d1"], world.devices["d2"]
    created = ok(call(world, "POST", "/api/rules", dict(
        RULE, devices=[d2.id, d1.id], groups=[group["id"]], zone=zone["id"])))
    assert created == {
        "id": created["id"], "name": "Fridge warm", "enabled": True,
        "when": {"attribute": "temperature1", "operator": ">", "value": 8, "for": 300},
        "devices": sorted([d1.id, d2.id]), "groups": [group["id"]], "zone": zone["id"],
        "calendar": None, "then": {"type": "sensorThreshold", "message": "{device}: {value}"},
    }
    path = f"/api/rules/{created['id']}"
    assert ok(call(world, "GET", path)) == created
    assert ok(call(world, "GET", "/api/rules")) == [created]
    disabled = ok(call(world, "PUT", path, dict(created, enabled=False)))
    assert disabled == dict(created, enabled=False)
    sos = ok(call(world, "PUT", path, {"name": "SOS", "when": {"event": "alarm", "value": "sos"}}))
    assert sos["when"] == {"event": "alarm", "value": "sos"} and sos["enabled"] is True
    assert sos["then"] == {"type": "ruleTriggered"} and sos["zone"] is None
    assert call(world, "DELETE", path).status == 204
    assert ok(call(world, "GET", "/api/rules")) == []


@pytest.mark.parametrize("change, expected", [
    ({"when": {"attribute": "t", "operator": "~", "value": 1}}, "when.operator: must be one of"),
    ({"when": {"attribute": "t", "operator": ">", "value": "hot"}}, "when.value:"),
    ({"then": {"type": "alarm"}}, "then.alarm: required"),
    ({"then": {"message": "{nope}"}}, "then.message: unknown placeholder"),
    ({"devices": [999]}, "devices[0]: device 999 does not exist"),
    ({"zone": 999}, "zone: geofence 999 does not exist"),
    ({"calendar": 999}, "calendar: calendar 999 does not exist"),
    ({"colour": "red"}, "colour: unknown key"),
    ({"enabled": "yes"}, "enabled: must be true or false"),
    ({"name": ""}, "name: must not be empty"),
])
def test_rule_validation_errors_are_400_with_the_path(world, change, expected):
    message = error(call(world, "POST", "/api/rules", {**RULE, **change}), 400)
    assert message.startswith(expected), message


def test_rules_may_not_name_another_organisations_objects(world):
    bobs_zone = ok(call(world, "POST", "/api/geofences", CIRCLE, auth=BOB))
    d3 = world.devices["d3"]
    for change in ({"zone": bobs_zone["id"]}, {"devices": [d3.id]},
                   {"when": {"event": "geofenceEnter", "value": bobs_zone["id"]}}):
        assert "does not exist" in error(call(world, "POST", "/api/rules", {**RULE, **change}), 400)
    assert ok(call(world, "POST", "/api/rules", dict(RULE, devices=[d3.id]), auth=BOB))["devices"] == [
        d3.id]


# -- scoping -------------------------------------------------------------------------------

def test_another_organisations_objects_are_404_and_not_listed(world):
    ids = {
        "geofences": ok(call(world, "POST", "/api/geofences", CIRCLE))["id"],
        "groups": ok(call(world, "POST", "/api/groups", {"name": "G"}))["id"],
        "calendars": ok(call(world, "POST", "/api/calendars", {"name": "C", "data": CALENDAR}))["id"],
        "rules": ok(call(world, "POST", "/api/rules", RULE))["id"],
    }
    bodies = {"geofences": CIRCLE, "groups": {"name": "G"},
              "calendars": {"name": "C", "data": CALENDAR}, "rules": RULE}
    before = len(world.changes)
    for collection, object_id in ids.items():
        path = f"/api/{collection}/{object_id}"
        assert ok(call(world, "GET", f"/api/{collection}", auth=BOB)) == []
        assert error(call(world, "GET", path, auth=BOB), 404) == "no such resource"
        assert error(call(world, "PUT", path, bodies[collection], auth=BOB), 404) == "no such resource"
        assert error(call(world, "DELETE", path, auth=BOB), 404) == "no such resource"
        assert ok(call(world, "GET", path))["id"] == object_id   # still there for alice
        assert ok(call(world, "GET", path, auth=ADMIN))["id"] == object_id   # admin sees all
    assert len(world.changes) == before   # failed writes change nothing


def test_objects_are_created_in_the_callers_organisation(world):
    mine = ok(call(world, "POST", "/api/geofences", CIRCLE))
    theirs = ok(call(world, "POST", "/api/geofences", dict(CIRCLE, name="Bob's"), auth=BOB))
    assert [g["id"] for g in ok(call(world, "GET", "/api/geofences"))] == [mine["id"]]
    assert [g["id"] for g in ok(call(world, "GET", "/api/geofences", auth=BOB))] == [theirs["id"]]
    assert [g["id"] for g in ok(call(world, "GET", "/api/geofences", auth=ADMIN))] == [
        mine["id"], theirs["id"]]


# -- events --------------------------------------------------------------------------------

@pytest.fixture
def events(world):
    """Events of d1 (one tied to a position, one a geofence event), d2 and bob's d3."""
    d1, d2, d3 = (world.devices[k] for k in ("d1", "d2", "d3"))
    fix = T0 - dt.timedelta(minutes=10)
    world.store.write_batch(Batch(
        positions=(NewPosition(device_id=d1.id, protocol="gt06", server_time=fix,
                               device_time=fix, fix_time=fix, valid=True, latitude=52.5,
                               longitude=13.4),),
        events=(
            NewEvent(d1.id, "alarm", fix, {"alarm": "sos"}, fix_time=fix),
            NewEvent(d1.id, "geofenceEnter", T0 - dt.timedelta(minutes=5), geofence_id=7),
            NewEvent(d2.id, "deviceOnline", T0 - dt.timedelta(minutes=20)),
            NewEvent(d3.id, "alarm", T0 - dt.timedelta(minutes=1), {"alarm": "sos"}),
        )))
    window = {"from": (T0 - dt.timedelta(hours=1)).isoformat(), "to": T0.isoformat()}
    every = ok(call(world, "GET", "/api/reports/events" + q(**window), auth=ADMIN))
    return {(e["deviceId"], e["type"]): e for e in every}, window


def test_event_by_id_has_traccar_shape(world, events):
    by_key, _ = events
    d1 = world.devices["d1"]
    alarm = by_key[(d1.id, "alarm")]
    positions = world.store.positions(None, d1.id, T0 - dt.timedelta(hours=1), T0)
    assert ok(call(world, "GET", f"/api/events/{alarm['id']}")) == {
        "id": alarm["id"], "type": "alarm", "eventTime": "2024-06-01T11:50:00.000+00:00",
        "deviceId": d1.id, "positionId": positions[-1].id, "geofenceId": 0, "maintenanceId": 0,
        "attributes": {"alarm": "sos"},
    }
    enter = ok(call(world, "GET", f"/api/events/{by_key[(d1.id, 'geofenceEnter')]['id']}"))
    assert (enter["geofenceId"], enter["positionId"]) == (7, 0)


def test_events_of_another_organisation_or_missing_are_404(world, events):
    by_key, _ = events
    bobs = by_key[(world.devices["d3"].id, "alarm")]["id"]
    assert error(call(world, "GET", f"/api/events/{bobs}"), 404) == "no such resource"
    assert error(call(world, "GET", "/api/events/99999"), 404) == "no such resource"
    assert ok(call(world, "GET", f"/api/events/{bobs}", auth=BOB))["id"] == bobs
    assert error(call(world, "GET", "/api/events"), 404) == "no such resource"


def test_events_report_filters_oldest_first(world, events):
    _, window = events
    d1, d2, d3 = (world.devices[k] for k in ("d1", "d2", "d3"))

    def report(auth=ALICE, **params):
        return [(e["deviceId"], e["type"])
                for e in ok(call(world, "GET", "/api/reports/events" + q(**window, **params),
                                 auth=auth))]

    assert report() == [(d2.id, "deviceOnline"), (d1.id, "alarm"), (d1.id, "geofenceEnter")]
    assert report(deviceId=[d1.id]) == [(d1.id, "alarm"), (d1.id, "geofenceEnter")]
    assert report(deviceId=[d1.id, d2.id], type=["alarm", "deviceOnline"]) == [
        (d2.id, "deviceOnline"), (d1.id, "alarm")]
    assert report(type=["allEvents"]) == report()
    assert report(type=["geofenceEnter"]) == [(d1.id, "geofenceEnter")]
    assert report(auth=BOB) == [(d3.id, "alarm")]

    group = ok(call(world, "POST", "/api/groups", {"name": "Vans"}))
    ok(call(world, "PUT", f"/api/devices/{d2.id}", {"name": "Truck 2", "groupId": group["id"]}))
    assert report(groupId=[group["id"]]) == [(d2.id, "deviceOnline")]
    assert report(groupId=[group["id"]], deviceId=[d1.id], type="alarm") == [(d1.id, "alarm")]
    narrow = {"from": "2024-06-01T11:49:00Z", "to": "2024-06-01T11:50:00Z"}
    assert [e["type"] for e in ok(call(world, "GET", "/api/reports/events" + q(**narrow)))] == [
        "alarm"]   # inclusive bounds


@pytest.mark.parametrize("query, status, expected", [
    ("", 400, "from and to are required"),
    ("from=2024-06-01T00:00:00Z", 400, "from and to are required"),
    ("from=yesterday&to=2024-06-01T00:00:00Z", 400, "from is not an ISO 8601 time"),
    ("from=2024-06-01T00:00:00&to=2024-06-02T00:00:00Z", 400, "from needs a UTC offset"),
    ("from=2024-06-02T00:00:00Z&to=2024-06-01T00:00:00Z", 400, "from must not be after to"),
    ("from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z&deviceId=x", 400, "deviceId must be"),
    ("from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z&deviceId=999", 404, "no device with id 999"),
    ("from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z&groupId=999", 404, "no group with id 999"),
])
def test_events_report_parameters(world, query, status, expected):
    assert error(call(world, "GET", "/api/reports/events?" + query), status).startswith(expected)


def test_events_report_of_another_organisations_device_is_404(world):
    d3 = world.devices["d3"]
    query = q(**{"from": "2024-06-01T00:00:00Z", "to": "2024-06-02T00:00:00Z"}, deviceId=d3.id)
    assert error(call(world, "GET", "/api/reports/events" + query), 404) == f"no device with id {d3.id}"


# -- routing, errors, config_changed -------------------------------------------------------

@pytest.mark.parametrize("path", ["/api/geofences/abc", "/api/geofences/1/x", "/api/geofences/-1",
                                  "/api/rules/1.5", "/api/groups/%31x", "/api/reports",
                                  "/api/reports/nothing"])
def test_bad_item_paths_are_json_404(world, path):
    assert error(call(world, "GET", path), 404) == "no such resource"


@pytest.mark.parametrize("method, path, allow", [
    ("PATCH", "/api/geofences/1", "DELETE, GET, PUT, HEAD"),
    ("DELETE", "/api/geofences", "GET, POST, HEAD"),
    ("POST", "/api/devices/1", "DELETE, GET, PUT, HEAD"),
    ("PUT", "/api/events/1", "GET, HEAD"),
    ("GET", "/api/permissions", "DELETE, POST"),
    ("POST", "/api/reports/events", "GET, HEAD"),
])
def test_wrong_method_on_items_is_405(world, method, path, allow):
    response = call(world, method, path, {})
    assert response.status == 405
    assert response.header("Allow") == allow


def test_item_trailing_slash_and_head(world):
    created = ok(call(world, "POST", "/api/geofences", CIRCLE))
    full = call(world, "GET", f"/api/geofences/{created['id']}/")
    assert full.json() == created
    head = call(world, "HEAD", f"/api/geofences/{created['id']}")
    assert head.status == 200 and head.body == b""
    assert head.header("Content-Length") == str(len(full.body))


@pytest.mark.parametrize("body, content_type, status, expected", [
    (b"{nope", "application/json", 400, "malformed JSON body"),
    (b"[1]", "application/json", 400, "the JSON body must be an object"),
    (json.dumps(CIRCLE).encode(), "text/plain", 415, "send the body as application/json"),
])
def test_malformed_bodies(world, body, content_type, status, expected):
    for path in ("/api/geofences", "/api/groups", "/api/calendars", "/api/rules", "/api/permissions"):
        response = call(world, "POST", path, body, headers={"Content-Type": content_type})
        assert error(response, status) == expected
    assert world.changes == []


def test_config_changes_require_authentication_and_same_origin(world):
    assert call(world, "POST", "/api/geofences", CIRCLE, auth=None).status == 401
    cross = call(world, "POST", "/api/geofences", CIRCLE, headers={"Origin": "http://evil.example"})
    assert cross.status == 403
    assert world.changes == []


def test_config_changed_after_writes_and_not_after_reads(world):
    zone = ok(call(world, "POST", "/api/geofences", CIRCLE))
    assert world.changes == [1]
    for path in ("/api/geofences", f"/api/geofences/{zone['id']}", "/api/groups", "/api/rules",
                 "/api/calendars", "/api/devices", f"/api/devices/{world.devices['d1'].id}"):
        ok(call(world, "GET", path))
    call(world, "HEAD", "/api/geofences")
    assert world.changes == [1]
    ok(call(world, "PUT", f"/api/geofences/{zone['id']}", CIRCLE))
    group = ok(call(world, "POST", "/api/groups", {"name": "G"}))
    call(world, "POST", "/api/permissions", {"groupId": group["id"], "geofenceId": zone["id"]})
    call(world, "DELETE", "/api/permissions", {"groupId": group["id"], "geofenceId": zone["id"]})
    ok(call(world, "PUT", f"/api/devices/{world.devices['d1'].id}", {"name": "T"}))
    ok(call(world, "POST", "/api/calendars", {"name": "C", "data": CALENDAR}))
    ok(call(world, "POST", "/api/rules", RULE))
    call(world, "DELETE", f"/api/geofences/{zone['id']}")
    assert len(world.changes) == 9
    error(call(world, "DELETE", f"/api/geofences/{zone['id']}"), 404)
    assert len(world.changes) == 9


def test_a_failing_config_changed_is_logged_and_the_write_still_answers(tmp_path, logged_failures):
    def broken():
        raise RuntimeError("reload failed")

    world = make_world(tmp_path / "t.db", config_changed=broken)
    created = ok(call(world, "POST", "/api/geofences", CIRCLE))
    assert ok(call(world, "GET", f"/api/geofences/{created['id']}"))["name"] == "Depot"
    failures = [e for e in logged_failures if "log_failure" in e]
    assert [type(e["log_failure"].value) for e in failures] == [RuntimeError]
    logged_failures.clear()


def test_without_config_changed_writes_work(tmp_path):
    world = make_world(tmp_path / "t.db")
    assert call(world, "POST", "/api/geofences", CIRCLE).status == 200


# -- robustness -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "x", "CIRCLE (52.5 13.4, 200)", "POLYGON ((0 0, 1 0, 1 1))", "POINT (1 2)",
                       "08:00", "mon", ">", "alarm", "Feature", "Point", "Polygon", "{device}"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["name", "area", "wkt", "geojson", "attributes", "calendarId", "data",
                         "intervals", "from", "to", "days", "when", "then", "attribute", "operator",
                         "value", "event", "devices", "groups", "zone", "calendar", "type",
                         "geometry", "coordinates", "properties", "radius_m", "speedLimit",
                         "deviceId", "groupId", "geofenceId", "id", "uniqueId", "enabled"]),
        inner, max_size=5),
    max_leaves=12)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/api/geofences", "/api/groups", "/api/calendars", "/api/rules",
                             "/api/permissions", "/api/devices/1", "/api/geofences/1"]),
       body=json_values)
def test_random_bodies_never_give_a_server_error(world, path, body):
    method = "PUT" if path[-1].isdigit() else "POST"
    response = call(world, method, path, body)
    assert response.status in (200, 204, 400, 404, 409), response.body
    json.loads(response.body or b"null")
