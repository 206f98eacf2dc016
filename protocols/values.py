"""Small value helpers every codec needs, in Traccar's vocabulary.

Units: speed conversions to knots (records carry knots, as NMEA and Traccar);
the `network` map of cell towers and Wi-Fi access points that geolocation
services take; alarms joined with commas when a frame carries several; decoder
options given as text ("1", "true", "yes", "on").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

KMH_PER_KNOT = 1.852
MPS_PER_KNOT = 1852.0 / 3600.0


def knots_from_kmh(speed_kmh: float) -> float:
    return speed_kmh / KMH_PER_KNOT


def network(cells: Sequence[Mapping[str, Any]] = (), wifi: Sequence[Mapping[str, Any]] = (),
            radio_type: str = "gsm") -> dict[str, Any] | None:
    """Traccar's network map, or None when there is neither a cell nor Wi-Fi.

    Cells are {"cellId", "locationAreaCode", "mobileCountryCode",
    "mobileNetworkCode"[, "signalStrength"]}; access points {"macAddress"[,
    "signalStrength"]}.
    """
    if not cells and not wifi:
        return None
    result: dict[str, Any] = {"radioType": radio_type, "considerIp": False}
    if cells:
        result["cellTowers"] = [dict(cell) for cell in cells]
    if wifi:
        result["wifiAccessPoints"] = [dict(point) for point in wifi]
    return result


def cell_tower(mcc: int, mnc: int, lac: int, cell_id: int,
               signal_strength: int | None = None) -> dict[str, Any]:
    """One cell in Traccar's (and the geolocation APIs') shape."""
    cell = {"cellId": cell_id, "locationAreaCode": lac, "mobileCountryCode": mcc,
            "mobileNetworkCode": mnc}
    if signal_strength is not None:
        cell["signalStrength"] = signal_strength
    return cell


def add_alarm(attributes: dict[str, Any], alarm: str | None) -> None:
    """Set attributes["alarm"]; a second alarm in one frame is comma-joined
    (Traccar's form, e.g. "sos,lowBattery")."""
    if alarm:
        existing = attributes.get("alarm")
        attributes["alarm"] = f"{existing},{alarm}" if existing else alarm


def option_flag(value: Any) -> bool:
    """A boolean decoder option, also when configured as text."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)
