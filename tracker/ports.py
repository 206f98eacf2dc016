"""The storage interface the rest of the server depends on (a port: domain
services, adapters and the web layer import this module, never `tracker.storage`;
the composition root picks the implementation, `tracker.storage.SqlStore`).

One small `typing.Protocol` per concern, so a service can say what it needs (the
writer a `PositionRepository` and `QuarantineRepository`, the push dispatcher an
`OutboxRepository` ...); `Store` is all of them, what `SqlStore` implements:

- `Lifecycle`: migrate, ping, error classification;
- `DeviceRepository`: devices, one visible device (`visible_device`), unknown ids;
- `UserRepository`: users, passwords, web sessions, API tokens;
- `PositionRepository`: `write_batch`, latest positions, history (capped list,
  keyset pages `positions_page`, a bounded-memory stream `iter_positions`);
- `EventRepository`, `CommandRepository`, `QuarantineRepository`;
- `ConfigurationRepository`: organisations, groups, device settings, zones,
  calendars, rules, and the snapshot the rule engine reads;
- `NotificationRepository`: push targets, preferences, Traccar notifications;
- `OutboxRepository`: the notification dispatcher's side (outbox, deliveries).

Every method is blocking and is called from a thread, never the reactor thread
(the batch writer has its own; the web layer uses `deferToThreadPool`).  Methods
return the dataclasses of `tracker.models` (and the few records below).  Scoping:
every read that takes a `user` returns only what that user may see (administrators
see everything; other users see their organisation's devices).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Final, Literal, NamedTuple, Protocol

from tracker.models import (
    Batch,
    Calendar,
    DeliveryRecord,
    Device,
    DueDelivery,
    Geofence,
    Group,
    NewDelivery,
    Organisation,
    OutboxItem,
    PushToken,
    QuarantineEntry,
    Rule,
    RuleConfig,
    StoredCommand,
    StoredEvent,
    StoredPosition,
    StoredQuarantine,
    TraccarNotification,
    UnknownDeviceAttempt,
    User,
)


@enum.unique
class Unchanged(enum.Enum):
    """The type of `UNCHANGED`."""

    UNCHANGED = "UNCHANGED"


UNCHANGED: Final = Unchanged.UNCHANGED
"""An argument's default meaning "leave this as it is" where None is a value (it
removes a device's group in `Store.update_device`)."""

DEFAULT_HISTORY_LIMIT: Final = 100_000
"""At most this many positions from `PositionRepository.positions` unless the
caller passes `limit` (about 3 months of one fix a minute); callers that need more
page with `positions_page` or stream with `iter_positions`."""

HISTORY_PAGE_SIZE: Final = 1_000
"""Rows per query of `iter_positions` (and the default page of `positions_page`)."""


# -- records of the port (the rest are in tracker.models) ----------------------------


@dataclasses.dataclass(frozen=True, slots=True, order=True)
class PositionCursor:
    """Where a page of history ended: the last position's (fix_time, id).  The next
    page starts strictly after it (keyset pagination: no OFFSET, stable while
    positions are inserted elsewhere)."""

    fix_time: dt.datetime
    id: int


@dataclasses.dataclass(frozen=True, slots=True)
class PositionPage:
    """One page of a device's history, oldest first; `next` is None on the last page."""

    positions: list[StoredPosition]
    next: PositionCursor | None


@dataclasses.dataclass(frozen=True, slots=True)
class StoredPushToken(PushToken):
    """A PushToken as stored, with when it was confirmed (None: not yet, so it gets
    nothing; see `tracker.push.confirm`)."""

    confirmed: dt.datetime | None = None


class PushRegistration(NamedTuple):
    token: StoredPushToken
    code_issued: bool        # the confirm_code given was stored: send it


class Recipient(NamedTuple):
    user: User
    preferences: Mapping[str, Any] | None     # as stored (Preferences.from_json reads it)
    subscriptions: list[TraccarNotification]
    tokens: list[PushToken]                   # enabled and confirmed ones only


# -- the repositories -------------------------------------------------------------------


class Lifecycle(Protocol):
    dialect: str   # "sqlite" or "postgresql"

    def migrate(self) -> None:
        """Apply pending Alembic migrations (idempotent)."""

    def ping(self) -> None:
        """Raise if the database cannot be reached."""

    def is_transient(self, error: BaseException) -> bool:
        """Whether retrying the write that raised `error` may succeed (connection
        lost, timeout, serialisation) rather than fail again for good (the data
        is refused: bad text, out of range, constraint)."""

    def describe(self, error: BaseException) -> str:
        """`error` in one line for logs and the quarantine (no statement, no values)."""


class DeviceRepository(Protocol):
    def add_device(self, unique_id: str, name: str, organisation_id: int | None = None, *,
                   group_id: int | None = None,
                   attributes: Mapping[str, Any] | None = None) -> Device:
        """Register a device (in `organisation_id`, default the default one; its group,
        if any, must be of that organisation, else NotFoundError; `attributes` are its
        settings); raises `DuplicateError` if unique_id exists."""

    def device_by_unique_id(self, unique_id: str) -> Device | None: ...

    def devices(self, user: User | None = None, *, ids: Collection[int] = (),
                unique_ids: Collection[str] = (), keyword: str | None = None,
                limit: int | None = None, offset: int = 0) -> list[Device]:
        """All devices (user None: all, for the CLI) or those `user` may see, by id;
        with `ids` / `unique_ids` only those matching either; `keyword`: only those
        whose name or unique id contains it (case-insensitive for ASCII letters; on
        PostgreSQL for all); then `offset` / `limit` (None: no limit) in that order."""

    def delete_device(self, user: User | None, device_id: int) -> None:
        """Delete a visible device with everything that is its (positions, events,
        commands, links, rule state); NotFoundError if it does not exist or is not
        visible."""

    def set_accumulators(self, user: User | None, device_id: int, *,
                         total_distance_m: float | None = None,
                         hours_ms: int | None = None) -> None:
        """Set the ``totalDistance`` (m) / ``hours`` (ms) attributes of the device's
        latest position (what is None stays); NotFoundError if the device is not
        visible, NoPositionError if it has no position yet."""

    def visible_device(self, user: User | None, device_id: int) -> Device | None:
        """The device if it exists and `user` may see it (None: the CLI, unscoped),
        else None; one indexed single-row query, whatever the fleet's size."""

    def record_unknown_device(self, attempt: UnknownDeviceAttempt) -> None: ...

    def record_unknown_devices(self, attempts: Sequence[UnknownDeviceAttempt],
                               max_rows: int) -> None:
        """Insert `attempts` (may be empty) and keep only the newest `max_rows` rows
        (oldest inserted dropped), in one transaction; ValueError if max_rows < 1."""

    def unknown_devices(self, limit: int = 1000) -> list[UnknownDeviceAttempt]:
        """Newest first."""


class UserRepository(Protocol):
    """Users, their passwords, web sessions and API tokens."""

    def add_user(self, email: str, password: str, administrator: bool = False,
                 name: str = "", organisation_id: int | None = None) -> User:
        """Create a user; the password is hashed with Argon2id. DuplicateError on email."""

    def authenticate(self, email: str, password: str) -> User | None:
        """The user if the password matches, else None (constant-ish time)."""

    def user_by_email(self, email: str) -> User | None:
        """The user with that address (compared normalised), if any."""

    def create_session(self, user_id: int, lifetime: dt.timedelta) -> str:
        """A new opaque session token (stored hashed)."""

    def user_for_session(self, token: str, now: dt.datetime) -> User | None: ...

    def delete_session(self, token: str) -> None: ...

    def create_api_token(self, user_id: int, expires: dt.datetime | None) -> str:
        """A new opaque API token (Traccar's session token; stored hashed); None: no expiry."""

    def user_for_api_token(self, token: str, now: dt.datetime) -> User | None:
        """The token's user; None if unknown, expired (expires <= now) or revoked."""

    def revoke_api_token(self, user_id: int, token: str) -> bool:
        """Revoke the user's token; False (nothing changed) if it is not theirs."""


class PositionRepository(Protocol):
    def write_batch(self, batch: Batch) -> None:
        """Commit positions, events, status updates and rule states in one transaction.

        Idempotent: a position whose (device_id, fix_time) exists is skipped, an
        event whose (device_id, type, event_time, subject) exists is skipped
        (`NewEvent.subject`).  `batch.states` are upserted (the last one of a
        device in the batch wins).  A
        "commandResult" event also marks the device's oldest "sent" command
        "answered" with attributes["result"] (`tracker.policies.answer_commands`);
        every other new event gets a notification outbox row
        (`tracker.policies.notifies`).  Devices'
        `position_id` / `last_update` move forward only (an archive position never
        replaces a newer latest).  `batch.quarantine` entries are stored too.
        Raises on database errors; `tracker.storage.errors.is_transient` tells the
        caller whether a retry can help.
        """

    def latest_positions(self, user: User) -> list[StoredPosition]:
        """The latest position of each device the user may see."""

    def positions(self, user: User, device_id: int, start: dt.datetime,
                  end: dt.datetime, *, limit: int = DEFAULT_HISTORY_LIMIT) -> list[StoredPosition]:
        """History of one device with start <= fix_time <= end, oldest first, at most
        `limit` positions (default `DEFAULT_HISTORY_LIMIT`: the oldest that many;
        use `positions_page` / `iter_positions` for longer histories)."""

    def positions_page(self, user: User, device_id: int, start: dt.datetime,
                       end: dt.datetime, *, limit: int = HISTORY_PAGE_SIZE,
                       after: PositionCursor | None = None) -> PositionPage:
        """One page of `positions`: at most `limit` (>= 1) positions after `after`
        (keyset on (fix_time, id)), oldest first, and the cursor of the next page
        (None when this one is the last).  One indexed query per page."""

    def iter_positions(self, user: User, device_id: int, start: dt.datetime,
                       end: dt.datetime, *, page_size: int = HISTORY_PAGE_SIZE
                       ) -> Iterator[StoredPosition]:
        """The whole history of `positions`, oldest first, read `page_size` rows per
        query: memory stays bounded however long the history.  Each page is its
        own read (no connection is held between pages), so rows committed while
        iterating may or may not appear, but none appears twice."""

    def positions_by_ids(self, user: User, ids: Sequence[int]) -> list[StoredPosition]: ...

    def count_positions(self, device_id: int | None = None) -> int:
        """For tests and benchmarks."""


class EventRepository(Protocol):
    def events(self, user: User, device_id: int | None, start: dt.datetime,
               end: dt.datetime) -> list[StoredEvent]: ...

    def event(self, user: User, event_id: int) -> StoredEvent | None:
        """The event if it exists and the user may see its device."""

    def events_report(self, user: User, start: dt.datetime, end: dt.datetime, *,
                      device_ids: Sequence[int] = (), group_ids: Sequence[int] = (),
                      types: Sequence[str] = (), limit: int = 10_000) -> list[StoredEvent]:
        """Events with start <= event_time <= end of the visible devices that are in
        `device_ids` or in one of `group_ids` (both empty: all visible devices), of
        one of `types` (empty: all), oldest first, at most `limit`."""


class CommandRepository(Protocol):
    """Downlink commands."""

    def queue_command(self, device_id: int, type: str, attributes: Mapping[str, Any],
                      now: dt.datetime, user_id: int | None = None) -> StoredCommand:
        """Store a command with status "queued"."""

    def queued_commands(self, device_ids: Sequence[int]) -> list[StoredCommand]:
        """Commands still queued for these devices, oldest first."""

    def mark_command(self, command_id: int, status: str, now: dt.datetime,
                     result: str | None = None) -> None:
        """Move a command to "sent" (sets sent_time) or "failed" (result = why)."""

    def commands(self, user: User | None, device_id: int | None = None,
                 limit: int = 100) -> list[StoredCommand]:
        """Commands of the devices the user may see (None: all), newest first."""


class QuarantineRepository(Protocol):
    """Device data refused for good (tracker.writer)."""

    def write_quarantine(self, entries: Sequence[QuarantineEntry]) -> None: ...

    def quarantined(self, limit: int = 100, before_id: int | None = None
                    ) -> list[StoredQuarantine]:
        """Newest first."""

    def quarantine_entry(self, entry_id: int) -> StoredQuarantine | None: ...

    def quarantine_count(self) -> int: ...

    def purge_quarantine(self, *, received_before: dt.datetime | None = None,
                         ids: Sequence[int] | None = None) -> int:
        """Delete entries (all when neither is given); how many were deleted."""


class ConfigurationRepository(Protocol):
    """Organisations, groups, device settings, zones, calendars, rules.

    Every write bumps the configuration revision in the same transaction
    (`rule_config().revision`), so a running server sees the change.
    Reads and writes that take a `user` are scoped: objects of other organisations
    do not exist for a non-administrator (None / NotFoundError), and objects are
    created in the user's organisation (a member naming another `organisation_id`:
    NotFoundError; an administrator may name one).  `user` None: the CLI, unscoped,
    and objects are created in `organisation_id` (default organisation if None).
    Ids that refer to another object (group_id, calendar_id, device_id, and the
    geofences and calendars a rule definition names: `tracker.policies.rule_references`)
    must exist in the same organisation: else NotFoundError.
    """

    def organisations(self) -> list[Organisation]: ...

    def set_organisation_timezone(self, organisation_id: int, timezone: str) -> None:
        """`timezone` an IANA name (validated by the caller); NotFoundError."""

    def add_group(self, user: User | None, name: str, attributes: Mapping[str, Any] = {},
                  organisation_id: int | None = None) -> Group: ...

    def groups(self, user: User | None) -> list[Group]: ...

    def update_group(self, user: User | None, group_id: int, *, name: str | None = None,
                     attributes: Mapping[str, Any] | None = None) -> Group:
        """Fields left None stay; NotFoundError."""

    def delete_group(self, user: User | None, group_id: int) -> None:
        """Its devices lose their group; its geofence links go.  NotFoundError."""

    def update_device(self, user: User | None, device_id: int, *, name: str | None = None,
                      group_id: int | None | Literal[Unchanged.UNCHANGED] = UNCHANGED,
                      attributes: Mapping[str, Any] | None = None) -> Device:
        """Change name, group (None removes it; `UNCHANGED` leaves it) or the settings
        attributes (replaced as a whole).  NotFoundError."""

    def add_geofence(self, user: User | None, name: str, geometry: Mapping[str, Any], *,
                     description: str = "", calendar_id: int | None = None,
                     attributes: Mapping[str, Any] = {},
                     organisation_id: int | None = None) -> Geofence:
        """`geometry` already validated (a GeoJSON Feature, see `Geofence`)."""

    def geofence(self, user: User | None, geofence_id: int) -> Geofence | None: ...

    def geofences(self, user: User | None, *, device_id: int | None = None,
                  group_id: int | None = None) -> list[Geofence]:
        """Visible geofences, by id; with `device_id` / `group_id` only those linked
        to that device (directly, not through its group) / group."""

    def update_geofence(self, user: User | None, geofence_id: int, *, name: str,
                        geometry: Mapping[str, Any], description: str = "",
                        calendar_id: int | None = None,
                        attributes: Mapping[str, Any] = {}) -> Geofence:
        """Replace every field (PUT semantics).  NotFoundError."""

    def delete_geofence(self, user: User | None, geofence_id: int) -> None:
        """Also removes its links.  NotFoundError; InUseError when a rule names it
        ("zone", or the value of a geofence event condition)."""

    def link_geofence(self, user: User | None, geofence_id: int, *,
                      device_id: int | None = None, group_id: int | None = None) -> None:
        """Assign the zone to a device or a group (exactly one); idempotent."""

    def unlink_geofence(self, user: User | None, geofence_id: int, *,
                        device_id: int | None = None, group_id: int | None = None) -> None:
        """Remove that assignment; NotFoundError when it does not exist."""

    def add_calendar(self, user: User | None, name: str, data: Mapping[str, Any],
                     organisation_id: int | None = None) -> Calendar: ...

    def calendars(self, user: User | None) -> list[Calendar]: ...

    def update_calendar(self, user: User | None, calendar_id: int, *, name: str,
                        data: Mapping[str, Any]) -> Calendar: ...

    def delete_calendar(self, user: User | None, calendar_id: int) -> None:
        """Geofences using it lose their calendar (always active).  NotFoundError;
        InUseError when a rule names it."""

    def add_rule(self, user: User | None, name: str, definition: Mapping[str, Any],
                 enabled: bool = True, organisation_id: int | None = None) -> Rule:
        """`definition` already validated by `geofence.rules.parse_rule`."""

    def rules(self, user: User | None) -> list[Rule]: ...

    def rule(self, user: User | None, rule_id: int) -> Rule | None: ...

    def update_rule(self, user: User | None, rule_id: int, *, name: str,
                    definition: Mapping[str, Any], enabled: bool = True) -> Rule: ...

    def delete_rule(self, user: User | None, rule_id: int) -> None: ...

    def rule_config(self) -> RuleConfig:
        """Every organisation, device (with group and settings), group, geofence,
        calendar, enabled rule and link, read in one transaction."""

    def config_revision(self) -> int:
        """The configuration revision alone (cheap; polled by the server)."""

    def rule_states(self) -> dict[int, Mapping[str, Any]]:
        """device_id -> the rule state last committed by `write_batch`."""


class NotificationRepository(Protocol):
    """A user's push targets, preferences and Traccar-shaped notifications
    (`tracker.storage.notifications` documents the rules)."""

    def add_push_token(self, user_id: int, channel: str, platform: str, token: str,
                       now: dt.datetime) -> StoredPushToken:
        """Register a target as an operator does: confirmed at once."""

    def register_push_token(self, user_id: int, channel: str, platform: str, token: str,
                            now: dt.datetime, *, confirm_code: str | None = None,
                            code_ttl_s: float = ...) -> PushRegistration:
        """Register a target for the user (PushTargetTaken when another user holds it)."""

    def confirm_push_token(self, user_id: int, token_id: int, code: str, now: dt.datetime, *,
                           code_ttl_s: float = ..., max_wrong: int = ...) -> StoredPushToken:
        """Confirm a target with the mailed code (NotFoundError, ConfirmationRefused)."""

    def withdraw_push_token(self, user_id: int, token_id: int) -> bool: ...

    def push_tokens(self, user_id: int) -> list[StoredPushToken]: ...

    def delete_push_token(self, user_id: int, token_id: int) -> bool: ...

    def set_preferences(self, user_id: int, data: Mapping[str, Any]) -> None: ...

    def preferences(self, user_id: int) -> Mapping[str, Any] | None: ...

    def add_traccar_notification(self, user_id: int, type: str, always: bool, notificators: str,
                                 attributes: Mapping[str, Any]) -> TraccarNotification: ...

    def traccar_notifications(self, user_id: int, *, device_id: int | None = None,
                              group_id: int | None = None) -> list[TraccarNotification]: ...

    def update_traccar_notification(self, user_id: int, notification_id: int, *, type: str,
                                    always: bool, notificators: str,
                                    attributes: Mapping[str, Any]) -> TraccarNotification | None: ...

    def delete_traccar_notification(self, user_id: int, notification_id: int) -> bool: ...

    def link_notification(self, user: User, notification_id: int, *,
                          device_id: int | None = None, group_id: int | None = None) -> None: ...

    def unlink_notification(self, user: User, notification_id: int, *,
                            device_id: int | None = None, group_id: int | None = None) -> None: ...


class OutboxRepository(Protocol):
    """The notification dispatcher's side (`tracker.push.dispatcher`)."""

    def pending_outbox(self, limit: int = 100) -> list[OutboxItem]:
        """Oldest first; rows whose event was purged meanwhile are dropped."""

    def notification_context(self, event_id: int) -> OutboxItem | None: ...

    def recipients(self, organisation_id: int) -> list[Recipient]: ...

    def expand_outbox(self, outbox_id: int, new: Sequence[NewDelivery], now: dt.datetime) -> None:
        """Create the deliveries of one outbox row and remove the row, atomically."""

    def recently_notified(self, device_id: int, event_type: str, subject: str, since: dt.datetime,
                          before_event_id: int) -> bool: ...

    def due_deliveries(self, now: dt.datetime, limit: int = 100) -> list[DueDelivery]: ...

    def record_attempt(self, delivery: DueDelivery, now: dt.datetime, *, outcome: str,
                       error: str | None, status: str,
                       next_attempt: dt.datetime | None = None) -> None: ...

    def deliveries_of(self, user_id: int | None = None, event_id: int | None = None,
                      limit: int = 100) -> list[DeliveryRecord]: ...

    def delivery_attempts(self, delivery_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]: ...


class Store(Lifecycle, DeviceRepository, UserRepository, PositionRepository, EventRepository,
            CommandRepository, QuarantineRepository, ConfigurationRepository,
            NotificationRepository, OutboxRepository, Protocol):
    """Everything the server stores: what `tracker.storage.SqlStore` implements."""


STORE_PROTOCOLS: Final = (Lifecycle, DeviceRepository, UserRepository, PositionRepository,
                          EventRepository, CommandRepository, QuarantineRepository,
                          ConfigurationRepository, NotificationRepository, OutboxRepository)
"""The concerns `Store` is made of."""


class DuplicateError(Exception):
    """A unique value (device uniqueId, user email) is taken."""


class NotFoundError(Exception):
    """The object does not exist or the user may not see it."""


class NoPositionError(Exception):
    """The device has no position yet (where its accumulators would be set)."""


class InUseError(Exception):
    """The object cannot be deleted: something refers to it (the message says what)."""
