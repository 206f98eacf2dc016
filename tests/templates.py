"""Migrated databases for tests, made once per test process and copied.

Migrating costs Alembic's start-up plus every revision (on PostgreSQL also
CREATE EXTENSION postgis): far more than most tests themselves.  So each test
process migrates one template and every test gets a copy:

- SQLite: `migrated_sqlite_url(path)` copies a migrated file to `path` (the
  template lives in a temporary directory of this process, removed at exit);
- PostgreSQL: the `migrated_postgis_url` fixture (tests/conftest.py) creates its
  database with ``CREATE DATABASE ... TEMPLATE`` from a migrated one.

Tests of migrations themselves keep starting from empty databases.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path


def migrated_sqlite_url(path: Path | str) -> str:
    """Copy this process's migrated SQLite template to `path`; its SQLAlchemy URL."""
    shutil.copyfile(_sqlite_template(), path)
    return f"sqlite:///{path}"


@functools.cache
def _sqlite_template() -> Path:
    from tracker.storage import SqlStore

    directory = Path(tempfile.mkdtemp(prefix="tracker-template-"))
    atexit.register(shutil.rmtree, directory, True)
    template = directory / "migrated.db"
    store = SqlStore(f"sqlite:///{template}")
    store.migrate()
    store.close()                       # the last connection closed: WAL checkpointed
    return template
