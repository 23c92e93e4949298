"""JSON from outside: nesting is counted without recursion and refused before parsing."""

from __future__ import annotations

import json
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertline.errors import ValidationError
from alertline.intake.json_text import MAX_JSON_DEPTH, load_json, nested_deeper_than


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_the_limit_itself_is_accepted_and_one_more_is_not() -> None:
    assert load_json(_nested(MAX_JSON_DEPTH)) is not None
    with pytest.raises(ValidationError, match="JSON nested too deeply") as err:
        load_json(_nested(MAX_JSON_DEPTH + 1))
    assert (err.value.field, err.value.code) == ("payload", "json")


def test_far_beyond_the_recursion_limit_the_stack_stays_shallow() -> None:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(200)  # json.loads of this text would need thousands of frames
    try:
        with pytest.raises(ValidationError, match="nested too deeply"):
            load_json('{"alerts": ' + _nested(500_000) + "}")
    finally:
        sys.setrecursionlimit(limit)


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"message": "[" * 1000 + '\\" {{{' + "{" * 1000, "id": "a\\"})
    assert load_json(text)["id"] == "a\\"


def test_bytes_in_any_encoding_json_detects() -> None:
    assert load_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}  # a UTF-8 byte order mark
    assert load_json('{"a": 1}'.encode("utf-16")) == {"a": 1}
    with pytest.raises(ValidationError) as err:
        load_json(b'{"a": "\xff"}')
    assert (err.value.field, err.value.code) == ("payload", "encoding")


@pytest.mark.parametrize(("text", "reason"), [
    ('{"message": }', "malformed JSON: Expecting value at line 1 column 13"),
    ('{"id": ' + "9" * 5000 + "}", "malformed JSON"),
])
def test_malformed_json_names_the_payload(text: str, reason: str) -> None:
    with pytest.raises(ValidationError, match=reason) as err:
        load_json(text)
    assert (err.value.field, err.value.code) == ("payload", "json")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet="[]{}\"\\ab"),
    lambda children: st.lists(children, max_size=3) |
    st.dictionaries(st.text(alphabet="[]{}\"\\ab", max_size=4), children, max_size=3),
    max_leaves=40)


def _depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(json_values, st.integers(min_value=0, max_value=12))
def test_the_count_agrees_with_the_parsed_depth(value: object, limit: int) -> None:
    assert nested_deeper_than(json.dumps(value), limit) == (_depth(value) > limit)
