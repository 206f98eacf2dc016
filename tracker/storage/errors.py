"""Which database failures pass (retry) and which never will (refuse the data).

The batch writer retries a transient failure until it commits (store-then-ack:
nothing is acknowledged meanwhile) and splits a batch on a permanent one, storing
the good rows and quarantining the bad.  Telling the two apart:

- PostgreSQL answers with an SQLSTATE.  Transient classes: 08 connection
  exception, 40 transaction rollback (serialisation failure, deadlock), 53
  insufficient resources (disk full, out of memory, too many connections), 55
  object not in prerequisite state (lock not available), 57 operator intervention
  (admin shutdown, query cancelled, cannot connect now), 58 system error (I/O),
  XX internal error.  Everything else (22 data exception: bad text such as NUL,
  out-of-range numbers; 23 integrity constraint; 42 syntax or access ...) is
  permanent: the same rows would fail again.
- A driver error without an SQLSTATE (connection refused, server closed the
  connection, SQLite) is transient when it is an OperationalError or the connection
  was invalidated (SQLite's "database is locked", "disk I/O error", "unable to
  open"), permanent otherwise (IntegrityError, DataError, InterfaceError for a value
  the driver cannot bind, ProgrammingError).
- An exception that is not a database error at all is raised by our own code while
  preparing the rows (a value that cannot be serialised, encoded or bound): it
  would fail again, so it is permanent.  So is a `StatementError` that SQLAlchemy
  raised before the statement reached the database.
"""

from __future__ import annotations

from sqlalchemy.exc import DBAPIError, OperationalError

TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "55", "57", "58", "XX"})


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same write may succeed (see the module docstring)."""
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "pgcode", None) or getattr(error.orig, "sqlstate", None)
    if sqlstate:
        return str(sqlstate)[:2] in TRANSIENT_SQLSTATE_CLASSES
    return isinstance(error, OperationalError)


def describe(error: BaseException) -> str:
    """One line for a log or a quarantine entry: the driver's message without
    SQLAlchemy's statement and parameters (which may repeat the whole batch)."""
    original = getattr(error, "orig", None) or error
    text = str(original).strip().splitlines()
    sqlstate = getattr(original, "pgcode", None)
    prefix = f"{type(original).__name__}{f' [{sqlstate}]' if sqlstate else ''}"
    return f"{prefix}: {text[0] if text else ''}"
