"""Storage of notifications: push tokens, preferences, the outbox, deliveries.

Mixed into `SqlStore` (`tracker.ports.NotificationRepository` and
`OutboxRepository`; the records `StoredPushToken`, `PushRegistration` and
`Recipient` are defined in `tracker.ports` and re-exported here).  The outbox is
filled by `write_batch` in the events' transaction; `expand_outbox` turns one
outbox row into deliveries (one per event and token: the unique key is what makes
"never twice to the same token for the same event" hold) and removes the row in
the same transaction, so a crash in between loses nothing and repeats nothing.

Push targets (``push_tokens``, unique on (channel, token hash)) belong to one user
and never move to another: `register_push_token` refuses a target another user
holds (`tracker.push.confirm.PushTargetTaken`), except a dead claim (never
confirmed, its code expired or voided), which is replaced.  A target is active
only once ``confirmed`` is set: app tokens at registration, e-mail addresses when
the mailed code comes back (`confirm_push_token`; its rules are in
`tracker.push.confirm`).  `recipients` lists confirmed, enabled targets only.
Tokens come back as `StoredPushToken` (a `PushToken` with ``confirmed``).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, delete, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from tracker.models import (
    DeliveryRecord,
    DueDelivery,
    NewDelivery,
    OutboxItem,
    PushToken,
    StoredEvent,
    TraccarNotification,
    User,
)
from tracker.ports import NotFoundError, PushRegistration, Recipient, StoredPushToken
from tracker.push import confirm
from tracker.push.base import token_hash
from tracker.storage import records
from tracker.storage.base import SqlBase
from tracker.storage.schema import (
    deliveries,
    delivery_attempts,
    devices,
    events,
    geofences,
    groups,
    notification_devices,
    notification_groups,
    notification_outbox,
    notification_preferences,
    positions,
    push_tokens,
    traccar_notifications,
    users,
)
from tracker.storage.scoping import find, link_target

__all__ = ["NotificationsMixin", "PushRegistration", "Recipient", "StoredPushToken"]


class NotificationsMixin(SqlBase):
    """See the module docstring."""

    # -- tokens and preferences -----------------------------------------------------

    def add_push_token(self, user_id: int, channel: str, platform: str, token: str,
                       now: dt.datetime) -> StoredPushToken:
        """Register `token` as an operator does (``tracker notification token-add``):
        confirmed at once, e-mail addresses included (the operator vouches for
        them).  Otherwise as `register_push_token`: PushTargetTaken when another
        user holds it; the same user's again is that target, enabled again."""
        return self.register_push_token(user_id, channel, platform, token, now).token

    def register_push_token(self, user_id: int, channel: str, platform: str, token: str,
                            now: dt.datetime, *, confirm_code: str | None = None,
                            code_ttl_s: float = confirm.CODE_TTL_S) -> PushRegistration:
        """Register a push target for the user (the API's ``POST
        /api/notifications/tokens``).

        Without `confirm_code` the target is confirmed now.  With it (e-mail) a new
        target is stored unconfirmed with the code's digest and ``created`` = now, the
        time the code was issued; `confirm_push_token` confirms it.

        - Another user holds (channel, token): PushTargetTaken, nothing changes.
          Only a claim that is dead is replaced: a target that was never confirmed
          and whose code expired (`code_ttl_s` after issue) or was voided by wrong
          tries.  It never received anything, so nobody loses alarms.
        - The same user's target: that target, enabled again if it was pruned
          (the app registers again after a gateway said the token is dead).  If it
          is still unconfirmed, `confirm_code` replaces the old code (the wrong-try
          count starts again and ``created`` becomes now); without one it is
          confirmed now.

        ``code_issued`` of the answer says whether `confirm_code` was stored (it is
        to be sent); it is False when the target is confirmed.
        """
        for attempt in (1, 2):
            try:
                return self._register_push_token(user_id, channel, platform, token, now,
                                                 confirm_code=confirm_code, code_ttl_s=code_ttl_s)
            except IntegrityError:
                # Two registrations of the same new token raced; the second sees the
                # first's row now.
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _register_push_token(self, user_id: int, channel: str, platform: str, token: str,
                             now: dt.datetime, *, confirm_code: str | None,
                             code_ttl_s: float) -> PushRegistration:
        digest = token_hash(token)
        code_field = None if confirm_code is None else _code_field(0, confirm.code_digest(confirm_code))
        with self._write() as conn:
            row = conn.execute(select(push_tokens).where(
                push_tokens.c.channel == channel, push_tokens.c.token_hash == digest)).first()
            if row is not None and row.user_id != user_id:
                if row.confirmed is not None or _code_live(row, now, code_ttl_s):
                    raise confirm.PushTargetTaken(f"this {channel} target is already registered by "
                                          "another user")
                conn.execute(delete(push_tokens).where(push_tokens.c.id == row.id))
                row = None
            if row is None:
                found = conn.execute(insert(push_tokens).values(
                    user_id=user_id, channel=channel, token_hash=digest, platform=platform,
                    token=token, created=now, disabled=None, disabled_reason=None,
                    confirmed=now if code_field is None else None,
                    confirm_code_hash=code_field).returning(push_tokens.c.id)).scalar_one()
                issued = code_field is not None
            else:
                found, issued = row.id, False
                values: dict[str, Any] = {"platform": platform, "disabled": None,
                                          "disabled_reason": None}
                if row.confirmed is None:
                    if code_field is None:
                        values.update(confirmed=now, confirm_code_hash=None)
                    else:
                        values.update(confirm_code_hash=code_field, created=now)
                        issued = True
                conn.execute(update(push_tokens).where(push_tokens.c.id == found).values(**values))
            stored = _token(conn.execute(select(push_tokens).where(push_tokens.c.id == found)).one())
        return PushRegistration(stored, issued)

    def confirm_push_token(self, user_id: int, token_id: int, code: str, now: dt.datetime, *,
                           code_ttl_s: float = confirm.CODE_TTL_S,
                           max_wrong: int = confirm.MAX_WRONG_CODES) -> StoredPushToken:
        """Confirm the user's target `token_id` with the code that was mailed.

        NotFoundError when the user has no such target (another user's id
        included).  A target already confirmed is returned as it is, whatever the
        code.  ConfirmationRefused (its `reason`: "wrong", "expired", "void") when
        the code is wrong, older than `code_ttl_s`, or voided; a wrong code is
        counted, and the `max_wrong`-th wrong one voids the code (a new one comes
        from registering the address again).  The comparison is constant-time on
        the digests, and the count is updated with a compare-and-set on the stored
        field, so concurrent guesses cannot get more than `max_wrong` tries.
        """
        guess = confirm.code_digest(code)
        with self._write() as conn:
            row = conn.execute(select(push_tokens).where(
                push_tokens.c.id == token_id, push_tokens.c.user_id == user_id)).first()
            if row is None:
                raise NotFoundError(f"push target {token_id} not found")
            if row.confirmed is not None:
                return _token(row)
            state = _code_state(row.confirm_code_hash)
            if state is None:
                refusal = confirm.ConfirmationRefused("void", "no valid code: too many wrong codes; "
                                                      "register the address again for a new one")
            elif not _code_live(row, now, code_ttl_s):
                refusal = confirm.ConfirmationRefused("expired", "the code has expired; register the "
                                                         "address again for a new one")
            else:
                wrong, expected = state
                right = hmac.compare_digest(expected, guess[:_DIGEST_CHARS])
                values: dict[str, Any]
                if right:
                    values = {"confirmed": now, "confirm_code_hash": None}
                else:
                    wrong += 1
                    values = {"confirm_code_hash": None if wrong >= max_wrong
                              else _code_field(wrong, expected)}
                changed = conn.execute(update(push_tokens).where(
                    push_tokens.c.id == row.id,
                    push_tokens.c.confirm_code_hash == row.confirm_code_hash).values(**values)
                    ).rowcount
                if not changed:
                    refusal = confirm.ConfirmationRefused("wrong", "the target changed meanwhile; "
                                                           "try again")
                elif right:
                    return _token(conn.execute(select(push_tokens).where(
                        push_tokens.c.id == row.id)).one())
                elif wrong >= max_wrong:
                    refusal = confirm.ConfirmationRefused("void", "wrong code; that was the last try: "
                                                          "register the address again for a "
                                                          "new code")
                else:
                    left = max_wrong - wrong
                    refusal = confirm.ConfirmationRefused("wrong", f"wrong code; {left} "
                                                           f"{'try' if left == 1 else 'tries'} left")
        raise refusal   # after the commit: the count of wrong tries is kept

    def withdraw_push_token(self, user_id: int, token_id: int) -> bool:
        """Delete the user's target if it is still unconfirmed (its confirmation
        mail could not be sent); False if it is not theirs or already confirmed."""
        with self._write() as conn:
            return conn.execute(delete(push_tokens).where(
                push_tokens.c.id == token_id, push_tokens.c.user_id == user_id,
                push_tokens.c.confirmed.is_(None))).rowcount > 0

    def push_tokens(self, user_id: int) -> list[StoredPushToken]:
        """The user's targets, confirmed or not, enabled or pruned, oldest first."""
        with self._read() as conn:
            return [_token(row) for row in conn.execute(
                select(push_tokens).where(push_tokens.c.user_id == user_id)
                .order_by(push_tokens.c.id))]

    def delete_push_token(self, user_id: int, token_id: int) -> bool:
        with self._write() as conn:
            return conn.execute(delete(push_tokens).where(
                push_tokens.c.id == token_id, push_tokens.c.user_id == user_id)).rowcount > 0

    def set_preferences(self, user_id: int, data: Mapping[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(self._insert(notification_preferences)
                         .values(user_id=user_id, data=dict(data))
                         .on_conflict_do_update(index_elements=[notification_preferences.c.user_id],
                                                set_={"data": dict(data)}))

    def preferences(self, user_id: int) -> Mapping[str, Any] | None:
        with self._read() as conn:
            return conn.execute(select(notification_preferences.c.data).where(
                notification_preferences.c.user_id == user_id)).scalar()

    # -- the dispatcher's side ------------------------------------------------------

    def pending_outbox(self, limit: int = 100) -> list[OutboxItem]:
        """Oldest first.  Rows whose event was purged meanwhile are dropped."""
        with self._read() as conn:
            items = self._event_items(
                conn, select(notification_outbox.c.id.label("outbox_id"))
                .join(events, events.c.id == notification_outbox.c.event_id)
                .order_by(notification_outbox.c.id).limit(limit))
            orphans = conn.execute(
                select(notification_outbox.c.id).outerjoin(
                    events, events.c.id == notification_outbox.c.event_id)
                .where(events.c.id.is_(None)).limit(limit)).scalars().all()
        if orphans:
            with self._write() as conn:
                conn.execute(delete(notification_outbox).where(notification_outbox.c.id.in_(orphans)))
        return items

    def notification_context(self, event_id: int) -> OutboxItem | None:
        """The event with its device, place and zone (outbox_id None), if it exists."""
        with self._read() as conn:
            items = self._event_items(conn, select().select_from(events)
                                      .where(events.c.id == event_id))
        return items[0] if items else None

    @staticmethod
    def _event_items(conn: Connection, query: Select) -> list[OutboxItem]:
        """OutboxItems of `query` (a select over `events`, maybe with outbox_id)."""
        query = (query.add_columns(events, devices, positions.c.latitude.label("place_lat"),
                                   positions.c.longitude.label("place_lon"),
                                   geofences.c.name.label("zone_name"))
                 .join(devices, devices.c.id == events.c.device_id)
                 .outerjoin(positions, positions.c.id == events.c.position_id)
                 .outerjoin(geofences, geofences.c.id == events.c.geofence_id))
        items: list[OutboxItem] = []
        for row in conn.execute(query).all():
            mapping = row._mapping
            event = StoredEvent(id=mapping[events.c.id], device_id=mapping[events.c.device_id],
                                type=mapping[events.c.type], event_time=mapping[events.c.event_time],
                                position_id=mapping[events.c.position_id],
                                attributes=mapping[events.c.attributes],
                                geofence_id=mapping[events.c.geofence_id])
            device = records.device(_Row({column.name: mapping[column] for column in devices.c}))
            outbox_id = mapping["outbox_id"] if "outbox_id" in mapping else None
            items.append(OutboxItem(outbox_id, event, device, row.place_lat, row.place_lon,
                                    row.zone_name))
        return items

    # -- Traccar-shaped notifications -----------------------------------------------

    def add_traccar_notification(self, user_id: int, type: str, always: bool, notificators: str,
                                 attributes: Mapping[str, Any]) -> TraccarNotification:
        with self._write() as conn:
            new_id = conn.execute(insert(traccar_notifications).values(
                user_id=user_id, type=type, always=always, notificators=notificators,
                attributes=dict(attributes)).returning(traccar_notifications.c.id)).scalar_one()
        return TraccarNotification(new_id, user_id, type, always, notificators, dict(attributes))

    def traccar_notifications(self, user_id: int, *, device_id: int | None = None,
                              group_id: int | None = None) -> list[TraccarNotification]:
        """The user's notifications, each with its links; with `device_id` (or
        `group_id`) only those linked to that device (group), as Traccar's
        ``GET /api/notifications?deviceId=`` lists them."""
        query = select(traccar_notifications).where(traccar_notifications.c.user_id == user_id)
        for owner_id, table, column in ((device_id, notification_devices, "device_id"),
                                        (group_id, notification_groups, "group_id")):
            if owner_id is not None:
                query = query.where(traccar_notifications.c.id.in_(
                    select(table.c.notification_id).where(table.c[column] == owner_id)))
        with self._read() as conn:
            return _subscriptions(conn, conn.execute(query.order_by(traccar_notifications.c.id)).all())

    def update_traccar_notification(self, user_id: int, notification_id: int, *, type: str,
                                    always: bool, notificators: str,
                                    attributes: Mapping[str, Any]) -> TraccarNotification | None:
        """The notification as updated (links kept), or None if the user has no such one."""
        with self._write() as conn:
            row = conn.execute(update(traccar_notifications).where(
                traccar_notifications.c.id == notification_id,
                traccar_notifications.c.user_id == user_id).values(
                type=type, always=always, notificators=notificators,
                attributes=dict(attributes)).returning(*traccar_notifications.c)).first()
            return None if row is None else _subscriptions(conn, [row])[0]

    def delete_traccar_notification(self, user_id: int, notification_id: int) -> bool:
        """Delete the user's notification and its links; False if they have no such one."""
        with self._write() as conn:
            if conn.execute(select(traccar_notifications.c.id).where(
                    traccar_notifications.c.id == notification_id,
                    traccar_notifications.c.user_id == user_id)).first() is None:
                return False
            for table in (notification_devices, notification_groups):
                conn.execute(delete(table).where(table.c.notification_id == notification_id))
            return conn.execute(delete(traccar_notifications).where(
                traccar_notifications.c.id == notification_id,
                traccar_notifications.c.user_id == user_id)).rowcount > 0

    def link_notification(self, user: User, notification_id: int, *,
                          device_id: int | None = None, group_id: int | None = None) -> None:
        """Traccar's ``{deviceId|groupId, notificationId}`` permission: the user's own
        notification covers that device (group) when its `always` is false.  Linking
        twice is one link.  NotFoundError for a notification that is not the user's
        or a device (group) the user may not see."""
        table, column, owner_id = _notification_link(device_id, group_id)
        with self._write() as conn:
            _require_own_notification(conn, user, notification_id)
            find(conn, devices if column == "device_id" else groups, owner_id, user, column[:-3])
            conn.execute(self._insert(table).values(
                {"notification_id": notification_id, column: owner_id}).on_conflict_do_nothing())

    def unlink_notification(self, user: User, notification_id: int, *,
                            device_id: int | None = None, group_id: int | None = None) -> None:
        """Remove that link; NotFoundError if there is none (or it is not the user's)."""
        table, column, owner_id = _notification_link(device_id, group_id)
        with self._write() as conn:
            _require_own_notification(conn, user, notification_id)
            removed = conn.execute(delete(table).where(
                table.c.notification_id == notification_id, table.c[column] == owner_id)).rowcount
            if not removed:
                raise NotFoundError(f"notification {notification_id} is not linked to "
                                    f"{column[:-3]} {owner_id}")

    def recipients(self, organisation_id: int) -> list[Recipient]:
        """Users who may see the organisation's devices (its members and every
        administrator), each with their preferences, Traccar-shaped notifications
        and enabled, confirmed tokens (an unconfirmed e-mail target gets nothing)."""
        with self._read() as conn:
            people = conn.execute(select(users).where(or_(
                users.c.organisation_id == organisation_id, users.c.administrator.is_(True)))
                .order_by(users.c.id)).all()
            ids = [row.id for row in people]
            prefs = dict(conn.execute(select(notification_preferences.c.user_id,
                                             notification_preferences.c.data)
                                      .where(notification_preferences.c.user_id.in_(ids))).all())
            tokens: dict[int, list[PushToken]] = {}
            for row in conn.execute(select(push_tokens).where(
                    push_tokens.c.user_id.in_(ids), push_tokens.c.disabled.is_(None),
                    push_tokens.c.confirmed.is_not(None))
                    .order_by(push_tokens.c.id)):
                tokens.setdefault(row.user_id, []).append(_token(row))
            subscriptions: dict[int, list[TraccarNotification]] = {}
            for subscription in _subscriptions(conn, conn.execute(
                    select(traccar_notifications).where(traccar_notifications.c.user_id.in_(ids))
                    .order_by(traccar_notifications.c.id)).all()):
                subscriptions.setdefault(subscription.user_id, []).append(subscription)
        return [Recipient(records.user(row), prefs.get(row.id), subscriptions.get(row.id, []),
                          tokens.get(row.id, [])) for row in people]

    def expand_outbox(self, outbox_id: int, new: Sequence[NewDelivery], now: dt.datetime) -> None:
        """Create the deliveries of one outbox row and remove the row, atomically."""
        with self._write() as conn:
            if new:
                conn.execute(self._insert(deliveries).on_conflict_do_nothing(
                    index_elements=[deliveries.c.event_id, deliveries.c.token_id]), [{
                        "event_id": d.event_id, "token_id": d.token_id, "user_id": d.user_id,
                        "channel": d.channel, "token_hash": d.token_hash, "status": d.status,
                        "attempts": 0, "next_attempt": now if d.status == "pending" else None,
                        "last_error": None, "updated": now} for d in new])
            conn.execute(delete(notification_outbox).where(notification_outbox.c.id == outbox_id))

    def recently_notified(self, device_id: int, event_type: str, subject: str, since: dt.datetime,
                          before_event_id: int) -> bool:
        """Whether an earlier event of the device with this type and subject, at or
        after `since`, got a delivery that was not itself coalesced (storm check)."""
        with self._read() as conn:
            return conn.execute(
                select(deliveries.c.id).join(events, events.c.id == deliveries.c.event_id)
                .where(events.c.device_id == device_id, events.c.type == event_type,
                       events.c.subject == subject, events.c.event_time >= since,
                       events.c.id < before_event_id,
                       deliveries.c.status.in_(("pending", "sent")))
                .limit(1)).first() is not None

    def due_deliveries(self, now: dt.datetime, limit: int = 100) -> list[DueDelivery]:
        with self._read() as conn:
            rows = conn.execute(
                select(deliveries.c.id, deliveries.c.event_id, deliveries.c.user_id,
                       deliveries.c.attempts, push_tokens)
                .join(push_tokens, push_tokens.c.id == deliveries.c.token_id)
                .where(deliveries.c.status == "pending", deliveries.c.next_attempt <= now)
                .order_by(deliveries.c.next_attempt, deliveries.c.id).limit(limit)).all()
        return [DueDelivery(row.id, row.event_id, row.user_id, row.attempts, _token(row))
                for row in rows]

    def record_attempt(self, delivery: DueDelivery, now: dt.datetime, *, outcome: str,
                       error: str | None, status: str,
                       next_attempt: dt.datetime | None = None) -> None:
        """Store one attempt and the delivery's new status; an `invalid_token`
        outcome also disables (prunes) the token."""
        token = delivery.token
        with self._write() as conn:
            conn.execute(insert(delivery_attempts).values(
                delivery_id=delivery.id, attempt_time=now, channel=token.channel,
                token_hash=token_hash(token.token), status=outcome,
                error=None if error is None else error[:200]))
            conn.execute(update(deliveries).where(deliveries.c.id == delivery.id).values(
                status=status, attempts=deliveries.c.attempts + 1, next_attempt=next_attempt,
                last_error=None if error is None else error[:200], updated=now))
            if outcome == "invalid_token":
                conn.execute(update(push_tokens).where(push_tokens.c.id == token.id).values(
                    disabled=now, disabled_reason=(error or "invalid token")[:200]))

    def deliveries_of(self, user_id: int | None = None, event_id: int | None = None,
                      limit: int = 100) -> list[DeliveryRecord]:
        """Newest first; for the API and tests."""
        query = select(deliveries).order_by(deliveries.c.id.desc()).limit(limit)
        if user_id is not None:
            query = query.where(deliveries.c.user_id == user_id)
        if event_id is not None:
            query = query.where(deliveries.c.event_id == event_id)
        with self._read() as conn:
            return [DeliveryRecord(row.id, row.event_id, row.user_id, row.channel, row.token_hash,
                                   row.status, row.attempts, row.last_error, row.updated)
                    for row in conn.execute(query)]

    def delivery_attempts(self, delivery_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        """The attempts of each of these deliveries, oldest first, in one query
        (a delivery without attempts is absent)."""
        attempts: dict[int, list[dict[str, Any]]] = {}
        with self._read() as conn:
            for row in conn.execute(select(delivery_attempts)
                                    .where(delivery_attempts.c.delivery_id.in_(list(delivery_ids)))
                                    .order_by(delivery_attempts.c.id)):
                attempts.setdefault(row.delivery_id, []).append(dict(row._mapping))
        return attempts


class _Row:
    """Attribute access over a dict (the device row converter reads attributes)."""

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)


def _subscriptions(conn: Connection, rows: Sequence[Any]) -> list[TraccarNotification]:
    """`traccar_notifications` rows as TraccarNotifications with their device and
    group links (two queries, whatever the number of rows)."""
    ids = [row.id for row in rows]
    linked: dict[str, dict[int, set[int]]] = {}
    for table, column in ((notification_devices, "device_id"), (notification_groups, "group_id")):
        linked[column] = {}
        for notification_id, owner_id in conn.execute(
                select(table.c.notification_id, table.c[column]).where(table.c.notification_id.in_(ids))):
            linked[column].setdefault(notification_id, set()).add(owner_id)
    return [TraccarNotification(row.id, row.user_id, row.type, row.always, row.notificators,
                                row.attributes,
                                frozenset(linked["device_id"].get(row.id, ())),
                                frozenset(linked["group_id"].get(row.id, ()))) for row in rows]


def _notification_link(device_id: int | None, group_id: int | None) -> tuple[Any, str, int]:
    return link_target(device_id, group_id, notification_devices, notification_groups, "notification")


def _require_own_notification(conn: Connection, user: User, notification_id: int) -> None:
    """Notifications belong to the user who made them; NotFoundError for any other."""
    if conn.execute(select(traccar_notifications.c.id).where(
            traccar_notifications.c.id == notification_id,
            traccar_notifications.c.user_id == user.id)).first() is None:
        raise NotFoundError(f"notification {notification_id} not found")


def _token(row: Any) -> StoredPushToken:
    return StoredPushToken(id=row.id, user_id=row.user_id, channel=row.channel,
                           platform=row.platform, token=row.token, created=row.created,
                           disabled=row.disabled, disabled_reason=row.disabled_reason,
                           confirmed=row.confirmed)


# The confirm_code_hash field: "<wrong tries>:<first 62 hex digits of the code's
# sha256>", 64 characters (the column's width), so the count of wrong tries lives
# with the code it counts and one compare-and-set updates both.  NULL: no code
# (confirmed, or voided by wrong tries).
_DIGEST_CHARS = 62


def _code_field(wrong: int, digest: str) -> str:
    return f"{wrong}:{digest[:_DIGEST_CHARS]}"


def _code_state(field: str | None) -> tuple[int, str] | None:
    """(wrong tries, digest prefix) of a stored code field; None when there is no
    usable code."""
    if not field:
        return None
    count, sep, digest = field.partition(":")
    if not sep or not count.isdigit() or len(digest) != _DIGEST_CHARS:
        return None
    return int(count), digest


def _code_live(row: Any, now: dt.datetime, ttl_s: float) -> bool:
    """Whether an unconfirmed target's code can still confirm it: not voided and
    issued (``created``) less than `ttl_s` ago."""
    return (_code_state(row.confirm_code_hash) is not None
            and now - row.created < dt.timedelta(seconds=ttl_s))
