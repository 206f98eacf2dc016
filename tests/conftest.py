"""Shared fixtures: databases for the storage layer and everything built on it.

- `postgis_cluster` / `postgis_url`: one throwaway PostgreSQL + PostGIS server per
  test session (tests/pgcluster.py) and the URL of its `tracker` database.  Where
  the binaries or PostGIS are missing the tests are skipped, or fail when
  TRACKER_REQUIRE_POSTGIS=1 (as in CI), so a green run cannot silently mean "not run".
- `fresh_postgis_url`: a new empty database per test (PostGIS is created by migrate).
- `migrated_postgis_url` / `migrated_url`: a new database at the latest schema, a
  copy of a template migrated once per test process (tests/templates.py);
  `migrated_url` once on SQLite and once on PostGIS.
- `store`: a migrated `SqlStore` on `migrated_url`.

Tests needing PostGIS are marked `postgis`: `pytest -m "not postgis"` runs the rest.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from tests.pgcluster import PgCluster, PgUnavailable
from tests.templates import migrated_sqlite_url
from tracker.storage import SqlStore

_database_numbers = itertools.count(1)


LOOPBACK_DIRECTORIES = ("integration", "push")
"""Test directories whose tests all talk to real servers on loopback (the server,
fake push gateways, SMTP): marked `slow`, so they run in the e2e env, not unit."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = os.path.dirname(__file__)
    for item in items:
        relative = os.path.relpath(str(item.path), tests_dir)
        if relative.split(os.sep)[0] in LOOPBACK_DIRECTORIES:
            item.add_marker(pytest.mark.slow)


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


@pytest.fixture(scope="session")
def postgis_template(postgis_cluster: PgCluster) -> str:
    """Name of a migrated database that `migrated_postgis_url` copies."""
    name = f"template_{os.getpid()}"
    template = SqlStore(postgis_cluster.create_database(name))
    template.migrate()
    template.close()
    return name


@pytest.fixture
def migrated_postgis_url(postgis_cluster: PgCluster, postgis_template: str) -> Iterator[str]:
    """URL of a new database at the latest schema (a copy of the template), dropped
    after the test."""
    name = f"test_{os.getpid()}_{next(_database_numbers)}"
    url = postgis_cluster.create_database(name, template=postgis_template)
    try:
        yield url
    finally:
        postgis_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def migrated_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """A database at the latest schema: SQLite in tmp_path, or PostGIS."""
    if request.param == "sqlite":
        return migrated_sqlite_url(tmp_path / "tracker.db")
    return request.getfixturevalue("migrated_postgis_url")


@pytest.fixture
def database_url(migrated_url: str) -> str:
    """The database a real server under test runs on (see `migrated_url`)."""
    return migrated_url


@pytest.fixture
def store(migrated_url: str) -> Iterator[SqlStore]:
    """A migrated SqlStore on SQLite (in tmp_path) or on a fresh PostGIS database."""
    sql_store = SqlStore(migrated_url)
    try:
        yield sql_store
    finally:
        sql_store.close()
