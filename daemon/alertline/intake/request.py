"""Inbound alert requests (MQTT JSON, CLI, Home Assistant): validated field by field."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from alertline.engine.policy import is_quiet_window
from alertline.errors import ValidationError
from alertline.intake.json_text import load_json
from alertline.model import Channel, Priority

MAX_MESSAGE_CHARS = 4000
MAX_RECIPIENTS = 10_000
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_WINDOW = re.compile(r"^([01]\d|2[0-3]):[0-5]\d/([01]\d|2[0-3]):[0-5]\d$")
MAX_EXPIRY_SECONDS = 366 * 86400
MAX_NESTING = 32
_MAX_ID_NUMBER = 10**128
# control characters (C0 but tab and newline, DEL, C1): a NUL or escape sequence in a value that
# is spliced into an SMS or a text-to-speech call truncates or garbles it at the provider
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# what a message on a route's topic may set only if the route's ``allow_override`` lists it:
# who is reached, how, through which provider and how urgently is the route's decision
ROUTE_FIELDS = ("to", "channel", "provider", "escalation", "sender", "priority", "quiet_hours",
                "options")
FIELDS = frozenset({
    "id", "to", "channel", "message", "title", "route", "provider", "sender", "locale",
    "priority", "audio_url", "personalization", "not_before", "expires", "quiet_hours",
    "escalation", "options",
})


@dataclass(frozen=True, slots=True)
class AlertRequest:
    """A syntactically valid request; names are resolved against the config by the engine."""

    message: str
    to: tuple[str, ...] = ()
    id: str | None = None
    channels: tuple[Channel, ...] = ()
    title: str | None = None
    route: str | None = None
    provider: str | None = None
    sender: str | None = None
    locale: str | None = None
    priority: Priority | None = None
    audio_url: str | None = None
    personalization: dict[str, dict[str, str]] = field(default_factory=dict)
    not_before: datetime | None = None
    expires: datetime | str | None = None
    quiet_hours: tuple[str, ...] | None = None
    escalation: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    route_topic: bool = False  # came in on <base>/send/<route>: the route constrains it

    def route_fields(self) -> list[str]:
        """The :data:`ROUTE_FIELDS` this request sets itself."""
        given = {"to": bool(self.to), "channel": bool(self.channels),
                 "provider": self.provider is not None, "escalation": self.escalation is not None,
                 "sender": self.sender is not None, "priority": self.priority is not None,
                 "quiet_hours": self.quiet_hours is not None,  # [] clears the route's windows
                 "options": bool(self.options)}
        return [name for name in ROUTE_FIELDS if given[name]]


def decode_payload(payload: bytes, *, max_bytes: int) -> str:
    """An inbound body as text: within the size limit and valid UTF-8, else ValidationError."""
    if len(payload) > max_bytes:
        raise ValidationError("payload", f"larger than the limit of {max_bytes} bytes",
                              code="too_large")
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValidationError("payload", f"not UTF-8 (byte {err.start})", code="encoding") from None


def parse_payload(payload: bytes, *, max_bytes: int, route: str | None = None) -> AlertRequest:
    """A request from raw MQTT bytes: JSON object, or (for a route topic) plain text."""
    stripped = decode_payload(payload, max_bytes=max_bytes).strip()
    if stripped.startswith("{"):
        data = load_json(stripped)
        if route is None:
            return parse_request(data)
        if isinstance(data, dict) and data.get("route", route) != route:
            raise ValidationError("route", f"the topic names route {route!r}: a message on a "
                                  "route's topic cannot choose another route")
        if isinstance(data, dict):
            data["route"] = route
        return dataclasses.replace(parse_request(data), route_topic=True)
    if route is None:
        raise ValidationError("payload", "expected a JSON object", code="json")
    return dataclasses.replace(parse_request({"message": stripped, "route": route}),
                               route_topic=True)


def parse_request(data: Any) -> AlertRequest:
    """An :class:`AlertRequest` from decoded JSON; ValidationError names the field and reason."""
    if not isinstance(data, dict):
        raise ValidationError("payload", "expected a JSON object")
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        name = unknown[0]
        raise ValidationError(name if name.strip() else repr(name), "unknown field",
                              code="unknown_field")
    _check_encodable(data)
    message = _text(data, "message", required=True, limit=MAX_MESSAGE_CHARS)
    assert message is not None
    return AlertRequest(
        message=message,
        to=_targets(data.get("to")),
        id=_alert_id(data.get("id")),
        channels=_channels(data.get("channel")),
        title=_text(data, "title", limit=200),
        route=_name(data, "route"),
        provider=_name(data, "provider"),
        sender=_text(data, "sender", limit=32),
        locale=_locale(data.get("locale")),
        priority=_priority(data.get("priority")),
        audio_url=_url(data.get("audio_url")),
        personalization=_personalization(data.get("personalization")),
        not_before=_timestamp(data.get("not_before"), "not_before"),
        expires=_expires(data.get("expires")),
        quiet_hours=_windows(data.get("quiet_hours")),
        escalation=_name(data, "escalation"),
        options=_options(data.get("options")),
    )


def _text(data: dict[str, Any], key: str, *, required: bool = False,
          limit: int = 1000) -> str | None:
    value = data.get(key)
    if value is None:
        if required:
            raise ValidationError(key, "required", code="missing")
        return None
    if not isinstance(value, str):
        raise ValidationError(key, f"expected a string, got {type(value).__name__}",
                              code="type")
    value = value.strip()
    if required and not value:
        raise ValidationError(key, "must not be empty", code="empty")
    if len(value) > limit:
        raise ValidationError(key, f"longer than {limit} characters", code="too_long")
    if "\x00" in value:
        raise ValidationError(key, "contains a NUL character")
    return value or None


def _name(data: dict[str, Any], key: str) -> str | None:
    value = _text(data, key, limit=64)
    if value is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", value):
        raise ValidationError(key, "names may use letters, digits, _ and - only")
    return value


def _alert_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise ValidationError("id", "expected a string", code="type")
    if isinstance(value, int) and not 0 <= value < _MAX_ID_NUMBER:
        raise ValidationError("id", "a numeric id must be positive and at most 128 digits")
    text = str(value)
    if not _ID.fullmatch(text):
        raise ValidationError("id", "1-128 characters: letters, digits and . _ : @ - "
                              "(starting with a letter or digit)")
    return text


def _targets(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValidationError("to", "expected a number, a name, or a list of them", code="type")
    if len(items) > MAX_RECIPIENTS:
        raise ValidationError("to", f"more than {MAX_RECIPIENTS} recipients")
    result = []
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise ValidationError(f"to[{index}]", "expected a non-empty string", code="type")
        result.append(item.strip())
    return tuple(result)


def _channels(value: Any) -> tuple[Channel, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        raise ValidationError("channel", "expected sms, voice or a list of them", code="type")
    result: list[Channel] = []
    for item in items:
        if not isinstance(item, str):
            raise ValidationError("channel", f"expected sms or voice, got {type(item).__name__}",
                                  code="type")
        try:
            channel = Channel(item.lower())
        except ValueError:
            raise ValidationError("channel",
                                  f"unknown channel {item!r} (use sms or voice)") from None
        if channel not in result:
            result.append(channel)
    return tuple(result)


def _priority(value: Any) -> Priority | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        return Priority(value.lower())
    except ValueError:
        raise ValidationError("priority", "expected normal or high") from None


def _locale(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"[a-z]{2,3}([_-][A-Za-z]{2})?", value):
        raise ValidationError("locale", "expected a locale such as de_DE or en")
    return value.replace("-", "_")


def _url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not re.fullmatch(r"https?://[^\s]{3,2000}", value):
        raise ValidationError("audio_url", "expected an http(s) URL")
    return value


def personal_value(text: str) -> str | None:
    """Why ``text`` may not be a personalization value, or None if it may."""
    return "contains a control character (NUL, escape, ...)" if _CONTROL.search(text) else None


def _personalization(value: Any) -> dict[str, dict[str, str]]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("personalization", "expected an object keyed by recipient")
    result: dict[str, dict[str, str]] = {}
    for key, entries in value.items():
        if not isinstance(entries, dict):
            raise ValidationError(f"personalization.{key}", "expected an object of key: value")
        values: dict[str, str] = {}
        for name, item in entries.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(name)):
                raise ValidationError(f"personalization.{key}.{name}", "invalid key name")
            if not isinstance(item, str | int | float) or isinstance(item, bool) or \
                    (isinstance(item, int) and abs(item) >= _MAX_ID_NUMBER):
                raise ValidationError(f"personalization.{key}.{name}", "expected a string")
            text = str(item)
            problem = personal_value(text)
            if problem is not None:
                raise ValidationError(f"personalization.{key}.{name}", problem)
            values[str(name)] = text
        result[str(key)] = values
    return result


def _timestamp(value: Any, key: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(key, "expected an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(key, "expected an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _expires(value: Any) -> datetime | str | None:
    if value is None:
        return None
    if isinstance(value, str) and _DURATION.fullmatch(value.strip()):
        if duration_seconds(value) > MAX_EXPIRY_SECONDS:
            raise ValidationError("expires", "a duration of at most 366 days")
        return value.strip()
    return _timestamp(value, "expires")


def duration_seconds(text: str) -> float:
    """Seconds of a duration such as ``30s``, ``5m``, ``2h``, ``1d``."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValidationError("expires", "expected a duration such as 30m")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def resolve_expiry(value: datetime | str | None, now: datetime) -> datetime | None:
    """An absolute expiry from a timestamp or a duration relative to ``now``."""
    if value is None or isinstance(value, datetime):
        return value
    return now + timedelta(seconds=duration_seconds(value))


def _windows(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValidationError("quiet_hours", "expected a list of HH:MM/HH:MM windows")
    for item in items:
        if not isinstance(item, str) or not (_WINDOW.fullmatch(item) or is_quiet_window(item)):
            raise ValidationError("quiet_hours", f"{item!r} is not HH:MM/HH:MM or an ISO interval")
    return tuple(items)


def _check_encodable(data: dict[str, Any]) -> None:
    """Refuse text that cannot be sent as UTF-8 (lone surrogates from ``\\ud800`` escapes)
    and values nested too deeply to be stored or sent on."""
    stack: list[tuple[str, Any, int]] = [(str(key), value, 1) for key, value in data.items()]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, dict | list) and depth > MAX_NESTING:
            raise ValidationError(path, f"nested more than {MAX_NESTING} levels deep")
        if isinstance(value, dict):
            stack.extend((f"{path}.{key}", item, depth + 1) for key, item in value.items())
            value = " ".join(str(key) for key in value)
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item, depth + 1)
                         for index, item in enumerate(value))
            continue
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(path, "contains text that is not valid Unicode "
                                      "(a lone surrogate)", code="encoding") from None


def _options(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError("options", "expected an object")
    return dict(value)
