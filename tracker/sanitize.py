"""The one sanitising boundary for everything a device sends that gets stored.

Codecs decode whatever the wire carries; before any of it reaches the rule engine
or the database, `clean_message` (called by the pipeline, once per decoded record)
makes it storable on both databases, the same way for every protocol:

- strings containing NUL or a lone surrogate (neither fits PostgreSQL text nor
  UTF-8): the record is REFUSED with `Unstorable`, naming the attribute.  Such a
  string means a corrupted or hostile frame; silently altering it would hide that,
  so the frame goes to quarantine (raw bytes kept for the operator) and the device
  gets its protocol's refusal;
- floats that are NaN or infinite: the attribute is dropped (a position field such
  as altitude becomes 0.0);
- ints outside the signed 64-bit range: dropped (bool is kept as bool);
- attribute keys that are not identifiers (`KEY_RE`: word characters of any script,
  digits, underscores, then also dots and hyphens; 1 to 64 characters): dropped.
  Wider than a Python identifier on purpose: Wialon devices name their own
  parameters (``101_521055_2.9``, ``батарея``) and those are real data;
- strings longer than `MAX_TEXT_CHARS`: truncated; bytes become their hex (also
  truncated); datetimes their ISO 8601 text;
- containers: at most `MAX_ITEMS` entries (the rest dropped) and `MAX_DEPTH` levels
  (deeper values dropped); any other type: dropped.

Every drop is silent per value; the caller decides whether to log.  Pure: no I/O.
`safe_text` is the escape (not refuse) variant for metadata such as unique ids and
remote addresses, which are recorded even when they are garbage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import math
import re
from collections.abc import Mapping
from typing import Any

from protocols import CommandResult, Position

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_TEXT_CHARS = 2048
MAX_ITEMS = 256
MAX_DEPTH = 8
KEY_RE = re.compile(r"\w[\w.\-]{0,63}")
_UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")
_DROP = object()


class Unstorable(ValueError):
    """A decoded record holds a value no database can store faithfully."""


def clean_message(message: Position | CommandResult) -> Position | CommandResult:
    """`message` with storable values only; raises `Unstorable` (see the module
    docstring).  A message that needs no change is returned as it is."""
    if isinstance(message, CommandResult):
        text = _text(message.text, "result")
        return message if text == message.text else dataclasses.replace(message, text=text)
    attributes = clean_mapping(message.attributes, "attributes")
    network = (clean_mapping(message.network, "network")
               if message.network is not None else None)
    numbers: dict[str, Any] = {name: _finite(getattr(message, name))
               for name in ("altitude_m", "speed_kn", "course_deg", "accuracy_m")}
    return dataclasses.replace(message, attributes=attributes, network=network, **numbers)


def clean_mapping(values: Mapping[str, Any], path: str = "", depth: int = 0) -> dict[str, Any]:
    """A new dict of the storable entries of `values`; `path` names it in errors."""
    cleaned: dict[str, Any] = {}
    for key, value in values.items():
        if len(cleaned) >= MAX_ITEMS:
            break
        if not isinstance(key, str) or not _key_ok(key):
            continue
        kind = type(value)          # the common plain scalars first: this runs per frame
        if value is None or kind is bool or kind is str and len(value) <= MAX_TEXT_CHARS \
                and value.isascii() and "\x00" not in value:
            cleaned[key] = value
            continue
        if kind is float:
            if math.isfinite(value):
                cleaned[key] = value
            continue
        if kind is int:
            if INT64_MIN <= value <= INT64_MAX:
                cleaned[key] = value
            continue
        kept = _value(value, f"{path}.{key}" if path else key, depth + 1)
        if kept is not _DROP:
            cleaned[key] = kept
    return cleaned


@functools.lru_cache(maxsize=4096)
def _key_ok(key: str) -> bool:
    """Whether `key` is an attribute key we store (`KEY_RE`); devices use a small
    vocabulary, so the answers are cached."""
    return KEY_RE.fullmatch(key) is not None


def _value(value: Any, path: str, depth: int) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else _DROP
    if isinstance(value, float):
        return value if math.isfinite(value) else _DROP
    if isinstance(value, str):
        return _text(value, path)
    if isinstance(value, bytes | bytearray):
        return bytes(value[:MAX_TEXT_CHARS // 2]).hex()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if depth >= MAX_DEPTH:
        return _DROP
    if isinstance(value, Mapping):
        return clean_mapping(value, path, depth)
    if isinstance(value, list | tuple):
        items = (_value(item, f"{path}[{i}]", depth + 1)
                 for i, item in enumerate(value[:MAX_ITEMS]))
        return [item for item in items if item is not _DROP]
    return _DROP


def _text(value: str, path: str) -> str:
    bad = _UNSTORABLE_RE.search(value)
    if bad is not None:
        what = "a NUL character" if bad.group() == "\x00" else "a lone surrogate"
        raise Unstorable(f"{path}: text with {what} at offset {bad.start()}")
    return value[:MAX_TEXT_CHARS]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def safe_text(value: str, max_chars: int) -> str:
    """`value` with NUL and lone surrogates escaped (``\\x00``, ``\\ud800``), cut to
    `max_chars`: for identifiers and addresses that are recorded whatever they are."""
    if _UNSTORABLE_RE.search(value):
        value = _UNSTORABLE_RE.sub(lambda m: m.group().encode("unicode_escape").decode(), value)
    return value[:max_chars]
