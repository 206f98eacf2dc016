"""The sanitising boundary: what a device sends is made storable in one place."""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols import CommandResult, Position
from tracker.sanitize import (
    INT64_MAX,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_TEXT_CHARS,
    Unstorable,
    clean_mapping,
    clean_message,
    safe_text,
)
from tracker.storage.sql import json_dumps

NOW = dt.datetime(2026, 12, 7, tzinfo=dt.UTC)


def position(**attributes) -> Position:
    return Position(fix_time=NOW, valid=True, latitude=52.0, longitude=13.0,
                    attributes=attributes)


@pytest.mark.parametrize("text, what", [("a\x00b", "NUL"), ("a\ud800b", "lone surrogate"),
                                        ("\udfff", "lone surrogate")])
def test_text_that_no_database_stores_refuses_the_record_naming_the_attribute(text, what):
    with pytest.raises(Unstorable, match=f"attributes.note: text with a {what}"):
        clean_message(position(note=text))
    with pytest.raises(Unstorable, match="attributes.io.deep"):
        clean_message(position(io={"deep": text}))
    with pytest.raises(Unstorable, match="result"):
        clean_message(CommandResult(text))


def test_numbers_out_of_range_are_dropped_and_the_rest_kept():
    cleaned = clean_message(position(a=math.nan, b=math.inf, c=-math.inf, d=2**63, e=-(2**63) - 1,
                                     f=INT64_MAX, g=1.5, h=True, i=None))
    assert cleaned.attributes == {"f": INT64_MAX, "g": 1.5, "h": True, "i": None}


def test_position_fields_that_are_not_finite_become_zero():
    raw = Position(fix_time=NOW, valid=True, latitude=52.0, longitude=13.0,
                   altitude_m=math.nan, speed_kn=math.inf, course_deg=-math.inf, accuracy_m=3.0)
    cleaned = clean_message(raw)
    assert (cleaned.altitude_m, cleaned.speed_kn, cleaned.course_deg, cleaned.accuracy_m) == (
        0.0, 0.0, 0.0, 3.0)


def test_keys_that_are_not_identifiers_are_dropped():
    cleaned = clean_mapping({"ok": 1, "io239": 2, "101_521055_2.9": 3, "батарея": 4,
                             "": 5, "a b": 6, "<script>": 7, "x" * 65: 8, "$where": 9, 7: 10})
    assert cleaned == {"ok": 1, "io239": 2, "101_521055_2.9": 3, "батарея": 4}


def test_long_text_is_truncated_bytes_become_hex_and_containers_are_bounded():
    deep: dict = {}
    node = deep
    for _ in range(MAX_DEPTH + 3):
        node["n"] = {}
        node = node["n"]
    cleaned = clean_mapping({"t": "x" * (MAX_TEXT_CHARS + 10), "b": b"\x01\xff",
                             "l": list(range(MAX_ITEMS + 5)), "deep": deep, "obj": object(),
                             "when": NOW})
    assert len(cleaned["t"]) == MAX_TEXT_CHARS and cleaned["b"] == "01ff"
    assert cleaned["l"] == list(range(MAX_ITEMS)) and cleaned["when"] == NOW.isoformat()
    assert "obj" not in cleaned
    depth, node = 0, cleaned["deep"]
    while node:
        node, depth = node["n"], depth + 1
    assert depth < MAX_DEPTH


def test_a_clean_message_is_returned_unchanged_in_value():
    original = position(ignition=True, power=12.5, alarm="sos", io={"1": [1, 2]})
    assert clean_message(original) == original


def test_safe_text_escapes_instead_of_refusing():
    assert safe_text("86\x00\ud800x", 128) == "86\\x00\\ud800x"
    assert safe_text("a" * 200, 128) == "a" * 128


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.text(max_size=10), children, max_size=5), max_leaves=30)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_whatever_a_decoder_produces_is_either_refused_or_valid_strict_json(attributes):
    try:
        cleaned = clean_mapping(attributes)
    except Unstorable:
        return
    text = json_dumps(cleaned)
    assert "\\u0000" not in text
    _strings_encode(json.loads(text, parse_constant=_refuse_constant))


def _strings_encode(value):
    """Every key and string of a loaded JSON value is valid UTF-8 (no lone surrogate)."""
    if isinstance(value, str):
        value.encode("utf-8")
    elif isinstance(value, dict):
        for key, item in value.items():
            key.encode("utf-8")
            _strings_encode(item)
    elif isinstance(value, list):
        for item in value:
            _strings_encode(item)


def _refuse_constant(name):
    raise AssertionError(f"{name} in the stored JSON")
