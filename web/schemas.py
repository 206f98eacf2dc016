"""The answers' shapes as pydantic models, for the OpenAPI document (`web.openapi`).

Answers are built by `web.jsonshapes` (Traccar's field names, null/zero
conventions and time format); these models describe them and are checked against
real answers in the tests (tests/web/test_routes.py validates what the API sends
against the route's declared response model), so the document cannot drift from
what is sent.  Times are texts like ``2024-01-01T12:00:00.000+00:00``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    """Every error answer."""

    status: int
    error: str
    message: str


class ServerOut(_Out):
    id: int
    registration: bool
    readonly: bool
    deviceReadonly: bool
    limitCommands: bool
    map: str | None
    bingKey: str | None
    mapUrl: str | None
    poiLayer: str | None
    latitude: float
    longitude: float
    zoom: int
    twelveHourFormat: bool
    version: str
    forceSettings: bool
    coordinateFormat: str | None
    attributes: dict[str, Any]


class UserOut(_Out):
    id: int
    name: str | None
    email: str
    phone: str | None
    readonly: bool
    administrator: bool
    map: str | None
    latitude: float
    longitude: float
    zoom: int
    twelveHourFormat: bool
    coordinateFormat: str | None
    disabled: bool
    expirationTime: str | None
    deviceLimit: int
    userLimit: int
    deviceReadonly: bool
    limitCommands: bool
    disableReports: bool
    fixedEmail: bool
    poiLayer: str | None
    attributes: dict[str, Any]


class DeviceOut(_Out):
    id: int
    name: str
    uniqueId: str
    status: Literal["online", "offline", "unknown"]
    disabled: bool
    lastUpdate: str | None
    positionId: int = Field(description="the latest position's id; 0: none yet")
    groupId: int = Field(description="0: in no group")
    calendarId: int = Field(description="always 0: devices have no calendar here")
    phone: str | None
    model: str | None
    contact: str | None
    category: str | None
    attributes: dict[str, Any]


class PositionOut(_Out):
    id: int
    deviceId: int
    protocol: str
    serverTime: str | None
    deviceTime: str | None
    fixTime: str | None
    outdated: bool
    valid: bool
    latitude: float
    longitude: float
    altitude: float | None
    speed: float | None
    course: float | None
    address: str | None
    accuracy: float | None
    network: dict[str, Any] | None
    geofenceIds: list[int] | None
    attributes: dict[str, Any]


class CommandOut(_Out):
    id: int
    deviceId: int
    description: str | None
    type: str
    textChannel: bool
    attributes: dict[str, Any]
    status: str
    createdTime: str | None
    sentTime: str | None
    resultTime: str | None
    result: str | None


class CommandTypeOut(_Out):
    type: str


class GeofenceOut(_Out):
    id: int
    name: str
    description: str
    area: str
    calendarId: int | None
    attributes: dict[str, Any]
    geojson: dict[str, Any]


class FeatureOut(BaseModel):
    """A GeoJSON Feature (``?format=geojson``)."""

    type: Literal["Feature"]
    id: int
    geometry: dict[str, Any]
    properties: dict[str, Any]


class FeatureCollectionOut(BaseModel):
    type: Literal["FeatureCollection"]
    features: list[FeatureOut]


class GroupOut(_Out):
    id: int
    name: str
    groupId: None
    attributes: dict[str, Any]


class CalendarOut(_Out):
    id: int
    name: str
    data: dict[str, Any]
    attributes: dict[str, Any]


class RuleOut(BaseModel):
    """Ours: id, name, enabled and the definition's keys (when, devices, groups,
    zone, calendar, then)."""

    model_config = ConfigDict(extra="allow")
    id: int
    name: str
    enabled: bool
    when: dict[str, Any]
    then: dict[str, Any]


class EventOut(_Out):
    id: int
    type: str
    eventTime: str | None
    deviceId: int
    positionId: int
    geofenceId: int
    maintenanceId: int
    attributes: dict[str, Any]


class HealthOut(_Out):
    status: Literal["ok", "degraded"]
    database: str
    counters: dict[str, Any]
    quarantine: dict[str, int | None]


class TokenOut(_Out):
    id: int
    channel: str
    platform: str
    tokenHint: str
    created: str | None
    disabled: str | None
    disabledReason: str | None
    confirmed: bool
    confirmationSent: bool | None = None


class PreferencesOut(_Out):
    types: list[str]
    alarms: list[str]
    devices: list[int]
    channels: list[str]
    quietHours: dict[str, str] | None
    timezone: str
    language: str
    criticalOverride: bool


class AttemptOut(_Out):
    time: str | None
    status: str
    error: str | None


class DeliveryOut(_Out):
    id: int
    eventId: int
    channel: str
    tokenHash: str
    status: str
    attempts: list[AttemptOut]
    lastError: str | None
    updated: str | None


class NotificationOut(_Out):
    id: int
    type: str
    always: bool
    notificators: str
    attributes: dict[str, Any]
    calendarId: int
    commandId: int


class NotificationTypeOut(_Out):
    type: str


__all__ = [
    "AttemptOut", "CalendarOut", "CommandOut", "CommandTypeOut", "DeliveryOut", "DeviceOut",
    "ErrorOut", "EventOut", "FeatureCollectionOut", "FeatureOut", "GeofenceOut", "GroupOut",
    "HealthOut", "NotificationOut", "NotificationTypeOut", "PositionOut", "PreferencesOut",
    "RuleOut", "ServerOut", "TokenOut", "UserOut",
]
