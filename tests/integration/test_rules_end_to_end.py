"""Geofences and rules end to end: the real server, the real simulator, SQLite and PostGIS.

A simulated GT06 device drives east along latitude 52.52 near Berlin through two
zones configured over the API, over its group's speed limit between them and over
the second zone's own limit inside it, then stops.  Exactly the expected events
must be stored, in order, each tied to the position that caused it; a restart of
the server in the middle of a zone visit must not fire the enter twice.

The route (one point per report, 68 m apart; a report every 0.1 s, fix times one
second apart): zone A is a 300 m circle around lon 13.400, zone B the square
lon 13.445..13.455 x lat 52.517..52.523 (its west edge lies exactly on a route
point: the edge counts as inside).
"""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.serverproc import ServerProcess, wait_for
from tracker.storage import open_store

pytestmark = pytest.mark.slow

EMAIL, PASSWORD = "fleet@example.com", "correct horse battery"
IMEI = "860000000000000"
LAT = 52.52
KMH_PER_KNOT = 1.852
EVENTS_CONFIG = """
[events]
stopped_min_duration_s = 2
moving_min_duration_s = 2
"""


def lon_at(i: int) -> float:
    return round(13.390 + 0.001 * i, 6)


def speed_at(i: int) -> float:
    """50 km/h, 100 km/h on points 30..35 (group limit 80), 40 km/h from 50 on
    (zone B's limit is 30), then a stop at the end of the route."""
    if 30 <= i <= 35:
        return 100.0
    return 50.0 if i < 50 else 40.0


def route_lines(points) -> str:
    return "".join(f"{lon} {lat} {speed}\n" for lon, lat, speed in points)


ROUTE = [(lon_at(i), LAT, speed_at(i)) for i in range(71)] + [(lon_at(70), LAT, 0.0)] * 4


@pytest.fixture
def server(tmp_path, database_url):
    proc = ServerProcess(tmp_path, database_url, extra_config=EVENTS_CONFIG)
    proc.cli("user", "add", "--email", EMAIL, "--password", PASSWORD, "--admin")
    proc.cli("device", "add", "--unique-id", IMEI, "--name", "van 1")
    yield proc
    proc.stop()


def configure(server: ServerProcess) -> dict[str, int]:
    """Zones, a group with a speed limit and the links, through the API."""
    def post(path, body):
        status, created = server.api(path, EMAIL, PASSWORD, body)
        assert status == 200, created
        return created

    zone_a = post("/api/geofences", {"name": "Depot A", "area": f"CIRCLE ({LAT} 13.4, 300)"})
    zone_b = post("/api/geofences", {
        "name": "Site B", "attributes": {"speedLimit": 30 / KMH_PER_KNOT},
        "geojson": {"type": "Polygon", "coordinates": [[
            [13.445, 52.517], [13.455, 52.517], [13.455, 52.523], [13.445, 52.523],
            [13.445, 52.517]]]}})
    group = post("/api/groups", {"name": "vans", "attributes": {"speedLimit": 80 / KMH_PER_KNOT}})
    (device,) = server.api("/api/devices", EMAIL, PASSWORD)
    status, _ = server.api(f"/api/devices/{device['id']}", EMAIL, PASSWORD,
                           {**device, "groupId": group["id"]}, method="PUT")
    assert status == 200
    for link in ({"deviceId": device["id"], "geofenceId": zone_a["id"]},
                 {"groupId": group["id"], "geofenceId": zone_b["id"]}):
        status, _ = server.api("/api/permissions", EMAIL, PASSWORD, link)
        assert status == 204
    return {"A": zone_a["id"], "B": zone_b["id"], "device": device["id"]}


def drive(server: ServerProcess, tmp_path, points, name: str, interval: str = "0.1"):
    route = tmp_path / f"{name}.route"
    route.write_text(route_lines(points))
    result = server.simulate("--devices", "1", "--first-imei", IMEI, "--interval", interval,
                             "--heartbeat-every", "0", "--route", str(route))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"acked={len(points)}" in result.stdout, result.stdout


def stored_events(database_url: str):
    """(type, geofence id, longitude of the position it is tied to), in id order."""
    store = open_store(database_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT e.type, e.geofence_id, e.attributes, p.longitude FROM events e "
                "LEFT JOIN positions p ON p.id = e.position_id ORDER BY e.id")).all()
    finally:
        store.close()
    return [(row.type, row.geofence_id, row.longitude) for row in rows]



def test_a_route_through_two_zones_and_over_speed_limits_stores_exactly_the_expected_events(
        server, database_url, tmp_path):
    server.start()
    ids = configure(server)
    drive(server, tmp_path, ROUTE, "drive")
    expected = [
        ("deviceOnline", None, None),
        ("geofenceEnter", ids["A"], lon_at(6)),       # 271 m from the centre
        ("geofenceExit", ids["A"], lon_at(15)),       # 338 m
        ("deviceOverspeed", None, lon_at(30)),        # the group's 80 km/h
        ("geofenceEnter", ids["B"], lon_at(55)),      # on the west edge
        ("deviceOverspeed", ids["B"], lon_at(55)),    # zone B's 30 km/h
        ("geofenceExit", ids["B"], lon_at(66)),
        ("deviceStopped", None, lon_at(70)),
        ("deviceOffline", None, None),
    ]
    events = wait_for(lambda: (e := stored_events(database_url)) and e[-1][0] == "deviceOffline"
                      and e)
    assert [(t, g, round(lon, 6) if lon is not None else None) for t, g, lon in events] == expected

    report = server.api(f"/api/reports/events?deviceId={ids['device']}&type=geofenceEnter"
                        "&type=geofenceExit&from=2000-01-01T00:00:00Z&to=2100-01-01T00:00:00Z",
                        EMAIL, PASSWORD)
    assert [(e["type"], e["geofenceId"]) for e in report] == [
        ("geofenceEnter", ids["A"]), ("geofenceExit", ids["A"]),
        ("geofenceEnter", ids["B"]), ("geofenceExit", ids["B"])]
    one = server.api(f"/api/events/{report[0]['id']}", EMAIL, PASSWORD)
    assert one["positionId"] and one["deviceId"] == ids["device"]
    assert "Traceback" not in server.log()


def test_a_restart_inside_a_zone_fires_neither_a_second_enter_nor_a_lost_exit(
        server, database_url, tmp_path):
    server.start()
    ids = configure(server)
    inside = [(lon_at(i), LAT, 30.0) for i in range(0, 10)]      # enters A at point 6
    drive(server, tmp_path, inside, "first", interval="1")
    server.kill()                                                 # kill -9 while inside A
    server.start()
    onward = [(lon_at(i), LAT, 30.0) for i in range(10, 18)]     # leaves A at point 15
    drive(server, tmp_path, onward, "second", interval="1")
    zone_events = [(t, g) for t, g, _ in wait_for(
        lambda: [e for e in stored_events(database_url) if e[0] == "geofenceExit"] and
        stored_events(database_url)) if t.startswith("geofence")]
    assert zone_events == [("geofenceEnter", ids["A"]), ("geofenceExit", ids["A"])]
