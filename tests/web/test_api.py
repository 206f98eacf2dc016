"""The Traccar-compatible REST API: shapes, scoping, parameters, errors."""

from __future__ import annotations

import datetime as dt
import decimal
import http.client
import importlib.metadata
import json
import math
import os
import select
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from tests.web.harness import (
    ADMIN,
    ALICE,
    BOB,
    PASSWORD,
    T0,
    QueuedThreadPool,
    basic,
    make_world,
)
from tracker.models import Batch, NewPosition
from web import jsonshapes

MINUTE = dt.timedelta(minutes=1)
JSON = "application/json; charset=utf-8"


def position(device, fix_time, **kwargs):
    values = dict(device_id=device.id, protocol="gt06", server_time=fix_time + dt.timedelta(
        seconds=1), device_time=fix_time, fix_time=fix_time, valid=True,
        latitude=52.5, longitude=13.4, altitude_m=35.5, speed_kn=12.5, course_deg=270.0,
        accuracy_m=4.0, attributes={"sat": 9, "ignition": True})
    values.update(kwargs)
    return NewPosition(**values)


@pytest.fixture
def world(tmp_path):
    world = make_world(tmp_path / "tracker.db")
    d1, d2, d3 = (world.devices[k] for k in ("d1", "d2", "d3"))
    world.store.write_batch(Batch(positions=(
        position(d1, T0 - 60 * MINUTE),
        position(d1, T0 - 30 * MINUTE, network={"radioType": "gsm", "cellTowers": []}),
        position(d1, T0 - 2 * MINUTE - dt.timedelta(seconds=1), latitude=52.6),
        position(d2, T0 - dt.timedelta(days=1)),
        position(d3, T0 - MINUTE),
    )))
    world.devices = {k: world.store.device_by_unique_id(d.unique_id)
                     for k, d in world.devices.items()}   # with position ids now
    return world


def get(world, path, auth=ALICE, **kwargs):
    return world.client.request("GET", path, auth=auth, **kwargs)


def ids_of(response):
    assert response.status == 200, response.body
    return [item["id"] for item in response.json()]


def q(**params):
    return "?" + urllib.parse.urlencode(params, doseq=True)


# -- server ---------------------------------------------------------------------------

def test_server_needs_no_authentication_and_has_traccar_shape(world):
    response = world.client.request("GET", "/api/server")
    assert response.status == 200
    assert response.header("Content-Type") == JSON
    assert response.json() == {
        "id": 1, "registration": False, "readonly": False, "deviceReadonly": False,
        "limitCommands": False, "map": None, "bingKey": None, "mapUrl": None,
        "poiLayer": None, "latitude": 0.0, "longitude": 0.0, "zoom": 0,
        "twelveHourFormat": False, "version": importlib.metadata.version("tracker"),
        "forceSettings": False, "coordinateFormat": None, "attributes": {},
    }


# -- paths and methods -------------------------------------------------------------

@pytest.mark.parametrize("path", ["/", "/api", "/api/", "/api/nothing", "/api/devices/5",
                                  "/nothing/deeper", "/api/devices/5/x", "/api/%ff%00"])
def test_unknown_paths_are_json_404(world, path):
    response = get(world, path)
    assert response.status == 404
    assert response.header("Content-Type") == JSON
    assert response.json() == {"status": 404, "error": "Not Found",
                               "message": "no such resource"}


def test_trailing_slash_is_the_same_resource(world):
    assert ids_of(get(world, "/api/devices/")) == ids_of(get(world, "/api/devices"))


@pytest.mark.parametrize("method, path, allow", [
    ("PUT", "/api/devices", "GET, POST, HEAD"),
    ("DELETE", "/api/positions", "GET, HEAD"),
    ("PUT", "/api/server", "GET, HEAD"),
    ("PATCH", "/api/session", "DELETE, GET, POST, HEAD"),
    ("OPTIONS", "/api/devices", "GET, POST, HEAD"),
])
def test_wrong_method_is_405_with_allow(world, method, path, allow):
    response = world.client.request(method, path, auth=ALICE)
    assert response.status == 405
    assert response.header("Allow") == allow
    assert response.json()["status"] == 405


def test_head_is_get_without_a_body(world):
    full = get(world, "/api/devices")
    head = world.client.request("HEAD", "/api/devices", auth=ALICE)
    assert head.status == 200
    assert head.body == b""
    assert head.header("Content-Length") == str(len(full.body))


@pytest.mark.parametrize("path", ["/api/devices", "/api/positions", "/api/session",
                                  "/api/nothing", "/api/positions?deviceId=x"])
def test_every_response_is_uncacheable_json(world, path):
    for auth in (ALICE, None):
        response = get(world, path, auth=auth)
        assert response.header("Content-Type") == JSON
        assert response.header("Cache-Control") == "no-store"
        assert response.header("X-Content-Type-Options") == "nosniff"
        json.loads(response.body)


def test_unauthenticated_api_calls_are_401(world):
    for path in ("/api/devices", "/api/positions", "/api/positions?id=1"):
        assert get(world, path, auth=None).status == 401


# -- devices ----------------------------------------------------------------------

@pytest.mark.parametrize("who, visible", [
    (ADMIN, ["d1", "d2", "d3"]),
    (ALICE, ["d1", "d2"]),
    (BOB, ["d3"]),
])
def test_devices_are_scoped_to_the_organisation(world, who, visible):
    expected = [world.devices[k].id for k in visible]
    assert ids_of(get(world, "/api/devices", auth=who)) == expected


def test_user_of_an_organisation_without_devices_sees_none(world):
    org = world.store.add_organisation("empty")
    world.store.add_user("carol@example.com", PASSWORD, organisation_id=org)
    assert ids_of(get(world, "/api/devices", auth=("carol@example.com", PASSWORD))) == []
    assert ids_of(get(world, "/api/positions", auth=("carol@example.com", PASSWORD))) == []


def test_device_json_has_traccar_shape(world):
    d1 = world.devices["d1"]
    (device,) = get(world, f"/api/devices?id={d1.id}").json()
    assert device == {
        "id": d1.id, "name": "Truck 1", "uniqueId": "100000000000001", "status": "online",
        "disabled": False, "lastUpdate": "2024-06-01T11:58:00.000+00:00",
        "positionId": d1.position_id, "groupId": 0, "calendarId": 0, "phone": None,
        "model": None, "contact": None, "category": None, "attributes": {},
    }


def test_device_status_online_offline_unknown(world):
    world.store.add_device("900", "Never seen")
    by_name = {d["name"]: d for d in get(world, "/api/devices").json()}
    assert by_name["Truck 1"]["status"] == "online"
    assert by_name["Truck 2"]["status"] == "offline"
    assert by_name["Never seen"]["status"] == "unknown"
    assert by_name["Never seen"]["lastUpdate"] is None
    assert by_name["Never seen"]["positionId"] == 0


def test_device_goes_offline_after_five_minutes(world):
    """Truck 1's last update was at T0 - 2 min; "online" includes exactly 5 minutes."""
    path = f"/api/devices?id={world.devices['d1'].id}"
    world.reactor.advance(3 * 60)
    assert get(world, path).json()[0]["status"] == "online"
    world.reactor.advance(0.001)
    assert get(world, path).json()[0]["status"] == "offline"


def test_devices_filters_are_a_union_of_visible_devices(world):
    d1, d2, d3 = (world.devices[k] for k in ("d1", "d2", "d3"))
    assert ids_of(get(world, "/api/devices" + q(id=[d1.id]))) == [d1.id]
    assert ids_of(get(world, "/api/devices" + q(uniqueId=[d2.unique_id]))) == [d2.id]
    assert ids_of(get(world, "/api/devices" + q(id=[d1.id], uniqueId=[d2.unique_id]))) == [
        d1.id, d2.id]
    # bob's device is left out for alice, exactly like one that does not exist
    assert ids_of(get(world, "/api/devices" + q(id=[d3.id, 999], uniqueId=[d3.unique_id]))) == []
    assert ids_of(get(world, "/api/devices" + q(id=[d3.id]), auth=BOB)) == [d3.id]


# -- positions -------------------------------------------------------------------

@pytest.mark.parametrize("who, visible", [
    (ADMIN, ["d1", "d2", "d3"]), (ALICE, ["d1", "d2"]), (BOB, ["d3"])])
def test_latest_positions_are_scoped(world, who, visible):
    expected = [world.devices[k].position_id for k in visible]
    assert ids_of(get(world, "/api/positions", auth=who)) == expected


def test_position_json_has_traccar_shape(world):
    d1 = world.devices["d1"]
    (latest,) = get(world, f"/api/positions?deviceId={d1.id}").json()
    assert latest == {
        "id": d1.position_id, "deviceId": d1.id, "protocol": "gt06",
        "serverTime": "2024-06-01T11:58:00.000+00:00",
        "deviceTime": "2024-06-01T11:57:59.000+00:00",
        "fixTime": "2024-06-01T11:57:59.000+00:00",
        "outdated": False, "valid": True, "latitude": 52.6, "longitude": 13.4,
        "altitude": 35.5, "speed": 12.5, "course": 270.0, "address": None,
        "accuracy": 4.0, "network": None, "geofenceIds": None,
        "attributes": {"sat": 9, "ignition": True},
    }


def test_history_is_oldest_first_and_inclusive(world):
    d1 = world.devices["d1"]
    response = get(world, "/api/positions" + q(
        deviceId=d1.id, **{"from": "2024-06-01T11:00:00Z", "to": "2024-06-01T11:30:00Z"}))
    history = response.json()
    assert [p["fixTime"] for p in history] == [
        "2024-06-01T11:00:00.000+00:00", "2024-06-01T11:30:00.000+00:00"]
    assert history[1]["network"] == {"radioType": "gsm", "cellTowers": []}


def test_history_accepts_offsets_and_a_plus_sent_unencoded(world):
    d1 = world.devices["d1"]
    encoded = get(world, "/api/positions" + q(
        deviceId=d1.id, **{"from": "2024-06-01T13:00:00+02:00", "to": "2024-06-01T15:00:00.000+0200"}))
    raw = get(world, f"/api/positions?deviceId={d1.id}"
                     "&from=2024-06-01T13:00:00+02:00&to=2024-06-01T15:00:00+02:00")
    assert len(ids_of(encoded)) == 3
    assert ids_of(raw) == ids_of(encoded)


def test_history_of_an_invisible_device_is_404_like_a_missing_one(world):
    window = {"from": "2024-01-01T00:00:00Z", "to": "2025-01-01T00:00:00Z"}
    invisible = get(world, "/api/positions" + q(deviceId=world.devices["d3"].id, **window))
    missing = get(world, "/api/positions" + q(deviceId=999, **window))
    assert invisible.status == missing.status == 404
    assert invisible.json()["message"] == f"no device with id {world.devices['d3'].id}"
    assert get(world, "/api/positions" + q(deviceId=world.devices["d3"].id)).status == 404
    assert len(ids_of(get(world, "/api/positions" + q(deviceId=world.devices["d3"].id,
                                                      **window), auth=BOB))) == 1


def test_device_id_alone_gives_its_latest_position(world):
    d2 = world.devices["d2"]
    assert ids_of(get(world, f"/api/positions?deviceId={d2.id}")) == [d2.position_id]
    fresh = world.store.add_device("901", "No fix yet")
    assert ids_of(get(world, f"/api/positions?deviceId={fresh.id}")) == []


def test_positions_by_id_leave_out_what_the_user_may_not_see(world):
    d1, d3 = world.devices["d1"], world.devices["d3"]
    wanted = [d1.position_id, d3.position_id, 10_000]
    assert ids_of(get(world, "/api/positions" + q(id=wanted))) == [d1.position_id]
    assert ids_of(get(world, "/api/positions" + q(id=wanted), auth=ADMIN)) == [
        d1.position_id, d3.position_id]


def test_archive_flag_becomes_the_traccar_attribute(world):
    d2 = world.devices["d2"]
    world.store.write_batch(Batch(positions=(
        position(d2, T0 - dt.timedelta(days=2), archive=True),)))
    history = get(world, "/api/positions" + q(deviceId=d2.id, **{
        "from": "2024-05-01T00:00:00Z", "to": "2024-06-01T00:00:00Z"})).json()
    assert [p["attributes"].get("archive") for p in history] == [True, None]


@pytest.mark.parametrize("query, message", [
    ("deviceId=1&from=yesterday&to=2024-06-01T00:00:00Z", "from is not an ISO 8601 time"),
    ("deviceId=1&from=2024-06-01T00:00:00&to=2024-06-02T00:00:00Z", "from needs a UTC offset"),
    ("deviceId=1&from=2024-06-01&to=2024-06-02T00:00:00Z", "from needs a UTC offset"),
    ("deviceId=1&from=2024-06-02T00:00:00Z&to=2024-06-01T00:00:00Z",
     "from must not be after to"),
    ("deviceId=1&from=2024-06-01T00:00:00Z", "from and to must be given together"),
    ("deviceId=1&to=2024-06-01T00:00:00Z", "from and to must be given together"),
    ("from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z", "from and to need a deviceId"),
    ("deviceId=abc", "deviceId must be a non-negative integer"),
    ("deviceId=-1", "deviceId must be a non-negative integer"),
    ("deviceId=1&deviceId=2", "deviceId may be given only once"),
    ("id=1.5", "id must be a non-negative integer"),
    ("id=", "id must be a non-negative integer"),
    ("id=99999999999999999999999", "id must be a non-negative integer"),
    ("id=1&deviceId=1", "id cannot be combined"),
    ("deviceId=1&from=2024-06-01T00:00:00Z&from=2024-06-01T00:00:00Z&to=2024-06-02T00:00:00Z",
     "from may be given only once"),
    ("deviceId=1&from=0001-01-01T00:00:00+14:00&to=2024-06-02T00:00:00Z", "from is out of range"),
    ("id=%ff", "id is not valid UTF-8"),
    ("&".join(["id=1"] * 1001), "at most 1000 values of id"),
])
def test_bad_position_parameters_are_400_saying_what_is_wrong(world, query, message):
    response = get(world, "/api/positions?" + query)
    assert response.status == 400, response.body
    assert response.json()["message"].startswith(message), response.json()


def test_bad_device_parameters_are_400(world):
    response = get(world, "/api/devices?id=x1")
    assert response.status == 400
    assert response.json()["message"] == "id must be a non-negative integer, not 'x1'"


def test_unknown_parameters_are_ignored(world):
    assert ids_of(get(world, "/api/devices?all=true&userId=7")) == ids_of(
        get(world, "/api/devices"))


# -- robustness ---------------------------------------------------------------------

query_text = st.lists(st.sampled_from(
    list("idevcefromtuniqueIdD=&%+:-TZ.0123456789 \u00e9\x00")
    + ["%ff", "%20", "deviceId=", "from=", "to=", "id=", "uniqueId=", "&",
       "2024-06-01T11:00:00Z", "2024-06-01T11:00:00+02:00", "1"]),
    max_size=20).map("".join)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(["/api/positions", "/api/devices", "/api/session",
                             "/api/server"]), query=query_text)
def test_random_queries_never_give_a_server_error(world, path, query):
    response = get(world, path + "?" + urllib.parse.quote(query, safe="=&%+"),
                   auth=None, headers={"Authorization": basic(*ALICE)})
    assert response.status in (200, 400, 404), response.body
    json.loads(response.body)


@pytest.mark.parametrize("raw", [
    b"\x00\x01\x02garbage\r\n\r\n",
    b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: \xff\xfe\r\n\r\n",
    b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Basic\r\n\r\n",
    b"GET /api/devices HTTP/1.1\r\nHost: x\r\nCookie: JSESSIONID=\xff\r\n\r\n",
    b"GET /api/devices HTTP/1.1\r\nHost: \xff\r\nOrigin: \xff\r\n\r\n",
    b"DELETE /api/session HTTP/1.1\r\nHost: \xff\r\nOrigin: http://\xff\r\n\r\n",
    b"GET /api/positions?deviceId=%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
    b"Content-Type: multipart/form-data; boundary=\r\n\r\n\xff\xff\xff\xff",
    b"POST /api/session HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    b"GET /%%%%/../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
])
def test_malformed_requests_never_give_a_server_error(world, raw):
    response = world.client.send_raw(raw)
    assert 400 <= response.status < 500


def test_oversized_body_is_413(world):
    body = b"email=a&password=" + b"x" * (70 * 1024)
    response = world.client.request("POST", "/api/session", body=body, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413


def test_oversized_chunked_body_is_413(world):
    chunk = b"x" * 8192
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(10)) + b"0\r\n\r\n"
    response = world.client.send_raw(
        b"POST /api/session HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n" + body)
    assert response.status == 413


def test_store_failure_is_a_logged_500_without_details(world, monkeypatch, logged_failures):
    def broken(user=None, **filters):
        raise RuntimeError("database is down: secret connection string")

    monkeypatch.setattr(world.store, "devices", broken)
    response = get(world, "/api/devices")
    assert response.status == 500
    assert response.json() == {"status": 500, "error": "Internal Server Error",
                               "message": "internal server error"}
    assert b"secret" not in response.raw and b"Traceback" not in response.raw
    logged = [e for e in logged_failures if "log_failure" in e]
    assert [type(e["log_failure"].value) for e in logged] == [RuntimeError]
    logged_failures.clear()
    monkeypatch.undo()
    assert get(world, "/api/devices").status == 200   # and the server goes on


def test_client_leaving_before_the_store_answers_is_harmless(tmp_path):
    pool = QueuedThreadPool()
    world = make_world(tmp_path / "t.db", threadpool=pool)
    protocol, transport = world.client.connect()
    protocol.dataReceived(b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: "
                          + basic(*ALICE).encode() + b"\r\n\r\n")
    pool.run_one()   # authentication done; the device query is queued now
    assert len(pool.queue) == 1
    protocol.connectionLost(Failure(ConnectionDone()))
    pool.run_all()
    assert transport.value() == b""


def test_requests_on_one_connection_are_answered_in_turn(world):
    """Keep-alive: pytraccar's aiohttp reuses connections."""
    protocol, transport = world.client.connect()
    one = (b"GET /api/devices HTTP/1.1\r\nHost: x\r\nAuthorization: "
           + basic(*ALICE).encode() + b"\r\n\r\n")
    protocol.dataReceived(one + one)
    assert transport.value().count(b"HTTP/1.1 200 OK") == 2
    protocol.connectionLost(Failure(ConnectionDone()))


# -- JSON helpers ----------------------------------------------------------------

def test_format_time_is_traccar_style_utc():
    cet = dt.timezone(dt.timedelta(hours=1))
    assert jsonshapes.format_time(dt.datetime(2024, 1, 1, 13, 0, 0, 123456, tzinfo=cet)) == (
        "2024-01-01T12:00:00.123+00:00")
    assert jsonshapes.format_time(dt.datetime(2024, 1, 1)) == "2024-01-01T00:00:00.000+00:00"
    assert jsonshapes.format_time(None) is None


def test_dumps_turns_odd_attribute_values_into_json():
    value = {"nan": math.nan, "inf": -math.inf, "raw": b"\x01\xff", "at": dt.datetime(
        2024, 1, 1, tzinfo=dt.UTC), "d": decimal.Decimal("1.5"), "t": (1, 2), 3: {"x"},
        "obj": object}
    decoded = json.loads(jsonshapes.dumps(value))
    assert decoded["nan"] is None and decoded["inf"] is None
    assert decoded["raw"] == "01ff"
    assert decoded["at"] == "2024-01-01T00:00:00.000+00:00"
    assert (decoded["d"], decoded["t"], decoded["3"]) == (1.5, [1, 2], ["x"])
    assert isinstance(decoded["obj"], str)


# -- end to end ----------------------------------------------------------------------

@pytest.mark.slow
def test_end_to_end_over_a_real_socket_with_a_real_thread_pool(world, tmp_path):
    """The site in its own process: real reactor, real ThreadPool, real SQLite threads."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.web.harness", str(world.store.url)], cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(root)})
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            proc.kill()
            pytest.fail(f"server did not start: {line!r} {proc.communicate()[1][-2000:]!r}")
        port = int(line)

        def call(method, path, headers=None, body=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request(method, path, body=body, headers=headers or {})
                response = conn.getresponse()
                return response, response.read()
            finally:
                conn.close()

        response, body = call("GET", "/api/devices",
                              {"Authorization": basic("alice@example.com", PASSWORD)})
        assert response.status == 200
        assert [d["uniqueId"] for d in json.loads(body)] == ["100000000000001",
                                                             "100000000000002"]
        response, _ = call("POST", "/api/session", {
            "Content-Type": "application/x-www-form-urlencoded"},
            urllib.parse.urlencode({"email": "bob@example.com", "password": PASSWORD}))
        assert response.status == 200
        cookie = response.getheader("Set-Cookie").split(";")[0]
        response, body = call("GET", "/api/positions", {"Cookie": cookie})
        assert response.status == 200
        assert [p["deviceId"] for p in json.loads(body)] == [world.devices["d3"].id]
        response, _ = call("DELETE", "/api/session", {"Cookie": cookie})
        assert response.status == 204
        response, _ = call("GET", "/api/session", {"Cookie": cookie})
        assert response.status == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
