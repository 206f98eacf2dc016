"""Shared fixtures: databases for the storage layer and everything built on it.

- `postgis_cluster` / `postgis_url`: one throwaway PostgreSQL + PostGIS server per
  test session (tests/pgcluster.py) and the URL of its `tracker` database.  Where
  the binaries or PostGIS are missing the tests are skipped, or fail when
  TRACKER_REQUIRE_POSTGIS=1 (as in CI), so a green run cannot silently mean "not run".
- `fresh_postgis_url`: a new empty database per test (PostGIS is created by migrate).
- `store`: a migrated `SqlStore`, once on SQLite and once on PostGIS.

Tests needing PostGIS are marked `postgis`: `pytest -m "not postgis"` runs the rest.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, PgUnavailable
from tracker.storage import SqlStore

_database_numbers = itertools.count(1)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgis: needs PostgreSQL + PostGIS (a throwaway server is started "
                   "by tests/pgcluster.py); deselect with -m 'not postgis'")


@pytest.fixture(scope="session")
def postgis_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL + PostGIS server private to this test session."""
    cluster = PgCluster()
    try:
        cluster.start()
    except PgUnavailable as exc:
        reason = f"PostgreSQL/PostGIS unavailable: {exc}"
        if os.environ.get("TRACKER_REQUIRE_POSTGIS") == "1":
            pytest.fail(f"{reason} (TRACKER_REQUIRE_POSTGIS=1)", pytrace=False)
        pytest.skip(reason)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgis_url(postgis_cluster: PgCluster) -> str:
    """URL of the session's shared `tracker` database (PostGIS installed)."""
    return postgis_cluster.url


@pytest.fixture
def fresh_postgis_url(postgis_cluster: PgCluster) -> Iterator[str]:
    """URL of a new, empty database, dropped after the test."""
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    url = postgis_cluster.create_database(name)
    try:
        yield url
    finally:
        postgis_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[SqlStore]:
    """A migrated SqlStore on SQLite (in tmp_path) or on a fresh PostGIS database."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'tracker.db'}"
    else:
        url = request.getfixturevalue("fresh_postgis_url")
    sql_store = SqlStore(url)
    sql_store.migrate()
    try:
        yield sql_store
    finally:
        sql_store.close()
