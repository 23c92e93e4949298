"""Prometheus Alertmanager webhooks: firing alerts become alerts, resolved ones resolve them.

Alertmanager posts a JSON document (webhook payload version 4) with every alert of a group. Each
firing alert becomes one alertline alert on the route, keyed by the alert's fingerprint and start
time: Alertmanager repeats a notification every ``repeat_interval`` and several Alertmanagers of a
cluster may send the same one, but an alert is called out once per firing episode. The alert id is
derived from the same facts (``am-<route>-<fingerprint>-<start>``), so a later ``resolved``
notification finds it without any lookup table and concurrent duplicates collapse in the engine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from alertline.errors import NotFoundError, ValidationError
from alertline.intake.json_text import load_json
from alertline.intake.request import MAX_MESSAGE_CHARS, AlertRequest, decode_payload, parse_request

if TYPE_CHECKING:
    from alertline.engine.core import Engine

WEBHOOK_VERSION = "4"
MAX_ALERTS = 1000
HIGH_SEVERITIES = frozenset({"critical", "page", "emergency", "fatal"})
_ROUTE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FINGERPRINT = re.compile(r"[A-Za-z0-9]{1,32}")


@dataclass(frozen=True, slots=True)
class FiringAlert:
    """One firing Alertmanager alert as an alert request, with its idempotency key."""

    alert_id: str
    key: str
    request: AlertRequest


@dataclass(frozen=True, slots=True)
class Notification:
    """A validated Alertmanager notification for one route."""

    route: str
    receiver: str | None
    group_key: str | None
    firing: tuple[FiringAlert, ...]
    resolved: tuple[str, ...]


@dataclass(slots=True)
class NotificationResult:
    """What a notification did: alert ids accepted, already known, resolved, or unknown."""

    accepted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    errors: list[tuple[str, ValidationError]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The answer (HTTP body, MQTT v5 response)."""
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "resolved": self.resolved, "unknown": self.unknown,
                "errors": [{"id": alert_id, "field": err.field, "error": err.code,
                            "detail": str(err)} for alert_id, err in self.errors]}


def parse_notification(payload: bytes, *, route: str, max_bytes: int) -> Notification:
    """A :class:`Notification` from raw bytes; ValidationError names the field and the reason."""
    text = decode_payload(payload, max_bytes=max_bytes)
    if not text.strip():
        raise ValidationError("payload", "empty: expected an Alertmanager webhook payload",
                              code="empty")
    # bad JSON is refused as bad input (400), not an internal error Alertmanager retries
    return notification_from_json(load_json(text), route)


def notification_from_json(data: Any, route: str) -> Notification:
    """A :class:`Notification` from a decoded webhook payload."""
    if not _ROUTE.fullmatch(route):
        raise ValidationError("route", "names may use letters, digits, _ and - only")
    if not isinstance(data, dict):
        raise ValidationError("payload", "expected a JSON object (an Alertmanager webhook "
                              "payload)", code="type")
    version = data.get("version")
    if version is not None and str(version) != WEBHOOK_VERSION:
        raise ValidationError("version", f"unsupported webhook payload version {version!r} "
                              f"(expected {WEBHOOK_VERSION})")
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise ValidationError("alerts", "required: a list of alerts",
                              code="missing" if alerts is None else "type")
    if len(alerts) > MAX_ALERTS:
        raise ValidationError("alerts", f"more than {MAX_ALERTS} alerts in one notification")
    common_labels = _strings(data.get("commonLabels"), "commonLabels")
    common_annotations = _strings(data.get("commonAnnotations"), "commonAnnotations")
    firing: list[FiringAlert] = []
    resolved: list[str] = []
    for index, item in enumerate(alerts):
        path = f"alerts[{index}]"
        if not isinstance(item, dict):
            raise ValidationError(path, "expected an object", code="type")
        status = item.get("status", data.get("status"))
        if status not in ("firing", "resolved"):
            raise ValidationError(f"{path}.status", "expected firing or resolved")
        labels = {**common_labels, **_strings(item.get("labels"), f"{path}.labels")}
        annotations = {**common_annotations,
                       **_strings(item.get("annotations"), f"{path}.annotations")}
        starts = _timestamp(item.get("startsAt"), f"{path}.startsAt")
        fingerprint = _fingerprint(item.get("fingerprint"), labels, f"{path}.fingerprint")
        alert_id = f"am-{route}-{fingerprint}-{int(starts.timestamp())}"
        if status == "resolved":
            resolved.append(alert_id)
            continue
        key = f"alertmanager:{route}:{fingerprint}:{starts.isoformat()}"
        firing.append(FiringAlert(alert_id, key, _request(alert_id, route, labels, annotations)))
    return Notification(route=route, receiver=_optional_text(data, "receiver"),
                        group_key=_optional_text(data, "groupKey"), firing=tuple(firing),
                        resolved=tuple(resolved))


class HeartbeatPinger(Protocol):
    """What a notification needs of the heartbeats: their names, and a ping."""

    @property
    def specs(self) -> Mapping[str, Any]:
        """The heartbeats, by name."""

    async def ping(self, name: str, source: str = ...) -> None:
        """A sign of life of heartbeat ``name``."""


async def apply_notification(engine: Engine, notification: Notification, *,
                             source: str, heartbeats: HeartbeatPinger | None = None,
                             ) -> NotificationResult:
    """Accept the firing alerts and resolve the resolved ones; unknown routes are refused.

    A "route" that names a heartbeat (and no route) takes Alertmanager's always-firing Watchdog:
    any firing alert is a ping of that heartbeat, and nothing is sent.
    """
    if heartbeats is not None and notification.route in heartbeats.specs and \
            notification.route not in engine.config.routes:
        if notification.firing:
            await heartbeats.ping(notification.route, "alertmanager")
        return NotificationResult()
    if notification.route not in engine.config.routes:
        raise ValidationError("route", f"unknown route {notification.route!r}",
                              code="unknown_route")
    result = NotificationResult()
    for firing in notification.firing:
        try:
            accepted = await engine.accept(firing.request, source=source, keys=[firing.key])
        except ValidationError as err:
            result.errors.append((firing.alert_id, err))
            continue
        (result.duplicates if accepted.duplicate else result.accepted).append(accepted.alert_id)
    for alert_id in notification.resolved:
        try:
            report = await engine.report(alert_id)
        except NotFoundError:
            result.unknown.append(alert_id)
            continue
        if report.status.resolved:
            result.duplicates.append(alert_id)
            continue
        await engine.resolve(alert_id, by="alertmanager")
        result.resolved.append(alert_id)
    return result


def _request(alert_id: str, route: str, labels: dict[str, str],
             annotations: dict[str, str]) -> AlertRequest:
    """The alert request of one firing alert: text from annotations, then labels."""
    name = labels.get("alertname", "").strip()
    summary = annotations.get("summary", "").strip()
    description = annotations.get("description", "").strip()
    parts = [summary or description]
    if summary and description and description != summary:
        parts.append(description)
    if not parts[0]:
        details = ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
        parts = [f"{name or 'alert'} is firing" + (f" ({details})" if details else "")]
    message = " — ".join(parts)[:MAX_MESSAGE_CHARS]
    request: dict[str, Any] = {"id": alert_id, "message": message, "route": route}
    if name:
        request["title"] = name[:200]
    if labels.get("severity", "").lower() in HIGH_SEVERITIES:
        request["priority"] = "high"
    return parse_request(request)


def _strings(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(path, "expected an object of name: text", code="type")
    for key, item in value.items():
        if not isinstance(item, str):
            raise ValidationError(f"{path}.{key}", f"expected a string, got "
                                  f"{type(item).__name__}", code="type")
    return dict(value)


def _optional_text(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise ValidationError(key, "expected a string", code="type")
    return value


def _timestamp(value: Any, path: str) -> datetime:
    if not isinstance(value, str):
        raise ValidationError(path, "required: an RFC 3339 timestamp",
                              code="missing" if value is None else "type")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(path, "expected an RFC 3339 timestamp") from None
    if parsed.tzinfo is None:
        raise ValidationError(path, "expected a timestamp with a time zone")
    return parsed


def _fingerprint(value: Any, labels: dict[str, str], path: str) -> str:
    """Alertmanager's fingerprint, or (older versions) a hash of the labels."""
    if value is None or value == "":
        canonical = json.dumps(labels, sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(canonical).hexdigest()[:16]
    if not isinstance(value, str) or not _FINGERPRINT.fullmatch(value):
        raise ValidationError(path, "expected up to 32 letters and digits")
    return value
