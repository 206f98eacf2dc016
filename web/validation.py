"""The one gate JSON request bodies and query texts pass before any handler reads them.

`parse_json` turns the raw bytes of a body into plain Python values (dict, list,
str, int, float, bool, None) that every later layer can store, read back and
answer with, or raises `InputError` naming the offending place:

- the body is UTF-8 (RFC 8259 §8.1) and one JSON text; no byte order mark;
- arrays and objects nest at most `MAX_DEPTH` levels (the body itself is level 1);
  the depth is checked by a linear scan *before* `json.loads`, so no input can make
  the parser recurse without bound (``[`` repeated 100,000 times is an
  `InputError`, not a `RecursionError`);
- integers lie in the signed 64-bit range [`INT64_MIN`, `INT64_MAX`] (what every
  store column can hold); ``true``/``false`` are booleans, never integers here;
- numbers are finite: the literals ``NaN``, ``Infinity`` and ``-Infinity`` (which
  Python's json module accepts by default) are refused, and so is a decimal that
  overflows a double (``1e400``);
- strings and object keys hold no lone UTF-16 surrogate (``"\\ud800"`` decodes to
  one in Python and can be neither encoded as UTF-8 nor stored by PostgreSQL) and
  no NUL character (PostgreSQL text cannot hold it);
- an object names each key once (``{"a": 1, "a": 2}`` would silently keep the last).

The place is a path from the body: ``attributes.k``, ``areas[2]``, ``attributes["a
b"]``, or ``body`` for the body itself; `InputError`'s message starts with it,
e.g. ``attributes.k: lone UTF-16 surrogate U+D800 not allowed``.  Messages are
ASCII (keys are shown JSON-escaped), so they can be written anywhere.

Input that is not JSON at all raises `MalformedJson` (an `InputError` whose message
is just ``malformed JSON body``).  `check_text` applies the string rules to one
query parameter or form field value.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["INT64_MAX", "INT64_MIN", "MAX_DEPTH", "InputError", "MalformedJson", "check_text",
           "field_path", "parse_json"]

MAX_DEPTH = 32
INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1

# One JSON string (unrolled: no backtracking), a lone quote (an unterminated
# string: the scan stops and json.loads reports the syntax error), or a structural
# character.  Numbers, literals and white space are skipped.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|"|[\[\]{}:,]', re.DOTALL)
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_PATH = 200
_MAX_INT_DIGITS = 19   # len(str(INT64_MAX)); longer digit strings are out of range


class InputError(ValueError):
    """Input refused at the boundary; ``field`` is the path, ``reason`` what is wrong."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class MalformedJson(InputError):
    """Not JSON at all (syntax, encoding): the message is ``malformed JSON body``; the
    detail (what and where) is in ``reason``."""

    def __init__(self, reason: str):
        super().__init__("body", reason)
        self.args = ("malformed JSON body",)

    def __str__(self) -> str:
        return "malformed JSON body"


class _Refused:
    """Stands in for a value the parser hooks refuse, so the walk can name its path."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _parse_int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        return _Refused(f"integer {_clip(text)} is outside the 64-bit range")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        return _Refused(f"integer {text} is outside the 64-bit range")
    return value


def _parse_constant(name: str) -> _Refused:
    return _Refused(f"{name} is not a number JSON allows")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                result[key] = _Refused("key given more than once")
                break
            seen.add(key)
    return result


def field_path(parts: list[str | int]) -> str:
    """``["attributes", "k", 2]`` -> ``attributes.k[2]``; ``[]`` -> ``body``."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.fullmatch(part):
            text += f".{part}" if text else part
        else:
            text += f"[{_key_text(part)}]"
        if len(text) > _MAX_PATH:
            return text[:_MAX_PATH] + "..."
    return text or "body"


def _key_text(key: str) -> str:
    return _clip(json.dumps(key, ensure_ascii=True))


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def _string_problem(text: str) -> str | None:
    found = _BAD_CHAR.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return "NUL character (U+0000) not allowed"
    return f"lone UTF-16 surrogate U+{ord(found.group()):04X} not allowed"


def check_text(name: str, value: str) -> str:
    """`value` (a query parameter called `name`) unless it holds NUL or a lone surrogate."""
    problem = _string_problem(value)
    if problem is not None:
        raise InputError(name, problem)
    return value


def _check_depth(text: str) -> None:
    """InputError at the first array or object nested deeper than MAX_DEPTH."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return
    # Each open container: [kind, its current key (object) or index (array)].
    stack: list[list[Any]] = []
    last_string = None
    for match in _TOKEN.finditer(text):
        token = match.group()
        char = token[0]
        if char == '"':
            if len(token) == 1:
                return        # unterminated string: a syntax error json.loads reports
            last_string = token
        elif char in "[{":
            if len(stack) >= MAX_DEPTH:
                raise InputError(field_path(_scan_path(stack)),
                                 f"arrays and objects nested deeper than {MAX_DEPTH} levels")
            stack.append([char, None if char == "{" else 0])
        elif char in "]}":
            if stack:
                stack.pop()
        elif char == ":":
            if stack and stack[-1][0] == "{":
                stack[-1][1] = last_string
        elif stack and stack[-1][0] == "[":   # ","
            stack[-1][1] += 1


def _scan_path(stack: list[list[Any]]) -> list[str | int]:
    parts: list[str | int] = []
    for kind, position in stack:
        if kind == "[":
            parts.append(position)
        elif position is not None:
            try:
                parts.append(json.loads(position))
            except ValueError:
                parts.append("?")
    return parts


def _check_values(value: Any) -> None:
    """InputError at the first value that breaks the rules (iterative: no recursion)."""
    pending: list[tuple[Any, list[str | int]]] = [(value, [])]
    while pending:
        item, path = pending.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                problem = _string_problem(key)
                if problem is not None:
                    raise InputError(field_path(path), f"object key {_key_text(key)}: {problem}")
                pending.append((child, [*path, key]))
        elif isinstance(item, list):
            pending.extend((child, [*path, index]) for index, child in enumerate(item))
        elif isinstance(item, str):
            problem = _string_problem(item)
            if problem is not None:
                raise InputError(field_path(path), problem)
        elif isinstance(item, _Refused):
            raise InputError(field_path(path), item.reason)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InputError(field_path(path), "number too large for a double")


def parse_json(raw: bytes) -> Any:
    """The JSON value in `raw`, checked as the module docstring says; InputError
    (path ``body`` for syntax and encoding errors) otherwise."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedJson(f"not valid UTF-8 (byte {error.start})") from None
    if text.startswith("\ufeff"):
        raise MalformedJson("starts with a byte order mark; send plain UTF-8")
    _check_depth(text)
    try:
        value = json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant,
                           object_pairs_hook=_pairs)
    except json.JSONDecodeError as error:
        raise MalformedJson(f"{error.msg} at line {error.lineno} column {error.colno}") from None
    except (ValueError, RecursionError) as error:   # belt and braces: depth is bounded
        raise MalformedJson(type(error).__name__) from None
    _check_values(value)
    return value
