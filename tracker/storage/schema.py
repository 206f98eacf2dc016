"""The relational schema (SQLAlchemy 2 Core), identical on SQLite and PostGIS.

This module describes the tables as the Python code uses them; the Alembic
revisions in `migrations/versions/` create them (a test checks that the two agree).
PostgreSQL gets one thing more, added by the migration only: `positions.geom`, a
`geography(Point,4326)` column GENERATED from longitude/latitude with a GiST index.
It is not declared here because nothing writes it (the database computes it) and
the Python code path must not differ between the databases; spatial queries name it
explicitly (`POSITION_GEOM_COLUMN`).

Conventions:
- every time is a `UTCDateTime`: stored as UTC, always read back timezone-aware;
- JSON columns are `JSONB` on PostgreSQL, JSON text on SQLite;
- speed is in knots, distances in metres, angles in degrees;
- `devices.position_id` and `events.position_id` are plain numbers, not foreign
  keys: positions get purged by retention (and partitioned by time on large
  installs, where foreign keys into positions are not possible);
- `UNIQUE (device_id, fix_time)` on positions is also THE (device_id, fix_time)
  index for history queries; a second identical index would only slow inserts;
- `events.geofence_id` is a plain number too: events outlive the zones they name;
- configuration (groups, zones, calendars, rules, device settings) belongs to one
  organisation; every write to it bumps the single row of `config_revision`, which
  the running server polls to know when to reload its rules;
- `devices.attributes` are the STATUS attributes devices report (merged by the batch
  writer); `devices.settings` are what users configure (Traccar's device
  "attributes": speedLimit ...), `Device.attributes` in `tracker.models`.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
    text,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from tracker.models import DEFAULT_ORGANISATION_ID  # noqa: F401 - re-exported for migrations

POSITION_GEOM_COLUMN = "geom"   # PostgreSQL only, see the module docstring

# Deterministic constraint names, so that migrations can refer to them.
metadata = MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores `timestamp with time zone`; SQLite has no time zones, so the
    value is stored as naive UTC text and the UTC zone is put back when reading.
    Naive datetimes are refused: their meaning would depend on the machine.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None,
                           dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given; "
                             "storage takes timezone-aware UTC datetimes only")
        value = value.astimezone(dt.UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: dt.datetime | None,
                             dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def JsonType(none_as_null: bool = False) -> JSON:  # noqa: N802 - reads like a type
    """JSON on SQLite, JSONB on PostgreSQL (same Python values both ways).

    With `none_as_null`, Python None is stored as SQL NULL rather than JSON null.
    """
    return JSON(none_as_null=none_as_null).with_variant(
        JSONB(none_as_null=none_as_null), "postgresql")


def BigId() -> BigInteger:  # noqa: N802
    """A 64-bit id; INTEGER on SQLite, where only that becomes an autoincrement rowid."""
    return BigInteger().with_variant(Integer(), "sqlite")


organisations = Table(
    "organisations", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("created", UTCDateTime(), nullable=False),
    Column("timezone", String(64), nullable=False, server_default="UTC"),   # IANA name
)

users = Table(
    "users", metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),   # stored lower-case
    Column("name", String(200), nullable=False, server_default=""),
    Column("password_hash", String(255), nullable=False),        # Argon2id PHC string
    Column("administrator", Boolean, nullable=False, server_default=false()),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("created", UTCDateTime(), nullable=False),
)

web_sessions = Table(
    "web_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),   # sha256 hex of the token
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("expires", UTCDateTime(), nullable=False, index=True),
)

api_tokens = Table(
    # Traccar's session tokens (POST /api/session/token, Authorization: Bearer):
    # long-lived, per user, revocable; only the SHA-256 of the token is kept.
    "api_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"),
           nullable=False, index=True),
    Column("token_hash", String(64), nullable=False, unique=True),   # sha256 hex of the token
    Column("created", UTCDateTime(), nullable=False),
    Column("expires", UTCDateTime(), nullable=True),     # None: never
    Column("revoked", UTCDateTime(), nullable=True),     # when revoked; None: live
)

devices = Table(
    "devices", metadata,
    Column("id", Integer, primary_key=True),
    Column("unique_id", String(128), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False,
           index=True),
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("last_update", UTCDateTime(), nullable=True),
    Column("position_id", BigId(), nullable=True),     # latest non-archive position
    Column("attributes", JsonType(), nullable=False,   # status attributes, merged
           server_default=text("'{}'")),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="SET NULL"), nullable=True,
           index=True),
    Column("settings", JsonType(), nullable=False,     # user configuration: speedLimit ...
           server_default=text("'{}'")),
)

positions = Table(
    "positions", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"),
           nullable=False),
    Column("protocol", String(64), nullable=False),
    Column("server_time", UTCDateTime(), nullable=False),
    Column("device_time", UTCDateTime(), nullable=False),
    Column("fix_time", UTCDateTime(), nullable=False),
    Column("valid", Boolean, nullable=False),
    Column("latitude", Double(), nullable=False),
    Column("longitude", Double(), nullable=False),
    Column("altitude", Double(), nullable=False, server_default="0"),   # metres
    Column("speed", Double(), nullable=False, server_default="0"),      # knots
    Column("course", Double(), nullable=False, server_default="0"),     # degrees
    Column("accuracy", Double(), nullable=False, server_default="0"),   # metres
    Column("attributes", JsonType(), nullable=False),
    Column("network", JsonType(none_as_null=True), nullable=True),
    Column("archive", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("device_id", "fix_time"),
)

events = Table(
    "events", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"),
           nullable=False),
    Column("type", String(64), nullable=False),
    Column("event_time", UTCDateTime(), nullable=False),
    Column("position_id", BigId(), nullable=True),
    Column("attributes", JsonType(), nullable=False),
    # `NewEvent.subject` (the alarm, geofence, rule or attribute) or '': part of the
    # unique key, so a retransmitted event is stored once while two different alarms
    # (or two zones entered) at the same instant are both kept.
    Column("subject", String(128), nullable=False, server_default=""),
    Column("geofence_id", Integer, nullable=True),   # no foreign key: see the docstring
    UniqueConstraint("device_id", "type", "event_time", "subject"),
    Index("ix_events_device_id_event_time", "device_id", "event_time"),
)

unknown_devices = Table(
    "unknown_devices", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("unique_id", String(128), nullable=False),
    Column("protocol", String(64), nullable=False),
    Column("remote_address", String(128), nullable=False),
    Column("attempt_time", UTCDateTime(), nullable=False, index=True),
)

commands = Table(
    "commands", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Integer, nullable=True),        # who queued it; None from the CLI
    Column("type", String(64), nullable=False),       # Traccar command type
    Column("attributes", JsonType(), nullable=False),
    Column("status", String(16), nullable=False),     # queued, sent, answered, failed
    Column("created", UTCDateTime(), nullable=False),
    Column("sent_time", UTCDateTime(), nullable=True),
    Column("result_time", UTCDateTime(), nullable=True),
    Column("result", String(2000), nullable=True),    # the device's answer or the failure
    Index("ix_commands_device_id_status", "device_id", "status"),
)


# -- configuration (migration 0003) --------------------------------------------------

groups = Table(
    "groups", metadata,
    Column("id", Integer, primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("attributes", JsonType(), nullable=False, server_default=text("'{}'")),
)

calendars = Table(
    "calendars", metadata,
    Column("id", Integer, primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("data", JsonType(), nullable=False),   # geofence.calendar.Calendar.from_json
)

geofences = Table(
    "geofences", metadata,
    Column("id", Integer, primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("description", String(2000), nullable=False, server_default=""),
    Column("geometry", JsonType(), nullable=False),   # a GeoJSON Feature, (lon, lat)
    Column("calendar_id", Integer, ForeignKey("calendars.id", ondelete="SET NULL"),
           nullable=True),
    Column("attributes", JsonType(), nullable=False, server_default=text("'{}'")),
)

device_geofences = Table(
    "device_geofences", metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"),
           primary_key=True),
    Column("geofence_id", Integer, ForeignKey("geofences.id", ondelete="CASCADE"),
           primary_key=True, index=True),
)

group_geofences = Table(
    "group_geofences", metadata,
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"),
           primary_key=True),
    Column("geofence_id", Integer, ForeignKey("geofences.id", ondelete="CASCADE"),
           primary_key=True, index=True),
)

rules = Table(
    "rules", metadata,
    Column("id", Integer, primary_key=True),
    Column("organisation_id", Integer, ForeignKey("organisations.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("definition", JsonType(), nullable=False),   # geofence.rules.parse_rule
    Column("enabled", Boolean, nullable=False, server_default=true()),
    Column("created", UTCDateTime(), nullable=False),
)

rule_states = Table(
    "rule_states", metadata,
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"),
           primary_key=True),
    Column("state", JsonType(), nullable=False),   # geofence.engine.DeviceState.to_json()
    Column("updated", UTCDateTime(), nullable=False),
)

CONFIG_REVISION_ROW = 1   # the one row of config_revision, inserted by migration 0003

config_revision = Table(
    "config_revision", metadata,
    Column("id", Integer, primary_key=True),
    Column("revision", BigInteger, nullable=False),
)

# -- notifications (migration 0004) ----------------------------------------------------
# event_id / delivery_id are plain numbers, not foreign keys: retention purges
# events and positions on its own schedule, the delivery history stays.

notification_outbox = Table(
    "notification_outbox", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("event_id", BigId(), nullable=False, unique=True),
    Column("device_id", Integer, nullable=False),
    Column("created", UTCDateTime(), nullable=False),
)

push_tokens = Table(
    "push_tokens", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("channel", String(16), nullable=False),     # tracker.push.base.CHANNELS
    Column("platform", String(16), nullable=False),    # android, ios, web ...
    Column("token", String(4096), nullable=False),     # a secret: never logged in full
    Column("token_hash", String(64), nullable=False),  # sha256 hex, kept with attempts
    Column("created", UTCDateTime(), nullable=False),
    Column("disabled", UTCDateTime(), nullable=True),  # pruned (gateway said it is dead)
    Column("disabled_reason", String(200), nullable=True),
    # When the target was confirmed: at registration for app tokens; for e-mail
    # addresses only once the code sent there came back.  NULL: not yet, never used.
    Column("confirmed", UTCDateTime(), nullable=True),
    # "<wrong tries>:<sha256 hex of the code, cut>" while a code is outstanding
    Column("confirm_code_hash", String(64), nullable=True),
    UniqueConstraint("channel", "token_hash"),
)

notification_preferences = Table(
    "notification_preferences", metadata,
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("data", JsonType(), nullable=False),        # tracker.push.preferences.Preferences
)

traccar_notifications = Table(
    # Traccar's /api/notifications objects, owned by the user who created them
    # (Traccar links them to users with /api/permissions; here the owner is the user).
    "traccar_notifications", metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("type", String(64), nullable=False),            # event type, e.g. "alarm"
    Column("always", Boolean, nullable=False),              # false: linked devices only
    Column("notificators", String(200), nullable=False),   # "firebase,mail" ...
    Column("attributes", JsonType(), nullable=False),       # {"alarms": "sos,powerCut"}
)

notification_devices = Table(
    # Traccar's {deviceId, notificationId} permission: with `always` false, a
    # notification covers only its linked devices and the devices of its linked groups.
    "notification_devices", metadata,
    Column("notification_id", Integer,
           ForeignKey("traccar_notifications.id", ondelete="CASCADE"), primary_key=True),
    Column("device_id", Integer, ForeignKey("devices.id", ondelete="CASCADE"),
           primary_key=True, index=True),
)

notification_groups = Table(
    "notification_groups", metadata,                       # {groupId, notificationId}
    Column("notification_id", Integer,
           ForeignKey("traccar_notifications.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", Integer, ForeignKey("groups.id", ondelete="CASCADE"),
           primary_key=True, index=True),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("event_id", BigId(), nullable=False),
    Column("token_id", Integer, nullable=False),
    Column("user_id", Integer, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    # pending, sent, failed, invalid_token, coalesced, suppressed (quiet hours)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt", UTCDateTime(), nullable=True),
    Column("last_error", String(200), nullable=True),
    Column("updated", UTCDateTime(), nullable=False),
    UniqueConstraint("event_id", "token_id"),          # never twice to one token per event
    Index("ix_deliveries_status_next_attempt", "status", "next_attempt"),
)

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("delivery_id", BigId(), nullable=False, index=True),
    Column("attempt_time", UTCDateTime(), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False),
    Column("status", String(16), nullable=False),      # sent, retry, invalid_token, failed
    Column("error", String(200), nullable=True),       # the gateway's error code
)

quarantine = Table(
    # Device data the database refused permanently (a value it cannot store), kept
    # for the operator instead of blocking the writer: `tracker quarantine ...`.
    "quarantine", metadata,
    Column("id", BigId(), primary_key=True, autoincrement=True),
    Column("received", UTCDateTime(), nullable=False, index=True),
    Column("protocol", String(64), nullable=False),
    Column("device_id", Integer, nullable=True),           # no foreign key: outlives devices
    Column("unique_id", String(128), nullable=True),
    Column("remote_address", String(128), nullable=True),
    Column("frame_hex", String(8192), nullable=False),     # the raw frame (truncated)
    Column("error", String(1000), nullable=False),         # what the database said
)
