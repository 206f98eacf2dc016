"""``/api/health`` (Traccar's plain check) and ``/api/server/health`` (counters)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.web.harness import ADMIN, ALICE, make_world
from tracker.models import QuarantineEntry


@pytest.fixture
def world(tmp_path):
    counters = {"writer.committedBatches": 7, "writer.quarantined": 1}
    return make_world(tmp_path / "tracker.db", counters=lambda: counters)


def test_plain_health_needs_no_login_and_says_ok(world):
    response = world.client.request("GET", "/api/health")
    assert response.status == 200
    assert response.body == b"OK"
    assert response.header("Content-Type").startswith("text/plain")


def test_plain_health_is_500_when_the_database_fails(world, monkeypatch):
    def broken():
        raise OSError("database gone")
    monkeypatch.setattr(world.store, "ping", broken)
    response = world.client.request("GET", "/api/health")
    assert response.status == 500
    assert b"OK" not in response.body


def test_server_health_gives_an_administrator_counters_and_quarantine_rows(world):
    world.store.write_quarantine([QuarantineEntry(
        received=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), protocol="osmand",
        error="NUL in a string", frame_hex=b"a\x00b".hex(), unique_id="359710049095095")])
    response = world.client.request("GET", "/api/server/health", auth=ADMIN)
    assert response.status == 200
    body = response.json()
    assert body["status"] == "ok" and body["database"] == "ok"
    assert body["counters"] == {"writer.committedBatches": 7, "writer.quarantined": 1}
    assert body["quarantine"] == {"rows": 1}


def test_server_health_is_for_administrators_only(world):
    assert world.client.request("GET", "/api/server/health").status == 401
    assert world.client.request("GET", "/api/server/health", auth=ALICE).status == 403


def test_server_health_reports_a_degraded_database(world, monkeypatch):
    def broken():
        raise OSError("database gone")
    monkeypatch.setattr(world.store, "quarantine_count", broken)
    body = world.client.request("GET", "/api/server/health", auth=ADMIN).json()
    assert body["status"] == "degraded"
    assert body["database"].startswith("unavailable")


def test_api_server_itself_is_unchanged(world):
    response = world.client.request("GET", "/api/server")
    assert response.status == 200
    assert "version" in response.json()
