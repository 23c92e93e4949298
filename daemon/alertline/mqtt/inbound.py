"""What an inbound MQTT message means: alert requests, Alertmanager payloads, ack/cancel/resolve.

Every message gets an answer: the accepted alert, the report, or an error on ``<base>/error`` that
names the field and the reason (and, under MQTT v5, the same on the request's response topic).
Nothing raised here reaches the MQTT bridge; bad input never stops the daemon.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from alertline.errors import NotFoundError, ValidationError
from alertline.intake.alertmanager import apply_notification, parse_notification
from alertline.intake.json_text import load_json
from alertline.intake.request import parse_payload
from alertline.mqtt.bridge import InboundMessage, Outgoing
from alertline.mqtt.topics import ORDERED_KINDS, InboundKind, InboundTopic, Topics
from alertline.store.health import StoreUnavailableError

if TYPE_CHECKING:
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)

EXCERPT_CHARS = 200
MAX_CONTROL_BYTES = 4096
_ALERT_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:@-")


def encode(data: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


class InboundHandler:
    """Turns inbound messages into engine calls and their answers."""

    def __init__(self, engine: Engine, topics: Topics, *, max_payload_bytes: int,
                 on_homeassistant_online: Callable[[], Awaitable[None]] | None = None) -> None:
        self.engine = engine
        self.topics = topics
        self.max_payload_bytes = max_payload_bytes
        self._on_homeassistant_online = on_homeassistant_online
        self.received: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()

    def ordered(self, topic: str) -> bool:
        """Whether a message on ``topic`` must wait for the messages received before it."""
        parsed = self.topics.parse(topic)
        return parsed is not None and parsed.kind in ORDERED_KINDS

    async def handle(self, message: InboundMessage) -> list[Outgoing]:
        """The answers to ``message``; never raises."""
        parsed = self.topics.parse(message.topic)
        if parsed is None:
            return self._error(message, None, ValidationError(
                "topic", "not an alertline topic", code="unknown_topic"))
        self.received[parsed.kind.value] += 1
        if parsed.kind is InboundKind.HOMEASSISTANT_STATUS:
            if message.payload.strip() == b"online" and self._on_homeassistant_online:
                await self._on_homeassistant_online()
            return []
        alert_id = parsed.argument if parsed.kind not in (InboundKind.SEND,
                                                          InboundKind.ALERTMANAGER) else None
        try:
            if message.retain:
                raise ValidationError("retain", "a retained message replayed on subscribe is not "
                                      "processed: publish alerts without the retain flag",
                                      code="retained")
            if message.response_topic and not self.topics.may_answer_on(message.response_topic):
                raise ValidationError("response_topic", "answers are published only under "
                                      f"{self.topics.reply_prefix} (mqtt.response_prefix)")
            answer, extra = await self._dispatch(parsed, message)
        except ValidationError as err:
            return self._error(message, self._id_of(message, alert_id), err)
        except NotFoundError as err:
            return self._error(message, alert_id, ValidationError("id", str(err),
                                                                  code="not_found"))
        except StoreUnavailableError:
            raise  # not kept: the bridge leaves the message unacknowledged for the broker
        except Exception as err:
            _LOGGER.exception("could not handle a message on %s", message.topic)
            return self._error(message, self._id_of(message, alert_id), ValidationError(
                "", f"internal error ({type(err).__name__}); it may not have been applied: "
                "try again",
                code="internal"))
        return extra + self._reply(message, answer)

    async def _dispatch(self, parsed: InboundTopic,
                        message: InboundMessage) -> tuple[dict[str, Any], list[Outgoing]]:
        """The answer for the response topic, and other messages to publish."""
        engine = self.engine
        source = f"mqtt:{message.topic}"
        if parsed.kind is InboundKind.SEND:
            request = parse_payload(message.payload, max_bytes=self.max_payload_bytes,
                                    route=parsed.argument)
            accepted = await engine.accept(request, source=source)
            answer = accepted.to_json()
            # a new alert's accepted message goes out through the outbox; a repeat's from here
            return answer, [Outgoing(self.topics.accepted(accepted.alert_id), encode(answer))] \
                if accepted.duplicate else []
        if parsed.kind is InboundKind.ALERTMANAGER:
            assert parsed.argument is not None
            notification = parse_notification(message.payload, route=parsed.argument,
                                               max_bytes=self.max_payload_bytes)
            result = await apply_notification(engine, notification, source=source)
            if result.errors:
                alert_id, first = result.errors[0]
                raise ValidationError(f"{alert_id}: {first.field}", first.reason, first.code)
            return result.to_json(), []
        alert_id = _alert_id(parsed.argument)
        by = _control_body(message.payload)
        if parsed.kind is InboundKind.ACK:
            report = await engine.ack(alert_id, by=by, via="mqtt")
        elif parsed.kind is InboundKind.CANCEL:
            report = await engine.cancel(alert_id, by=by)
        else:
            report = await engine.resolve(alert_id, by=by)
        return report.to_json(), []

    def _id_of(self, message: InboundMessage, alert_id: str | None) -> str | None:
        """The alert id a rejected message is about: from its topic, else from its JSON."""
        return alert_id or _request_id(message.payload, self.max_payload_bytes)

    def _reply(self, message: InboundMessage, answer: dict[str, Any]) -> list[Outgoing]:
        if not message.response_topic or not self.topics.may_answer_on(message.response_topic):
            return []
        return [Outgoing(message.response_topic, encode(answer),
                         correlation_data=message.correlation_data)]

    def _error(self, message: InboundMessage, alert_id: str | None,
               err: ValidationError) -> list[Outgoing]:
        """The error message (and response) for a rejected message; logged without secrets."""
        redact = self.engine.redactor.text
        self.errors[err.code] += 1
        detail = redact(str(err))
        excerpt = redact(message.payload[:EXCERPT_CHARS].decode("utf-8", errors="replace"))
        body: dict[str, Any] = {"topic": message.topic, "error": err.code, "field": err.field,
                                "detail": detail, "payload_excerpt": excerpt}
        if alert_id:
            body = {"id": alert_id, **body}
        _LOGGER.warning("rejected a message on %s: %s (%s)", message.topic, detail, err.code)
        payload = encode(body)
        answers = [Outgoing(self.topics.error, payload)]
        if message.response_topic and self.topics.may_answer_on(message.response_topic):
            answers.append(Outgoing(message.response_topic, payload,
                                    correlation_data=message.correlation_data))
        return answers


def _alert_id(value: str | None) -> str:
    if not value or len(value) > 128 or not set(value) <= _ALERT_ID_CHARS:
        raise ValidationError("id", "not a valid alert id (letters, digits and . _ : @ -)")
    return value


def _control_body(payload: bytes) -> str | None:
    """``by`` from an ack/cancel/resolve body: empty, or ``{"by": "name"}``."""
    if len(payload) > MAX_CONTROL_BYTES:
        raise ValidationError("payload", f"larger than the limit of {MAX_CONTROL_BYTES} bytes",
                              code="too_large")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError as err:
        raise ValidationError("payload", f"not UTF-8 (byte {err.start})", code="encoding") from None
    if not text:
        return None
    data = load_json(text)
    if not isinstance(data, dict):
        raise ValidationError("payload", "expected empty or a JSON object", code="type")
    unknown = sorted(str(k) for k in data if k != "by")
    if unknown:
        raise ValidationError(unknown[0], "unknown field", code="unknown_field")
    by = data.get("by")
    if by is not None and (not isinstance(by, str) or len(by) > 100):
        raise ValidationError("by", "expected a name of up to 100 characters", code="type")
    return by or None


def _request_id(payload: bytes, limit: int) -> str | None:
    """The ``id`` of a request that failed validation, if it can be read at all."""
    if len(payload) > limit or not payload.lstrip().startswith(b"{"):
        return None
    try:
        data = load_json(payload)
    except ValidationError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None
