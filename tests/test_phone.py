"""Phone numbers: E.164 parsing and validation, and per-provider wire formats."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertline.errors import ValidationError
from alertline.phone import NumberFormat, country_code, format_number, looks_like_number, parse_e164


@pytest.mark.parametrize(("raw", "expected"), [
    ("+491701234560", "+491701234560"),
    ("  +49 170 1234560 ", "+491701234560"),
    ("0049 170 1234560", "+491701234560"),
    ("+49 (170) 123-4560", "+491701234560"),
    ("+1 650 253 0000", "+16502530000"),
    ("+43 664 1234567", "+436641234567"),
])
def test_valid_numbers_become_e164(raw: str, expected: str) -> None:
    assert parse_e164(raw) == expected


def test_national_number_with_a_default_region() -> None:
    assert parse_e164("0170 1234560", default_region="DE") == "+491701234560"


@pytest.mark.parametrize(("raw", "reason"), [
    ("+4917012", "not a valid number"),
    ("+999123456789", "unknown country code"),
    ("+49170123456789012345", "too long"),
    ("0170 1234560", "needs an international prefix"),
    ("abc", "not a phone number"),
    ("+", "not a phone number"),
])
def test_invalid_numbers_name_the_number_and_the_reason(raw: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_e164(raw, field="to[0]")
    assert caught.value.field == "to[0]"
    assert reason in caught.value.reason
    assert repr(raw) in caught.value.reason
    assert str(caught.value).startswith("to[0]: invalid phone number")


@pytest.mark.parametrize("raw", ["+49170ABCDEF0", "+49 170 1234 ext 5", "0049170CALLME",
                                 "+4917012345é0"])
def test_letters_in_a_number_are_an_error_not_keypad_digits(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_e164(raw, field="to[2]")
    assert caught.value.field == "to[2]"
    assert "letters are not allowed" in caught.value.reason


@pytest.mark.parametrize("raw", ["", "   "])
def test_empty_number(raw: str) -> None:
    with pytest.raises(ValidationError, match="empty phone number"):
        parse_e164(raw)


@pytest.mark.parametrize("raw", [None, 491701234560, ["+491701234560"]])
def test_non_text_is_refused_with_its_type(raw: Any) -> None:
    with pytest.raises(ValidationError, match="expected a phone number as text"):
        parse_e164(raw)


def test_a_huge_input_is_quoted_only_in_part() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_e164("+49" + "1" * 5000)
    assert len(str(caught.value)) < 200


@given(st.text(max_size=40))
def test_any_text_is_a_number_or_a_validation_error(raw: str) -> None:
    try:
        number = parse_e164(raw)
    except ValidationError as err:
        assert err.field == "to"
    else:
        assert number.startswith("+") and number[1:].isdigit()
        assert parse_e164(number) == number, "E.164 output parses to itself"


@given(st.from_regex(r"\+49170[0-9]{7}", fullmatch=True))
def test_wire_formats(number: str) -> None:
    assert format_number(number, NumberFormat.E164) == number
    assert format_number(number, NumberFormat.DIGITS) == number[1:]
    assert country_code(number) == 49


@pytest.mark.parametrize(("text", "expected"), [
    ("+491701234560", True), ("0170 1234560", True), ("(0170) 1234560", True),
    ("alice", False), ("oncall", False), ("", False), ("   ", False),
])
def test_numbers_are_told_apart_from_names(text: str, expected: bool) -> None:
    assert looks_like_number(text) is expected
