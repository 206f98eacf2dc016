"""`DeviceState`: one device's state between reports, one slice per handler.

The state is the newest live fix (time, lon, lat: the engine's own bookkeeping for
late and retransmitted fixes) and a mapping of handler name -> `geofence.chain.Slice`.
It names no handler: the chain (`geofence.handlers.HANDLERS` and the user rules after
them) says which slices exist, so a new handler's slice is stored and restored without
a change here.  A slice is created fresh on first use (`DeviceState.slice`).

JSON (`to_json`, version `STATE_VERSION` = 2)::

    {"version": 2, "fix": {"time": iso, "lon": x, "lat": y} | null,
     "<handler name>": <that handler's slice JSON>, ...}

A slice equal to a fresh one is left out; two states are equal when their fixes and
their non-fresh slices are.  `from_json` never raises: garbage or an unknown version
gives a fresh state, a missing or damaged slice (or field) its default, a key no
handler of the chain claims is dropped.  Version 1 (the flat layout written before the
handler chain) is read by `_from_version_1`, which maps its keys onto the built-in
slices; that reader is frozen history and never changes for new handlers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

from geofence import handlers as registry
from geofence.chain import Handler, Slice, as_mapping, iso, parse_float, parse_time
from geofence.handlers.user_rules import UserRulesHandler

__all__ = ["STATE_VERSION", "DeviceState", "chain_of"]

STATE_VERSION = 2
RESERVED = frozenset({"version", "fix"})   # top-level keys that are not slices
S = TypeVar("S", bound=Slice)
HandlerClass = type[Handler[Any]]


def chain_of(handlers: Iterable[HandlerClass] | None = None) -> tuple[HandlerClass, ...]:
    """The handler classes an engine runs, in order: `handlers` (by default the
    registry `geofence.handlers.HANDLERS`, looked up at call time), then the user
    rules.  Names must be unique and not ``version`` or ``fix``."""
    listed = tuple(registry.HANDLERS if handlers is None else handlers)
    chain: tuple[HandlerClass, ...] = (*(cls for cls in listed if cls is not UserRulesHandler),
                                       UserRulesHandler)
    names = [cls.name for cls in chain]
    clashes = sorted({name for name in names if names.count(name) > 1} | (set(names) & RESERVED))
    if clashes:
        raise ValueError(f"handler names must be unique and not version or fix: {', '.join(clashes)}")
    return chain


@dataclass(slots=True, eq=False)
class DeviceState:
    """Mutable state of one device between reports; see the module docstring."""

    fix_time: dt.datetime | None = None     # newest live fix
    fix_lon: float | None = None
    fix_lat: float | None = None
    slices: dict[str, Slice] = field(default_factory=dict)   # handler name -> its slice

    def slice(self, handler: type[Handler[S]]) -> S:
        """The handler's slice (created fresh on first use)."""
        found = self.slices.get(handler.name)
        if found is None:
            found = self.slices[handler.name] = handler.slice_type()
        return cast(S, found)

    def is_late(self, fix_time: dt.datetime) -> bool:
        """Whether `fix_time` is older than the newest live fix (store it as archive)."""
        return self.fix_time is not None and fix_time < self.fix_time

    def _kept(self) -> dict[str, Slice]:
        return {name: part for name, part in self.slices.items() if part != type(part)()}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceState):
            return NotImplemented
        return ((self.fix_time, self.fix_lon, self.fix_lat, self._kept())
                == (other.fix_time, other.fix_lon, other.fix_lat, other._kept()))

    __hash__ = None  # type: ignore[assignment]   # mutable

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form (str, int, float, bool, list, dict, None)."""
        out: dict[str, Any] = {
            "version": STATE_VERSION,
            "fix": None if self.fix_time is None else {
                "time": iso(self.fix_time), "lon": self.fix_lon, "lat": self.fix_lat}}
        for name, part in self._kept().items():
            out[name] = part.to_json()
        return out

    @classmethod
    def from_json(cls, obj: Any, handlers: Iterable[HandlerClass] | None = None) -> DeviceState:
        """The state of `to_json` output (slices of the chain `chain_of(handlers)`);
        never raises (see the module docstring)."""
        if not isinstance(obj, Mapping):
            return cls()
        version = obj.get("version")
        if isinstance(version, bool) or not isinstance(version, int):
            return cls()
        if version == 1:
            obj = _from_version_1(obj)
        elif version != STATE_VERSION:
            return cls()
        state = cls()
        fix = as_mapping(obj.get("fix"))
        fix_time, lon, lat = (parse_time(fix.get("time")), parse_float(fix.get("lon")),
                              parse_float(fix.get("lat")))
        if fix_time is not None and lon is not None and lat is not None:
            state.fix_time, state.fix_lon, state.fix_lat = fix_time, lon, lat
        for handler in chain_of(handlers):
            raw = obj.get(handler.name)
            if raw is None:
                continue
            try:
                part = handler.slice_type.from_json(raw)
            except (TypeError, ValueError, AttributeError, KeyError, OverflowError):
                continue    # a slice reader that raised after all: its default
            state.slices[handler.name] = part
        return state


def _from_version_1(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A version-1 document (the flat layout before the handler chain) in the
    version-2 layout; each slice's reader then copes with damaged values."""
    return {
        "version": STATE_VERSION,
        "fix": obj.get("fix"),
        "status": {"status": obj.get("status"), "last_seen": obj.get("last_seen")},
        "inactive": {"fired": obj.get("inactive_fired")},
        "alarms": {"active": obj.get("alarms")},
        "ignition": {"on": obj.get("ignition")},
        "geofences": {"visits": obj.get("zones"), "enter_counts": obj.get("enter_counts"),
                      "exit_counts": obj.get("exit_counts")},
        "overspeed": obj.get("overspeed"),
        "motion": obj.get("motion"),
        "idle": obj.get("idle"),
        "rules": obj.get("rules"),
    }
