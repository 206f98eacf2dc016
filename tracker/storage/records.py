"""Row converters: database rows to the frozen records of `tracker.models`.

Shared by the repository modules of `tracker.storage`; a row is
anything with the columns as attributes (a SQLAlchemy Row).
"""

from __future__ import annotations

from typing import Any

from tracker.models import (
    Calendar,
    Device,
    Geofence,
    Group,
    Organisation,
    Rule,
    StoredCommand,
    StoredEvent,
    StoredPosition,
    User,
)

Row = Any


def position(row: Row) -> StoredPosition:
    return StoredPosition(
        id=row.id, device_id=row.device_id, protocol=row.protocol,
        server_time=row.server_time, device_time=row.device_time, fix_time=row.fix_time,
        valid=row.valid, latitude=row.latitude, longitude=row.longitude,
        altitude_m=row.altitude, speed_kn=row.speed, course_deg=row.course,
        accuracy_m=row.accuracy, attributes=row.attributes, network=row.network,
        archive=row.archive)


def command(row: Row) -> StoredCommand:
    return StoredCommand(
        id=row.id, device_id=row.device_id, type=row.type, attributes=row.attributes,
        status=row.status, created=row.created, sent_time=row.sent_time,
        result_time=row.result_time, result=row.result, user_id=row.user_id)


def device(row: Row) -> Device:
    return Device(id=row.id, unique_id=row.unique_id, name=row.name,
                  organisation_id=row.organisation_id, disabled=row.disabled,
                  last_update=row.last_update, position_id=row.position_id,
                  group_id=row.group_id, attributes=row.settings)


def event(row: Row) -> StoredEvent:
    return StoredEvent(id=row.id, device_id=row.device_id, type=row.type,
                       event_time=row.event_time, position_id=row.position_id,
                       attributes=row.attributes, geofence_id=row.geofence_id)


def organisation(row: Row) -> Organisation:
    return Organisation(id=row.id, name=row.name, timezone=row.timezone)


def group(row: Row) -> Group:
    return Group(id=row.id, organisation_id=row.organisation_id, name=row.name,
                 attributes=row.attributes)


def geofence(row: Row) -> Geofence:
    return Geofence(id=row.id, organisation_id=row.organisation_id, name=row.name,
                    geometry=row.geometry, description=row.description,
                    calendar_id=row.calendar_id, attributes=row.attributes)


def calendar(row: Row) -> Calendar:
    return Calendar(id=row.id, organisation_id=row.organisation_id, name=row.name,
                    data=row.data)


def rule(row: Row) -> Rule:
    return Rule(id=row.id, organisation_id=row.organisation_id, name=row.name,
                definition=row.definition, enabled=row.enabled)


def user(row: Row) -> User:
    return User(id=row.id, email=row.email, name=row.name,
                organisation_id=row.organisation_id, administrator=row.administrator)


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if not email:
        raise ValueError("empty e-mail address")
    return email
