"""Notification texts, localised (English and Chinese).

`render(event, device, language, timezone, public_url, place)` gives the title, body
and the data map of one event for one user: the device's name, what happened, the
time in the user's time zone, the place when known (the position's coordinates, or
the zone's name for geofence events) and a link to the device's page.  Unknown event
types fall back to their type name, so a user rule's custom event still reads well
(its own message, when it has one, is used as the body).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping

from tracker.models import Device, StoredEvent

# event type -> (English, Chinese); "{alarm}" / "{zone}" filled from the event.
WHAT: Mapping[str, tuple[str, str]] = {
    "alarm": ("{alarm} alarm", "{alarm}报警"),
    "geofenceEnter": ("entered {zone}", "进入{zone}"),
    "geofenceExit": ("left {zone}", "离开{zone}"),
    "geofenceDwell": ("stayed in {zone}", "在{zone}停留"),
    "geofenceCrossed": ("crossed {zone}", "穿过{zone}"),
    "deviceOverspeed": ("overspeed", "超速"),
    "ignitionOn": ("ignition on", "点火"),
    "ignitionOff": ("ignition off", "熄火"),
    "deviceMoving": ("started moving", "开始移动"),
    "deviceStopped": ("stopped", "已停止"),
    "deviceIdle": ("idling", "怠速"),
    "deviceOnline": ("online", "上线"),
    "deviceOffline": ("offline", "离线"),
    "deviceUnknown": ("not heard from", "状态未知"),
    "deviceInactive": ("inactive", "长时间无数据"),
}
ALARM_NAMES: Mapping[str, tuple[str, str]] = {
    "sos": ("SOS", "SOS求救"),
    "powerCut": ("Power cut", "断电"),
    "fallDown": ("Fall", "跌倒"),
    "lowBattery": ("Low battery", "低电量"),
    "vibration": ("Vibration", "震动"),
    "tampering": ("Tampering", "防拆"),
    "overspeed": ("Overspeed", "超速"),
}
AT = ("at", "时间")
PLACE = ("at", "位置")
SEPARATOR = (": ", "：")


def render(event: StoredEvent, device: Device, *, language: str = "en", timezone: str = "UTC",
           public_url: str = "", place: str | None = None) -> tuple[str, str, dict[str, str]]:
    """(title, body, data) of `event` for a reader of `language` in `timezone`."""
    index = 1 if language == "zh" else 0
    alarm = str(event.attributes.get("alarm", ""))
    alarm_name = ALARM_NAMES.get(alarm, (alarm, alarm))[index]
    zone = place if event.geofence_id is not None and place else ""
    template = WHAT.get(event.type, (event.type, event.type))[index]
    what = template.replace("{alarm}", alarm_name).replace("{zone}", zone).strip()
    name = device.name or device.unique_id
    title = f"{name}{SEPARATOR[index]}{what}"
    local = event.event_time.astimezone(zoneinfo.ZoneInfo(timezone))
    parts = [str(event.attributes.get("message") or what),
             f"{AT[index]} {local:%Y-%m-%d %H:%M} ({timezone})"]
    if place and not zone:
        parts.append(f"{PLACE[index]} {place}")
    link = f"{public_url.rstrip('/')}/devices/{device.id}" if public_url else ""
    if link:
        parts.append(link)
    data = {"eventId": str(event.id), "deviceId": str(device.id), "type": event.type,
            "eventTime": event.event_time.astimezone(dt.UTC).isoformat()}
    if alarm:
        data["alarm"] = alarm
    if event.geofence_id is not None:
        data["geofenceId"] = str(event.geofence_id)
    if link:
        data["url"] = link
    return title, " · ".join(parts) if index == 0 else "，".join(parts), data


def place_of(latitude: float | None, longitude: float | None) -> str | None:
    """Coordinates as a reader sees them (5 decimals: about a metre)."""
    if latitude is None or longitude is None:
        return None
    return f"{latitude:.5f}, {longitude:.5f}"


