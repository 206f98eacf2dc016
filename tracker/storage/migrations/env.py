"""Alembic environment for the Tracker schema.

Used programmatically: `SqlStore.migrate()` builds an `alembic.config.Config` whose
`script_location` is this directory and passes its open connection (already in a
transaction) as `config.attributes["connection"]`.  No alembic.ini is needed.

To write a new revision (autogenerate compares against `schema.metadata`)::

    from alembic import command
    from alembic.config import Config
    config = Config()
    config.set_main_option("script_location", "tracker/storage/migrations")
    config.set_main_option("sqlalchemy.url", "sqlite:///scratch.db")
    command.upgrade(config, "head")
    command.revision(config, "what changed", autogenerate=True, rev_id="0002")

Offline mode (`--sql`) renders the SQL for the given URL's dialect.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from tracker.storage.schema import POSITION_GEOM_COLUMN, metadata

config = context.config


def _url() -> str:
    url = (context.get_x_argument(as_dictionary=True).get("url")
           or config.get_main_option("sqlalchemy.url"))
    if not url:
        raise RuntimeError("no database: pass -x url=... or set sqlalchemy.url")
    return url


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave PostGIS's own tables and our PostgreSQL-only geom column out of diffs."""
    if type_ == "table" and reflected and compare_to is None:
        return name in metadata.tables
    if type_ == "column" and name == POSITION_GEOM_COLUMN:
        return False
    if type_ == "index" and name == f"ix_positions_{POSITION_GEOM_COLUMN}":
        return False
    return True


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=NullPool)
    with engine.begin() as connection:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
