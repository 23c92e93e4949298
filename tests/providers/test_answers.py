"""Tolerant reading of provider answers (``providers/_answers.py``): the error bodies, JSON
objects and ``Retry-After`` values providers actually send."""

from __future__ import annotations

from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest

from alertline.errors import ProviderAnswerError
from alertline.model import utcnow
from alertline.providers._answers import (
    default_error_message,
    first_present,
    json_object,
    retry_after_seconds,
)


def answer(status: int = 400, body: str = "", **headers: str) -> httpx.Response:
    return httpx.Response(status, text=body, headers=headers)


@pytest.mark.parametrize(("body", "expected"), [
    ('{"code": 422, "message": "bad number"}', ("422", "bad number")),
    ('{"errorCode": "E7", "description": "no credit"}', ("E7", "no credit")),
    ('{"error": {"code": "auth", "message": "token expired"}}', ("auth", "token expired")),
    ('{"error": "invalid_grant"}', (None, "invalid_grant")),
    ('{"STATUS_CODE": -3, "Reason": "too busy"}', ("-3", "too busy")),
    ('{"code": 9, "message": {"nested": true}}',
     ("9", '{"code": 9, "message": {"nested": true}}')),
    ("[1, 2]", (None, "[1, 2]")),
    ("Service Unavailable", (None, "Service Unavailable")),
    ("  ", (None, None)),
])
def test_the_code_and_message_of_an_error_body(body: str,
                                               expected: tuple[str | None, str | None]) -> None:
    assert default_error_message(answer(body=body)) == expected


def test_an_error_body_is_cut_to_500_characters() -> None:
    _, message = default_error_message(answer(body="x" * 5000))
    assert message == "x" * 500


def test_retry_after_in_seconds_as_an_http_date_or_unreadable() -> None:
    assert retry_after_seconds(answer(429, **{"Retry-After": "12"})) == 12.0
    when = format_datetime(utcnow() + timedelta(seconds=120), usegmt=True)
    seconds = retry_after_seconds(answer(429, **{"Retry-After": when}))
    assert seconds is not None and 115 <= seconds <= 120
    past = format_datetime(utcnow() - timedelta(hours=1), usegmt=True)
    assert retry_after_seconds(answer(503, **{"Retry-After": past})) == 0.0
    assert retry_after_seconds(answer(503, **{"Retry-After": "soon"})) is None
    assert retry_after_seconds(answer(503)) is None


def test_a_json_object_or_a_typed_error() -> None:
    assert json_object("p", answer(200, '{"jobId": "J1"}')) == {"jobId": "J1"}
    with pytest.raises(ProviderAnswerError, match=r"not JSON \(HTTP 200\)"):
        json_object("p", answer(200, "<html>"))
    with pytest.raises(ProviderAnswerError, match="not a JSON object"):
        json_object("p", answer(200, '["J1"]'))


def test_the_first_present_key_in_any_spelling() -> None:
    data = {"JobID": "J1", "id": None, "status": 0}
    assert first_present(data, "id", "jobId") == "J1"  # None counts as absent; any case
    assert first_present(data, "status", "state") == 0  # a falsy value is present
    assert first_present(data, "missing") is None
