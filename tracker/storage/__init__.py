"""Storage: SQLAlchemy Core on SQLite (embedded default) or PostgreSQL/PostGIS.

`Store` is the interface the server depends on (`tracker.ports`: one Protocol per
concern), `SqlStore` its only implementation (`sql.py`, a mixin per concern: `devices`,
`users`, `positions`, `events`, `commands`, `quarantine`, `configuration`,
`notifications`, on `base.SqlBase`) and `open_store(url)` the way to get a migrated
one; the tables live in `schema.py`, the Alembic revisions in `migrations/`, password
hashing (Argon2id) in `passwords.py`.  The domain decisions applied in storage
transactions are `tracker.policies`.
"""

from tracker.ports import UNCHANGED, DuplicateError, InUseError, NotFoundError, Store
from tracker.storage.sql import SqlStore, open_store

__all__ = ["UNCHANGED", "DuplicateError", "InUseError", "NotFoundError", "SqlStore", "Store",
           "open_store"]
