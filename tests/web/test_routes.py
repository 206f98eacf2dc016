"""The routing layer (`web.routes`): one declaration gives the route, its validation,
its error mapping and its OpenAPI entry (`web.openapi`, GET /api/openapi.json)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from pydantic import BaseModel, Field, TypeAdapter

from tests.web.harness import ADMIN, ALICE, Client, FakeReactor, SyncThreadPool, make_world
from tracker.bounded_http import BoundedRequest, BoundedSite
from web import routes
from web.routes import API, ApiContext, Call, Ints, JsonBody, OneInt, Query, Reply, RouteTable

JSON = "application/json; charset=utf-8"


@pytest.fixture
def world(tmp_path):
    return make_world(tmp_path / "tracker.db")


def call(world, method, path, body=None, auth=ALICE):
    raw = b"" if body is None else json.dumps(body).encode()
    return world.client.request(method, path, auth=auth, body=raw,
                                headers={"Content-Type": "application/json"})


def document(world) -> dict[str, Any]:
    response = world.client.request("GET", "/api/openapi.json")
    assert response.status == 200 and response.header("Content-Type") == JSON
    return response.json()


# -- the document ----------------------------------------------------------------------

def test_the_document_lists_every_declared_route_and_nothing_else(world):
    paths = document(world)["paths"]
    declared = {(r.path, r.method.lower()) for r in API.routes}
    listed = {(path, method) for path, item in paths.items() for method in item}
    assert listed == declared
    assert ("/api/devices/{id}", "put") in listed and ("/api/openapi.json", "get") in listed
    assert len(declared) >= 50


def test_the_document_is_structurally_openapi_3_1(world):
    doc = document(world)
    assert re.fullmatch(r"3\.1\.[0-9]+", doc["openapi"])
    assert doc["info"]["title"] and doc["info"]["version"]
    schemas = doc["components"]["schemas"]
    operation_ids = []
    for path, item in doc["paths"].items():
        assert path.startswith("/api/")
        for method, operation in item.items():
            assert method in {"get", "put", "post", "delete", "patch", "head", "options"}
            operation_ids.append(operation["operationId"])
            assert operation["responses"], (path, method)
            assert any(code.startswith("2") for code in operation["responses"]), (path, method)
            assert all(re.fullmatch(r"[1-5][0-9][0-9]|default", code) for code in operation["responses"])
            in_path = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert in_path == set(re.findall(r"\{(\w+)\}", path)), (path, method)
            assert all(p["in"] in {"path", "query"} and "schema" in p for p in operation["parameters"])
            for name in in_path:
                assert next(p for p in operation["parameters"] if p["name"] == name)["required"]
    assert len(operation_ids) == len(set(operation_ids))
    for ref in re.findall(r'"\$ref": "([^"]+)"', json.dumps(doc)):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref


def test_the_document_describes_parameters_bodies_and_answers_from_the_models(world):
    paths = document(world)["paths"]
    positions = {p["name"]: p for p in paths["/api/positions"]["get"]["parameters"]}
    assert set(positions) == {"id", "deviceId", "from", "to"}
    assert positions["id"]["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert positions["from"]["schema"] == {"type": "string", "format": "date-time"}
    assert positions["deviceId"]["schema"] == {"type": "integer"}
    post_group = paths["/api/groups"]["post"]
    assert post_group["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GroupBody"}
    assert post_group["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/GroupOut"}
    assert post_group["responses"]["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorOut"}
    assert "content" not in paths["/api/groups/{id}"]["delete"]["responses"]["204"]
    assert "security" not in paths["/api/server"]["get"] and paths["/api/devices"]["get"]["security"]
    login = paths["/api/session"]["post"]["requestBody"]["content"]
    assert list(login) == ["application/x-www-form-urlencoded"]
    schemas = document(world)["components"]["schemas"]
    assert set(schemas["GroupBody"]["required"]) == {"name"}
    assert "uniqueId" in schemas["DeviceOut"]["properties"]


def test_declared_response_models_match_what_is_sent(world):
    """The answers of every GET collection route validate against their declared model."""
    device = world.devices["d1"]
    group = call(world, "POST", "/api/groups", {"name": "g"}).json()
    call(world, "POST", "/api/geofences", {"name": "z", "area": "CIRCLE (52.5 13.4, 200)"})
    call(world, "POST", "/api/calendars", {"name": "c", "data": {
        "intervals": [{"days": ["mon"], "from": "08:00", "to": "17:00"}]}})
    call(world, "POST", "/api/notifications", {"type": "alarm"})
    call(world, "POST", "/api/notifications/tokens", {"channel": "fcm", "token": "t" * 20})
    checked = 0
    for declared in API.routes:
        if declared.method != "GET" or declared.response is None:
            continue
        path = declared.path.replace("{id}", str(group["id"] if "groups" in declared.path
                                                 else device.id))
        if declared.path == "/api/reports/events":
            path += "?from=2024-01-01T00:00:00Z&to=2024-12-01T00:00:00Z"
        response = world.client.request("GET", path, auth=ADMIN)
        if response.status != 200:
            continue
        if declared.response is not str:
            TypeAdapter(declared.response).validate_python(response.json())
        checked += 1
    assert checked >= 15


# -- validation and errors ---------------------------------------------------------------

@pytest.mark.parametrize("path, message", [
    ("/api/notifications/deliveries?eventId=x", "eventId must be a non-negative integer"),
    ("/api/notifications/deliveries?eventId=1&eventId=2", "eventId: give at most one"),
    ("/api/commands/types?deviceId=1&deviceId=2", "deviceId may be given only once"),
    ("/api/reports/events?from=2024-01-01T00:00:00Z", "from and to are required"),
    ("/api/reports/events?from=x&to=2024-01-01T00:00:00Z", "from is not an ISO 8601 time"),
    ("/api/geofences?format=kml", "format must be geojson or json"),
    ("/api/notifications?groupId=%00", "groupId: NUL character"),
])
def test_a_bad_query_is_a_400_naming_the_parameter(world, path, message):
    response = world.client.request("GET", path, auth=ALICE)
    assert response.status == 400, response.body
    assert response.json()["message"].startswith(message), response.json()


@pytest.mark.parametrize("method, path, body, field", [
    ("POST", "/api/groups", {"name": 5}, "name: "),
    ("POST", "/api/permissions", {"deviceId": 1, "geofenceId": "1"}, "geofenceId: "),
    ("POST", "/api/notifications/tokens", {"channel": "fcm", "token": ["x"]}, "token: "),
    ("PUT", "/api/notifications/preferences", {"quietHours": {"from": "x", "to": "07:00"}},
     "quietHours.from"),
    ("POST", "/api/rules", {"name": "r", "enabled": 1}, "enabled: "),
    ("POST", "/api/commands/send", {"deviceId": "1", "type": "engineStop"}, "deviceId"),
])
def test_a_bad_body_is_a_400_naming_the_field(world, method, path, body, field):
    response = call(world, method, path, body)
    assert response.status == 400, response.body
    assert response.json()["message"].startswith(field), response.json()


class _Item(BaseModel):
    n: int = Field(ge=1)


class _StrictBody(JsonBody):
    items: list[_Item]
    label: str = Field(max_length=3)


class _PageQuery(Query):
    page: OneInt = None
    tag: Ints = Field(default_factory=list)


def _site_of(table: RouteTable) -> Client:
    reactor = FakeReactor()
    context = ApiContext(store=None, threadpool=SyncThreadPool(), reactor=reactor, auth=None,  # type: ignore[arg-type]
                         version="test")
    site = BoundedSite(routes.build_resource(table, context), max_connections=10,
                       header_timeout_s=None, requestFactory=BoundedRequest, reactor=reactor)
    return Client(site)


def _table() -> RouteTable:
    table = RouteTable()

    @table.route("POST", "/api/things/{id}", body=_StrictBody, query=_PageQuery, auth="none")
    async def post_thing(call: Call, id: int, body: _StrictBody, query: _PageQuery) -> Any:  # noqa: A002
        """Echo."""
        return {"id": id, "labels": body.label, "n": [i.n for i in body.items],
                "page": query.page, "tags": query.tag}

    @table.route("DELETE", "/api/things/{id}", status=204, auth="none")
    async def delete_thing(call: Call, id: int) -> Reply:  # noqa: A002
        """Nothing."""
        return Reply(204)

    return table


def test_a_pydantic_model_error_is_a_400_with_the_path_of_the_field_at_fault():
    client = _site_of(_table())
    good = client.request("POST", "/api/things/7?page=2&tag=1&tag=3",
                          body=b'{"items":[{"n":1}],"label":"ab"}',
                          headers={"Content-Type": "application/json"})
    assert good.status == 200 and good.json() == {"id": 7, "labels": "ab", "n": [1], "page": 2,
                                                  "tags": [1, 3]}
    bad = client.request("POST", "/api/things/7", body=b'{"items":[{"n":1},{"n":0}],"label":"ab"}',
                         headers={"Content-Type": "application/json"})
    assert bad.status == 400 and bad.json()["message"].startswith("items[1].n: "), bad.json()
    assert set(bad.json()) == {"status", "error", "message"}
    missing = client.request("POST", "/api/things/7", body=b'{"items":[]}',
                             headers={"Content-Type": "application/json"})
    assert missing.status == 400 and missing.json()["message"].startswith("label: ")
    query = client.request("POST", "/api/things/7?page=x", body=b'{"items":[],"label":"a"}',
                           headers={"Content-Type": "application/json"})
    assert query.status == 400 and query.json()["message"] == "page must be a non-negative integer, not 'x'"


def test_undeclared_paths_and_methods_of_a_table_are_json_404_and_405():
    client = _site_of(_table())
    assert client.request("GET", "/api/things/7").header("Allow") == "DELETE, POST"
    assert client.request("GET", "/api/things/7").status == 405
    assert client.request("DELETE", "/api/things/7/").status == 204
    for path in ("/api/things", "/api/things/x", "/api/things/7/more", "/api/things%2F7"):
        response = client.request("DELETE", path)
        assert response.status == 404 and response.json()["message"] == "no such resource", path


def test_a_route_declared_twice_is_refused():
    table = _table()
    with pytest.raises(ValueError, match="declared twice"):
        table.route("DELETE", "/api/things/{id}")(table.routes[1].handler)


def test_a_host_header_that_is_not_utf8_is_a_json_400(world):
    response = world.client.send_raw(b"GET /api/server HTTP/1.1\r\nHost: \xff\r\n\r\n")
    assert response.status == 400 and response.json()["status"] == 400


def test_the_health_check_keeps_its_plain_text_answer(world):
    response = world.client.request("GET", "/api/health")
    assert response.status == 200 and response.body == b"OK"
    assert response.header("Content-Type") == "text/plain; charset=utf-8"
    assert response.header("Cache-Control") == "no-store"
