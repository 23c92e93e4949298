"""Inbound alert requests: each field's validation, and nothing but ValidationError on bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertline.errors import ValidationError
from alertline.intake.request import (
    FIELDS,
    MAX_MESSAGE_CHARS,
    MAX_RECIPIENTS,
    AlertRequest,
    duration_seconds,
    parse_payload,
    parse_request,
    resolve_expiry,
)
from alertline.model import Channel, Priority

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def request(**fields: Any) -> AlertRequest:
    return parse_request({"message": "Water leak", **fields})


def refused(data: Any) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse_request(data)
    return caught.value


def test_minimal_request() -> None:
    parsed = parse_request({"message": "  Water leak  "})
    assert parsed == AlertRequest(message="Water leak")


def test_full_request() -> None:
    parsed = parse_request({
        "id": "leak-42", "to": ["+491701234560", "alice"], "channel": ["sms", "VOICE", "sms"],
        "message": "Leak in ${room}", "title": "Basement", "route": "leak", "provider": "sim",
        "sender": "ACME", "locale": "de-DE", "priority": "HIGH",
        "audio_url": "https://example.org/leak.wav",
        "personalization": {"alice": {"room": "cellar", "floor": -1}},
        "not_before": "2026-01-01T13:00:00Z", "expires": "30m",
        "quiet_hours": ["22:00/07:00"], "escalation": "page", "options": {"flash": True},
    })
    assert parsed.id == "leak-42"
    assert parsed.to == ("+491701234560", "alice")
    assert parsed.channels == (Channel.SMS, Channel.VOICE)
    assert parsed.locale == "de_DE"
    assert parsed.priority is Priority.HIGH
    assert parsed.personalization == {"alice": {"room": "cellar", "floor": "-1"}}
    assert parsed.not_before == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert parsed.expires == "30m"
    assert parsed.quiet_hours == ("22:00/07:00",)
    assert parsed.options == {"flash": True}


@pytest.mark.parametrize(("data", "field", "reason"), [
    ({}, "message", "required"),
    ({"message": None}, "message", "required"),
    ({"message": 5}, "message", "expected a string, got int"),
    ({"message": "   "}, "message", "must not be empty"),
    ({"message": "x" * (MAX_MESSAGE_CHARS + 1)}, "message", f"longer than {MAX_MESSAGE_CHARS}"),
    ({"message": "a\x00b"}, "message", "NUL"),
    ({"message": "m", "colour": "red"}, "colour", "unknown field"),
    ({"message": "m", "": "red"}, "''", "unknown field"),
    ({"message": "m", "to": 491701234560}, "to", "expected a number, a name, or a list"),
    ({"message": "m", "to": ["+491701234560", ""]}, "to[1]", "expected a non-empty string"),
    ({"message": "m", "to": [None]}, "to[0]", "expected a non-empty string"),
    ({"message": "m", "to": ["+49"] * (MAX_RECIPIENTS + 1)}, "to", "more than"),
    ({"message": "m", "id": True}, "id", "expected a string"),
    ({"message": "m", "id": 1.5}, "id", "expected a string"),
    ({"message": "m", "id": -3}, "id", "positive"),
    ({"message": "m", "id": "has space"}, "id", "1-128 characters"),
    ({"message": "m", "id": "-leading"}, "id", "starting with a letter or digit"),
    ({"message": "m", "id": "x" * 129}, "id", "1-128 characters"),
    ({"message": "m", "channel": "fax"}, "channel", "unknown channel 'fax'"),
    ({"message": "m", "channel": []}, "channel", "expected sms, voice or a list"),
    ({"message": "m", "channel": [5]}, "channel", "expected sms or voice, got int"),
    ({"message": "m", "title": "t" * 201}, "title", "longer than 200"),
    ({"message": "m", "route": "no spaces"}, "route", "letters, digits, _ and - only"),
    ({"message": "m", "provider": ["sim"]}, "provider", "expected a string"),
    ({"message": "m", "escalation": "a/b"}, "escalation", "letters, digits"),
    ({"message": "m", "sender": "s" * 33}, "sender", "longer than 32"),
    ({"message": "m", "locale": "German"}, "locale", "expected a locale"),
    ({"message": "m", "priority": "urgent"}, "priority", "expected normal or high"),
    ({"message": "m", "priority": 1}, "priority", "expected normal or high"),
    ({"message": "m", "audio_url": "ftp://x/y.wav"}, "audio_url", "http(s) URL"),
    ({"message": "m", "personalization": []}, "personalization", "keyed by recipient"),
    ({"message": "m", "personalization": {"a": "b"}}, "personalization.a", "key: value"),
    ({"message": "m", "personalization": {"a": {"1x": "v"}}}, "personalization.a.1x",
     "invalid key name"),
    ({"message": "m", "personalization": {"a": {"k": {"v": 1}}}}, "personalization.a.k",
     "expected a string"),
    ({"message": "m", "personalization": {"a": {"k": "cellar\x00; rm"}}},
     "personalization.a.k", "control character"),
    ({"message": "m", "personalization": {"a": {"k": "\x1b[2J"}}}, "personalization.a.k",
     "control character"),
    ({"message": "m", "personalization": {"a": {"k": "x\x7f"}}}, "personalization.a.k",
     "control character"),
    ({"message": "m", "personalization": {"a": {"k": "\x85"}}}, "personalization.a.k",
     "control character"),
    ({"message": "m", "not_before": "tomorrow"}, "not_before", "ISO 8601"),
    ({"message": "m", "not_before": 1767268800}, "not_before", "ISO 8601"),
    ({"message": "m", "expires": "30 minutes"}, "expires", "ISO 8601"),
    ({"message": "m", "expires": "400d"}, "expires", "at most 366 days"),
    ({"message": "m", "quiet_hours": "22:00-07:00"}, "quiet_hours", "HH:MM/HH:MM"),
    ({"message": "m", "quiet_hours": {"from": "22:00"}}, "quiet_hours", "list"),
    ({"message": "m", "options": ["flash"]}, "options", "expected an object"),
    ({"message": "\ud800"}, "message", "not valid Unicode"),
    ({"message": "m", "options": {"x": ["ok", {"k": "\udfff"}]}}, "options.x[1].k",
     "not valid Unicode"),
    ({"message": "m", "options": {"a": nested(40)}}, "options.a" + "[0]" * 31,
     "nested more than 32 levels"),
])
def test_each_field_is_validated(data: dict[str, Any], field: str, reason: str) -> None:
    error = refused(data)
    assert error.field == field
    assert reason in error.reason
    assert str(error) == f"{field}: {error.reason}"


def test_personalization_keeps_tabs_newlines_and_any_script() -> None:
    values = {"room": "Keller\tNord\nTür 2", "name": "Zoë 日本"}
    assert request(personalization={"alice": values}).personalization["alice"] == values


def test_not_a_json_object() -> None:
    assert refused(["message"]).field == "payload"


def test_numeric_id_becomes_text() -> None:
    assert request(id=4711).id == "4711"


def test_single_values_become_tuples() -> None:
    parsed = request(to="alice", channel="voice", quiet_hours="22:00/07:00")
    assert (parsed.to, parsed.channels, parsed.quiet_hours) == (
        ("alice",), (Channel.VOICE,), ("22:00/07:00",))


def test_naive_timestamps_are_utc() -> None:
    assert request(not_before="2026-01-01T13:00:00").not_before == \
        datetime(2026, 1, 1, 13, 0, tzinfo=UTC)


def test_expiry_as_timestamp_or_duration() -> None:
    absolute = request(expires="2026-01-01T14:00:00+01:00").expires
    assert absolute == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert resolve_expiry(absolute, NOW) == absolute
    assert resolve_expiry("90s", NOW) == NOW + timedelta(seconds=90)
    assert resolve_expiry(None, NOW) is None
    assert [duration_seconds(d) for d in ("30s", "1.5m", "2h", "1d")] == [30, 90, 7200, 86400]


def test_empty_title_is_no_title() -> None:
    assert request(title="  ").title is None


# -- raw payloads ------------------------------------------------------------------------------


def test_payload_json_object() -> None:
    assert parse_payload(b'{"message": "hi", "to": "alice"}', max_bytes=1024).to == ("alice",)


def test_payload_plain_text_on_a_route_topic() -> None:
    parsed = parse_payload(b" Water leak \n", max_bytes=1024, route="leak")
    assert (parsed.message, parsed.route) == ("Water leak", "leak")


def test_payload_json_on_a_route_topic_is_bound_to_the_topic_route() -> None:
    parsed = parse_payload(b'{"message": "hi", "route": "leak"}', max_bytes=1024, route="leak")
    assert (parsed.route, parsed.route_topic) == ("leak", True)
    assert parse_payload(b"hi", max_bytes=1024, route="leak").route_topic
    assert not parse_payload(b'{"message": "hi", "route": "leak"}', max_bytes=1024).route_topic
    with pytest.raises(ValidationError) as caught:
        parse_payload(b'{"message": "hi", "route": "door"}', max_bytes=1024, route="leak")
    assert caught.value.field == "route"


@pytest.mark.parametrize(("payload", "route", "code", "reason"), [
    (b"x" * 2000, None, "too_large", "larger than the limit of 1024 bytes"),
    (b"\xff\xfe", None, "encoding", "not UTF-8 (byte 0)"),
    (b'{"message": }', None, "json", "malformed JSON: Expecting value at line 1 column 13"),
    (b"Water leak", None, "json", "expected a JSON object"),
    (b"[1, 2]", None, "json", "expected a JSON object"),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", None, "json", "nested too deeply"),
    (b'{"message": "m", "id": ' + b"9" * 5000 + b"}", None, "json", "malformed JSON"),
], ids=["too-large", "not-utf8", "malformed", "plain-text", "array", "deep", "huge-int"])
def test_bad_payloads(payload: bytes, route: str | None, code: str, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_payload(payload, max_bytes=1024 if payload.startswith(b"x") else 1 << 20,
                      route=route)
    assert caught.value.field == "payload"
    assert caught.value.code == code
    assert reason in caught.value.reason


# -- nothing but ValidationError ---------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)
field_values = st.one_of(
    json_values,
    st.sampled_from(["sms", "voice", "+491701234560", "alice", "30m", "22:00/07:00",
                     "2026-01-01T12:00:00Z", "https://example.org/a.wav", "high", "de_DE"]),
    st.lists(st.sampled_from(["sms", "voice", "+491701234560", "alice", ""]), max_size=3),
    st.dictionaries(st.sampled_from(["alice", "+491701234560"]),
                    st.dictionaries(st.text(max_size=5), json_values, max_size=2), max_size=2))
requests = st.dictionaries(st.sampled_from(sorted(FIELDS)) | st.text(max_size=6), field_values,
                           max_size=8)


def accepted_or_refused(data: Any) -> None:
    try:
        parsed = parse_request(data)
    except ValidationError as err:
        assert err.field and err.reason
    else:
        assert parsed.message and isinstance(parsed.message, str)
        assert all(isinstance(target, str) and target for target in parsed.to)


@settings(max_examples=300)
@given(requests)
def test_arbitrary_requests_raise_only_validation_errors(data: dict[str, Any]) -> None:
    accepted_or_refused(data)


@settings(max_examples=200)
@given(requests.map(lambda d: {"message": "m", **d}))
def test_requests_with_a_message_raise_only_validation_errors(data: dict[str, Any]) -> None:
    accepted_or_refused(data)


@given(json_values)
def test_arbitrary_json_raises_only_validation_errors(data: Any) -> None:
    accepted_or_refused(data)


@given(st.binary(max_size=200), st.none() | st.just("leak"))
def test_arbitrary_bytes_raise_only_validation_errors(payload: bytes, route: str | None) -> None:
    try:
        parse_payload(payload, max_bytes=150, route=route)
    except ValidationError as err:
        assert err.field


@given(requests)
def test_arbitrary_json_text_raises_only_validation_errors(data: dict[str, Any]) -> None:
    try:
        payload = json.dumps(data).encode()
    except ValueError:
        return  # not representable as JSON text at all (e.g. a lone surrogate key)
    try:
        parse_payload(payload, max_bytes=1 << 20)
    except ValidationError as err:
        assert err.field
