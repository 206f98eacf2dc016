"""OsmAnd / Traccar Client: query and form parameters, the JSON body of Traccar
Client 8+, answers, errors, device side, random requests.

Requests marked "capture" come from Traccar's test suite
(https://github.com/traccar/traccar, Apache License 2.0).
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import CODECS, Command, DeviceReport, HttpRequest, Position, ProtocolError, osmand
from protocols.base import UnsupportedCommand
from protocols.devices import osmand as osmand_device

NOW = dt.datetime(2024, 5, 1, 12, 30, 45, tzinfo=dt.UTC)
KNOTS_PER_MPS = 3600 / 1852

# Captures (Traccar test suite, Apache-2.0).
QUERY = "/?id=123456&timestamp=1377177267&lat=60.0&lon=30.0&speed=0.0&bearing=0.0&altitude=0&hdop=0.0"
QUERY_ISO = ("/?id=902064&lat=42.06288&lon=-88.23412&timestamp=2016-01-27T18%3A55%3A47Z&hdop=6.0"
             "&altitude=224.0&speed=0.0")
QUERY_SPACE_TIME = ("/?lat=49.60688&lon=6.15788&timestamp=2014-06-04+09%3A10%3A11&altitude=384.7&speed=0.0"
                    "&id=353861053849681")
QUERY_CELLS = ("/?id=123456&timestamp=1377177267&cell=257,02,16,2224&cell=257,02,16,2223,-90"
               "&wifi=00-14-22-01-23-45,-80&wifi=00-1C-B3-09-85-15,-70")
QUERY_NO_TIME = "/?lat=60.0&lon=30.0&speed=0.0&heading=0.0&vacc=0&hacc=0&altitude=0&deviceid=123456"
JSON_BODY = (b'{"location":{"event":"motionchange","is_moving":false,'
             b'"uuid":"0e9a2473-a9a7-4c00-997b-fb97d2154e75","timestamp":"2021-07-21T08:06:34.444Z","odometer":0,"coords":{"latitude":-6.1148096,'
             b'"longitude":106.6837015,"accuracy":3.8,"speed":18.67,"speed_accuracy":0.26,"heading":63,'
             b'"heading_accuracy":0.28,"altitude":35.7,"altitude_accuracy":3.8},"activity":{"type":"still",'
             b'"confidence":100},"battery":{"is_charging":false,"level":0.79},"extras":{}},'
             b'"device_id":"8737767034"}')


def get(url: str) -> HttpRequest:
    return HttpRequest("GET", url)


def post_json(body: object, content_type: str = "application/json") -> HttpRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return HttpRequest("POST", "/", {"Content-Type": content_type}, raw)


def positions(request: HttpRequest) -> list[Position]:
    frame = osmand.CODEC.new_session().decode_frame(request, NOW)
    assert frame.reply == b""
    return list(frame.messages)


def one(request: HttpRequest) -> Position:
    (p,) = positions(request)
    return p


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


# --------------------------------------------------------------------------
# Codec
# --------------------------------------------------------------------------

def test_codec_is_registered_on_traccars_http_port_without_commands():
    assert CODECS["osmand"] is osmand.CODEC
    assert osmand.CODEC.default_listen == ("http:5055",)
    assert osmand.CODEC.command_types == frozenset()
    with pytest.raises(UnsupportedCommand):
        osmand.CODEC.new_session().encode_command(Command("rebootDevice"), NOW)


@pytest.mark.parametrize("method", ["receive_data", "receive_datagram", "decode_frame"])
def test_raw_bytes_are_refused(method):
    """The protocol lives in HTTP requests: byte streams are not decoded."""
    with pytest.raises(ProtocolError):
        getattr(osmand.CODEC.new_session(), method)(b"GET /?id=1 HTTP/1.1\r\n\r\n", NOW)


# --------------------------------------------------------------------------
# Query parameters
# --------------------------------------------------------------------------

def test_query_with_unix_seconds():
    p = one(get(QUERY))
    assert p.unique_id == "123456"
    assert p.fix_time == utc(2013, 8, 22, 13, 14, 27) == p.device_time
    assert (p.latitude, p.longitude, p.valid, p.outdated) == (60.0, 30.0, True, False)
    assert p.attributes == {"hdop": 0.0}


def test_session_remembers_the_device():
    session = osmand.CODEC.new_session()
    session.decode_frame(get(QUERY), NOW)
    assert session.unique_id == "123456"


@pytest.mark.parametrize("value,expected", [
    ("1377177267", utc(2013, 8, 22, 13, 14, 27)),
    ("1377177267123", dt.datetime(2013, 8, 22, 13, 14, 27, 123000, tzinfo=dt.UTC)),
    ("2016-01-27T18%3A55%3A47Z", utc(2016, 1, 27, 18, 55, 47)),
    ("2016-01-27T20%3A55%3A47%2B02%3A00", utc(2016, 1, 27, 18, 55, 47)),
    ("2014-06-04+09%3A10%3A11", utc(2014, 6, 4, 9, 10, 11)),
    ("2014-06-04T09:10:11.250", dt.datetime(2014, 6, 4, 9, 10, 11, 250000, tzinfo=dt.UTC)),
])
def test_timestamp_forms(value, expected):
    assert one(get(f"/?id=1&lat=1&lon=2&timestamp={value}")).fix_time == expected


def test_iso_timestamp_capture_with_altitude_and_hdop():
    p = one(get(QUERY_ISO))
    assert p.fix_time == utc(2016, 1, 27, 18, 55, 47)
    assert (p.altitude_m, p.attributes) == (224.0, {"hdop": 6.0})


def test_space_separated_timestamp_capture():
    assert one(get(QUERY_SPACE_TIME)).fix_time == utc(2014, 6, 4, 9, 10, 11)


def test_no_timestamp_means_the_time_of_reception_and_deviceid_names_the_device():
    p = one(get(QUERY_NO_TIME))
    assert p.fix_time == NOW and p.unique_id == "123456"
    assert p.attributes == {"vacc": 0.0, "hacc": 0.0}


def test_speed_is_knots_and_heading_bearing_altitude_accuracy():
    p = one(get("/?id=1&lat=1&lon=2&speed=12.5&bearing=370&altitude=-3.5&accuracy=7"))
    assert (p.speed_kn, p.course_deg, p.altitude_m, p.accuracy_m) == (12.5, 10.0, -3.5, 7.0)
    assert one(get("/?id=1&lat=1&lon=2&heading=45")).course_deg == 45.0


def test_negative_speed_and_bearing_mean_unknown():
    p = one(get("/?id=1&lat=1&lon=2&speed=-1&bearing=-1"))
    assert (p.speed_kn, p.course_deg) == (0.0, 0.0)


def test_battery_charge_driver_alarm_and_other_parameters():
    p = one(get("/?id=1&lat=1&lon=2&batt=87&charge=true&driverUniqueId=0042&alarm=sos"
                "&motion=false&ignition=true&temp=21.5&note=hello+world&empty="))
    assert p.attributes == {"batteryLevel": 87.0, "charge": True, "driverUniqueId": "0042", "alarm": "sos",
                            "motion": False, "ignition": True, "temp": 21.5, "note": "hello world",
                            "empty": ""}


def test_valid_parameter():
    assert one(get("/?id=1&lat=1&lon=2&valid=false")).valid is False
    assert one(get("/?id=1&lat=1&lon=2&valid=1")).valid is True


def test_location_parameter():
    p = one(get("/?id=123456&timestamp=1377177267&location=60.0,30.0"))
    assert (p.latitude, p.longitude) == (60.0, 30.0)


def test_cells_and_wifi_without_coordinates_give_a_status_record():
    p = one(get(QUERY_CELLS))
    assert p.outdated is True and p.valid is True
    assert p.network == {"radioType": "gsm", "considerIp": False, "cellTowers": [
        {"cellId": 2224, "locationAreaCode": 16, "mobileCountryCode": 257, "mobileNetworkCode": 2},
        {"cellId": 2223, "locationAreaCode": 16, "mobileCountryCode": 257, "mobileNetworkCode": 2,
         "signalStrength": -90}], "wifiAccessPoints": [
        {"macAddress": "00:14:22:01:23:45", "signalStrength": -80},
        {"macAddress": "00:1C:B3:09:85:15", "signalStrength": -70}]}


def test_form_encoded_post_body():
    request = HttpRequest("POST", "/?id=77", {"Content-Type": "application/x-www-form-urlencoded"},
                          b"lat=10.5&lon=-20.25&timestamp=1700000000&speed=3")
    p = one(request)
    assert (p.unique_id, p.latitude, p.longitude, p.speed_kn) == ("77", 10.5, -20.25, 3.0)


# --------------------------------------------------------------------------
# JSON body
# --------------------------------------------------------------------------

def test_json_body_capture():
    p = one(post_json(JSON_BODY))
    assert p.unique_id == "8737767034"
    assert p.fix_time == dt.datetime(2021, 7, 21, 8, 6, 34, 444000, tzinfo=dt.UTC)
    assert (p.latitude, p.longitude, p.altitude_m, p.accuracy_m) == (-6.1148096, 106.6837015, 35.7, 3.8)
    assert p.speed_kn == pytest.approx(18.67 * KNOTS_PER_MPS)
    assert p.course_deg == 63.0
    assert p.attributes == {"event": "motionchange", "motion": False, "odometer": 0, "activity": "still",
                            "batteryLevel": 79}


def test_json_unknown_values_extras_and_charging():
    body = {"device_id": 658765, "location": {
        "timestamp": "2025-05-09T04:11:30.579Z", "mock": True, "is_moving": True, "odometer": 1234.9,
        "coords": {"latitude": 37.785834, "longitude": -122.406417, "speed": -1, "heading": -1},
        "battery": {"level": -1, "is_charging": True},
        "extras": {"s": "text", "b": False, "i": 12, "f": 1.345, "nested": {"x": 1}}}}
    p = one(post_json(body))
    assert p.unique_id == "658765"
    assert (p.speed_kn, p.course_deg) == (0.0, 0.0)
    assert p.attributes == {"motion": True, "odometer": 1234, "mock": True, "charge": True,
                            "s": "text", "b": False, "i": 12, "f": 1.345}
    assert type(p.attributes["i"]) is int


def test_json_body_detected_without_content_type_and_batched_locations():
    body = {"device_id": "d1", "location": [
        {"timestamp": "2024-01-01T00:00:00Z", "coords": {"latitude": 1.0, "longitude": 2.0}},
        {"timestamp": "2024-01-01T00:01:00Z", "coords": {"latitude": 1.5, "longitude": 2.5}}]}
    request = HttpRequest("POST", "/", {}, json.dumps(body).encode())
    assert [(p.fix_time.minute, p.latitude) for p in positions(request)] == [(0, 1.0), (1, 1.5)]


def test_json_without_coordinates_is_a_status_record():
    p = one(post_json({"device_id": "d1", "location": {"timestamp": "2024-01-01T00:00:00Z",
                                                       "battery": {"level": 0.5}}}))
    assert p.outdated is True and p.attributes == {"batteryLevel": 50}


# --------------------------------------------------------------------------
# Requests without a device, bad requests
# --------------------------------------------------------------------------

def test_request_without_device_id_gives_no_message():
    """Traccar stores nothing and answers 400: the adapter answers an empty frame 400."""
    assert positions(get("/?timestamp=1377177267&lat=60.0&lon=30.0")) == []
    assert positions(post_json({"location": {"coords": {"latitude": 1, "longitude": 2}}})) == []


@pytest.mark.parametrize("request_", [
    get("/?id=1&lat=abc&lon=2"),
    get("/?id=1&lat=95&lon=2"),
    get("/?id=1&lat=1&lon=nan"),
    get("/?id=1&lat=1&lon=2&timestamp=yesterday"),
    get("/?id=1&lat=1&lon=2&speed=fast"),
    get("/?id=1&cell=257,02,16"),
    get("/?id=1&wifi=nonsense,-80"),
    get("/?id=%01%02&lat=1&lon=2"),
    get("/?id=" + "x" * 200 + "&lat=1&lon=2"),
    post_json(b'{"device_id": "1", "location": '),
    post_json(b'[1, 2, 3]'),
    post_json({"device_id": "1"}),
    HttpRequest("DELETE", "/?id=1&lat=1&lon=2"),
    HttpRequest("POST", "/", {}, b"id=1&lat=" + b"1" * osmand.MAX_FRAME_BYTES),
], ids=["lat-text", "lat-range", "lon-nan", "time", "speed", "cell", "wifi", "id-control", "id-long",
        "json-cut", "json-array", "json-no-location", "method", "oversize"])
def test_bad_requests_are_protocol_errors(request_):
    with pytest.raises(ProtocolError):
        osmand.CODEC.new_session().decode_frame(request_, NOW)


# --------------------------------------------------------------------------
# Device side
# --------------------------------------------------------------------------

def test_device_side_shape():
    assert osmand_device.DEVICE.transport == "http"
    assert (osmand_device.DEVICE.acks_login, osmand_device.DEVICE.acks_reports) == (False, True)
    assert osmand_device.DEVICE.login("1", 0) == b"" and osmand_device.DEVICE.heartbeat("1", 0) == b""
    assert osmand_device.DEVICE.ack_reader().receive_data(b"HTTP/1.1 200 OK\r\n\r\n") == []


@pytest.mark.parametrize("alarm", [None, "sos", "powerCut"])
def test_device_report_round_trip(alarm):
    report = DeviceReport(fix_time=dt.datetime(2024, 5, 1, 12, 30, 45, 250000, tzinfo=dt.UTC),
                          latitude=-33.8688123, longitude=151.2092987, speed_kn=21.4, course_deg=359.5,
                          alarm=alarm)
    request = osmand_device.DEVICE.report("phone-7", 3, report)
    assert request.method == "GET" and request.url.startswith("/?id=phone-7&")
    p = one(request)
    assert p.unique_id == "phone-7" and p.fix_time == report.fix_time and p.valid
    assert p.latitude == pytest.approx(report.latitude, abs=1e-5)
    assert p.longitude == pytest.approx(report.longitude, abs=1e-5)
    assert p.speed_kn == pytest.approx(report.speed_kn, abs=1e-3)
    assert p.course_deg == pytest.approx(report.course_deg, abs=0.01)
    assert p.attributes.get("alarm") == alarm


def test_device_invalid_fix_round_trip():
    request = osmand_device.DEVICE.report("1", 0, DeviceReport(NOW, 1.0, 2.0, valid=False))
    assert one(request).valid is False


# --------------------------------------------------------------------------
# Random input
# --------------------------------------------------------------------------

@given(st.binary(max_size=300))
@settings(deadline=None, max_examples=300)
def test_random_bytes_are_protocol_errors(data):
    with pytest.raises(ProtocolError):
        osmand.CODEC.new_session().decode_frame(data, NOW)


_QUERY_TEXT = st.text(alphabet=st.sampled_from(list("idlatonspeedbrgcw=&,.-+:%0123456789xTZ ")), max_size=80)


@given(st.sampled_from(["GET", "POST", "PUT"]), _QUERY_TEXT, st.binary(max_size=200),
       st.sampled_from([{}, {"Content-Type": "application/json"},
                        {"content-type": "application/x-www-form-urlencoded"}]))
@settings(deadline=None, max_examples=300)
def test_random_requests_give_frames_or_protocol_errors(method, query, body, headers):
    try:
        osmand.CODEC.new_session().decode_frame(HttpRequest(method, "/?" + query, headers, body), NOW)
    except ProtocolError:
        pass


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.sampled_from(["device_id", "location", "coords", "latitude", "longitude", "speed",
                                         "timestamp", "battery", "level", "extras", "odometer", "x"]),
                        inner, max_size=5), max_leaves=20))
@settings(deadline=None, max_examples=300)
def test_random_json_bodies_give_frames_or_protocol_errors(document):
    try:
        body = json.dumps(document).encode()
    except ValueError:
        return
    try:
        osmand.CODEC.new_session().decode_frame(post_json(body), NOW)
    except ProtocolError:
        pass
