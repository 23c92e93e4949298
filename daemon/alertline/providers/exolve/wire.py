"""MTS Exolve Voice API wire format: error texts, the call status table, answer parsing.

Facts from the seed ``exolve-voice-api.ru.txt`` (the Voice API reference, in Russian) and
PROVIDERS.md section D. What the seed does not show (the error body envelope, the full call
status vocabulary, whether ``call_id`` is a number or a string) is parsed tolerantly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from alertline.errors import ProviderAnswerError
from alertline.model import DeliveryState
from alertline.providers._http import default_error_message, first_present


@dataclass(frozen=True, slots=True)
class ErrorText:
    """A documented error message: the seed's Russian description and an English explanation."""

    match: str
    russian: str
    english: str
    auth: bool = False


# Ordered: the first entry whose ``match`` occurs in the provider's message (case-insensitive)
# wins, so the specific texts come before the generic "not found" of call/v1/GetInfo.
ERROR_TEXTS: tuple[ErrorText, ...] = (
    ErrorText("failed to parse token", "неправильно указан токен (API-ключ приложения)",
              "the application API key is wrong or missing: check api_key", auth=True),
    ErrorText("error getting jwt token claims",
              "ошибка при парсинге JWT claims (части API-ключа, отвечающие за информацию о "  # noqa: RUF001
              "пользователе/приложении)",
              "the user/application part of the API key cannot be read: the key is wrong or "
              "revoked", auth=True),
    ErrorText("malformed token", "не указан / не правильно указан API-ключ приложения",
              "the application API key is missing or malformed: check api_key", auth=True),
    ErrorText("error getting customer status", "ошибка подключения к аккаунту пользователя",
              "Exolve could not reach the customer account; temporary, retried"),
    ErrorText("customer is not in correct status",
              "не удается выполнить операцию из-за статуса аккаунта пользователя "
              "(не активирован/заблокирован)",
              "the Exolve account is not activated or is blocked", auth=True),
    ErrorText("error getting media resource",
              "не найден аудиофайл, id которого используется для создания услуги голосового SMS",
              "no audio file with this media_id exists in the account"),
    ErrorText("scenario not found", "ID приложения запроса не соответствует ID в API-ключе",
              "no such voice message in the application of this API key"),
    ErrorText("error getting application", "приложение не найдено",
              "the application (or voice message) was not found"),
    ErrorText("can only call to his own confirmed number",
              "попытка отправки голосового SMS на не подтвержденный номер во время пробного "
              "периода аккаунта",
              "trial accounts may call only the account's own confirmed number"),
    ErrorText("validation error", "не правильно указаны параметры запроса",
              "a request parameter is invalid: number format, service_id or call_id"),
    ErrorText("not found", "отсутствует медиа файлы, привязанные к услуге голосового сообщения",
              "no such call, or its voice message has no media file attached; "
              "or base_url is wrong"),
)


def explain(message: str) -> ErrorText | None:
    """The documented error whose text occurs in ``message``, if any."""
    lowered = message.lower()
    return next((entry for entry in ERROR_TEXTS if entry.match in lowered), None)


def describe_error(response: httpx.Response) -> tuple[str | None, str | None]:
    """``(code, message)`` of an Exolve error answer, with an English explanation appended.

    The envelope is not documented: ``{"error": "..."}`` (hinted by the seed's 403 row),
    gRPC-gateway ``{"code": 3, "message": "..."}``, ``{"error": {"code", "message"}}`` and plain
    text are all read (by the shared reader). The provider's own message is kept verbatim.
    """
    code, message = default_error_message(response)
    entry = explain(message) if message else None
    if message and entry is not None and entry.english.lower() not in message.lower():
        message = f"{message} ({entry.english})"
    return code, message


# Call statuses of call/v1/GetInfo. Only "completed" appears in the seed; the rest come from
# independent third-party pollers (PROVIDERS.md D, [C2]). Anything else stays non-final.
CALL_STATUSES: dict[str, tuple[DeliveryState, str | None]] = {
    "completed": (DeliveryState.DELIVERED, None),
    "busy": (DeliveryState.FAILED, "busy"),
    "no_answer": (DeliveryState.FAILED, "no answer"),
    "rejected": (DeliveryState.FAILED, "rejected by the callee"),
    "failed": (DeliveryState.FAILED, "call failed"),
    "canceled": (DeliveryState.CANCELLED, "call cancelled at the provider"),
    # final, but its meaning is undocumented: counted as a failure so escalation goes on
    "modified": (DeliveryState.FAILED, "ended with the undocumented status 'modified'"),
    "queued": (DeliveryState.SUBMITTED, None),
    "answered": (DeliveryState.SUBMITTED, None),
    "talk": (DeliveryState.SUBMITTED, None),
    "play_audio_stop": (DeliveryState.SUBMITTED, None),
}

_ALIASES = {"noanswer": "no_answer", "no_answered": "no_answer", "cancelled": "canceled"}


def status_key(status: str) -> str:
    """A status as a table key: lower case, spaces and hyphens as underscores."""
    key = "_".join(status.strip().lower().replace("-", " ").split())
    return _ALIASES.get(key, key)


def map_status(status: str | None,
               overrides: Mapping[str, DeliveryState] | None = None,
               ) -> tuple[DeliveryState, str | None]:
    """The normalised state and reason of a call status; unknown values stay non-final."""
    if not status:
        return DeliveryState.SUBMITTED, None
    key = status_key(status)
    for name, state in (overrides or {}).items():
        if status_key(name) == key:
            return state, None if state.success or not state.final else f"call {status}"
    return CALL_STATUSES.get(key, (DeliveryState.SUBMITTED, None))


def parse_time(value: Any) -> datetime | None:
    """An RFC 1123 (``Wed, 29 Mar 2023 10:32:45 +0000``) or RFC 3339 time, else None."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class VoiceMessageSummary:
    """One entry of ``voice-message/v1/GetList``."""

    id: str
    name: str | None = None
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class VoiceMessage:
    """A voice-message resource (``voice-message/v1/GetInfo``): audio plus optional redirect."""

    id: str
    name: str | None = None
    media_id: int | None = None
    digit: int | None = None
    redirect_number: str | None = None
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form (CLI ``--json``)."""
        return {"id": self.id, "name": self.name, "media_id": self.media_id,
                "digit": self.digit, "redirect_number": self.redirect_number,
                "created_at": self.created_at.isoformat() if self.created_at else None}


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What ``call/v1/GetInfo`` says about a placed call."""

    call_id: str
    status: str | None
    created: datetime | None = None
    updated: datetime | None = None
    started: datetime | None = None
    ended: datetime | None = None
    duration: int | None = None
    timeout: int | None = None
    direction: str | None = None
    source: str | None = None
    destination: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def details(self) -> dict[str, Any]:
        """The JSON-safe details kept beside the normalised state."""
        out: dict[str, Any] = {"call_id": self.call_id}
        for key in ("duration", "timeout", "direction", "source", "destination"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        for key in ("created", "updated", "started", "ended"):
            moment = getattr(self, key)
            if moment is not None:
                out[key] = moment.isoformat()
        return out


def parse_voice_message(provider: str, data: Mapping[str, Any]) -> VoiceMessage:
    """A :class:`VoiceMessage` from a GetInfo answer (``redirect_info`` nested or flat)."""
    ident = first_present(data, "id", "service_id")
    if ident is None:
        raise ProviderAnswerError(provider, "voice message answer without an id")
    redirect = data.get("redirect_info")
    redirect = redirect if isinstance(redirect, Mapping) else data
    return VoiceMessage(
        id=str(ident), name=_str(data.get("name")), media_id=_int(data.get("media_id")),
        digit=_int(redirect.get("digit")), redirect_number=_str(redirect.get("redirect_number")),
        created_at=parse_time(data.get("created_at")))


def parse_voice_message_list(provider: str, data: Mapping[str, Any]) -> list[VoiceMessageSummary]:
    """The entries of a GetList answer (``voice_message_list`` per the seed; variants tolerated)."""
    entries = first_present(data, "voice_message_list", "voice_messages", "list", "items")
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ProviderAnswerError(provider, "voice_message_list is not a list")
    result = []
    for entry in entries:
        if not isinstance(entry, Mapping) or first_present(entry, "id") is None:
            raise ProviderAnswerError(provider, "voice_message_list entry without an id")
        result.append(VoiceMessageSummary(id=str(entry["id"]), name=_str(entry.get("name")),
                                          created_at=parse_time(entry.get("created_at"))))
    return result


def parse_call_info(provider: str, call_id: str, data: Mapping[str, Any]) -> CallInfo:
    """A :class:`CallInfo` from a ``call/v1/GetInfo`` answer."""
    status = first_present(data, "status", "call_status", "state")
    return CallInfo(
        call_id=_str(first_present(data, "call_id")) or call_id,
        status=_str(status),
        created=parse_time(data.get("created")), updated=parse_time(data.get("updated")),
        started=parse_time(data.get("started")), ended=parse_time(data.get("ended")),
        duration=_int(data.get("duration")), timeout=_int(data.get("timeout")),
        direction=_str(data.get("direction")), source=_str(data.get("source")),
        destination=_str(data.get("destination")), raw=dict(data))
