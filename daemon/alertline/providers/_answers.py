"""Tolerant reading of provider answers: JSON objects, error bodies, ``Retry-After``.

Split from :mod:`alertline.providers._http` (which re-exports every public name here): these
helpers only read a response that the choke point has already fetched and size-limited, so
wire modules can use them without touching I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from alertline.errors import ProviderAnswerError
from alertline.model import utcnow

_CODE_KEYS = ("code", "error_code", "errorCode", "status_code", "status")
_MESSAGE_KEYS = ("message", "error", "description", "reason", "details")


def default_error_message(response: httpx.Response) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error body: JSON in its common shapes, else the plain text.

    Read: ``{"code": 422, "message": "..."}`` and its spelling variants (``errorCode``,
    ``error``, ``description``, ``reason``, ...), ``{"error": {"code", "message"}}``, plain text.
    """
    body = response.text.strip()[:500]
    if not body:
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, body
    if not isinstance(data, Mapping):
        return None, body
    inner = data.get("error")
    source: Mapping[str, Any] = inner if isinstance(inner, Mapping) else data
    code = first_present(source, *_CODE_KEYS)
    message = first_present(source, *_MESSAGE_KEYS)
    return (str(code) if code is not None else None,
            str(message) if isinstance(message, str | int | float) else body)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` hint in seconds, if the response carries one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


def json_object(provider: str, response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or :class:`ProviderAnswerError`."""
    try:
        data = response.json()
    except ValueError:
        raise ProviderAnswerError(
            provider, f"answer is not JSON (HTTP {response.status_code})") from None
    if not isinstance(data, dict):
        raise ProviderAnswerError(provider, "answer is not a JSON object")
    return data


def first_present(data: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present in ``data`` (tolerant of spelling variants)."""
    for key in keys:
        if key in data and data[key] is not None:
            return data[key]
    lowered = {k.lower(): v for k, v in data.items() if isinstance(k, str)}
    for key in keys:
        value = lowered.get(key.lower())
        if value is not None:
            return value
    return None
