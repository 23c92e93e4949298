"""Plain data: alerts, recipients, deliveries and the report published for them (the states
live in :mod:`alertline.states` and are re-exported here)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from alertline.progress import EscalationProgress
from alertline.states import (
    AlertState,
    DeliveryState,
    IllegalTransitionError,
    can_transition,
)

__all__ = [
    "Acknowledgement",
    "Alert",
    "AlertState",
    "AlertStatus",
    "Channel",
    "Delivery",
    "DeliveryState",
    "EscalationProgress",
    "IllegalTransitionError",
    "Priority",
    "Recipient",
    "Report",
    "alert_state",
    "can_transition",
    "utcnow",
]


class Channel(StrEnum):
    """How a recipient is reached."""

    SMS = "sms"
    VOICE = "voice"


class Priority(StrEnum):
    """Alert priority; ``high`` asks providers for express delivery and overrides quiet hours."""

    NORMAL = "normal"
    HIGH = "high"


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _from_iso(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class Recipient:
    """One destination of an alert: an E.164 number, and the contact it came from, if any."""

    number: str
    contact: str | None = None
    locale: str | None = None
    personalization: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        out: dict[str, Any] = {"number": self.number}
        if self.contact is not None:
            out["contact"] = self.contact
        if self.locale is not None:
            out["locale"] = self.locale
        if self.personalization:
            out["personalization"] = dict(self.personalization)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Recipient:
        """Inverse of :meth:`to_json`."""
        return cls(number=data["number"], contact=data.get("contact"),
                   locale=data.get("locale"),
                   personalization=dict(data.get("personalization") or {}))


@dataclass(frozen=True, slots=True)
class Alert:
    """A validated, expanded alert: what to say, to whom, how."""

    id: str
    message: str
    recipients: tuple[Recipient, ...]
    channels: tuple[Channel, ...]
    created_at: datetime
    title: str | None = None
    route: str | None = None
    provider: str | None = None
    sender: str | None = None
    locale: str | None = None
    priority: Priority = Priority.NORMAL
    audio_url: str | None = None
    not_before: datetime | None = None
    expires: datetime | None = None
    quiet_hours: tuple[str, ...] = ()
    escalation: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    def text_for(self, channel: Channel) -> str:
        """The text as sent on ``channel``: SMS gets the title as a prefix."""
        if channel is Channel.SMS and self.title:
            return f"{self.title}: {self.message}"
        return self.message

    def to_json(self) -> dict[str, Any]:
        """JSON form (stored, and embedded in reports)."""
        return {
            "id": self.id,
            "message": self.message,
            "title": self.title,
            "recipients": [r.to_json() for r in self.recipients],
            "channels": [c.value for c in self.channels],
            "created_at": _iso(self.created_at),
            "route": self.route,
            "provider": self.provider,
            "sender": self.sender,
            "locale": self.locale,
            "priority": self.priority.value,
            "audio_url": self.audio_url,
            "not_before": _iso(self.not_before),
            "expires": _iso(self.expires),
            "quiet_hours": list(self.quiet_hours),
            "escalation": self.escalation,
            "options": dict(self.options),
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Alert:
        """Inverse of :meth:`to_json`."""
        created = _from_iso(data["created_at"])
        assert created is not None
        return cls(
            id=data["id"],
            message=data["message"],
            title=data.get("title"),
            recipients=tuple(Recipient.from_json(r) for r in data["recipients"]),
            channels=tuple(Channel(c) for c in data["channels"]),
            created_at=created,
            route=data.get("route"),
            provider=data.get("provider"),
            sender=data.get("sender"),
            locale=data.get("locale"),
            priority=Priority(data.get("priority") or "normal"),
            audio_url=data.get("audio_url"),
            not_before=_from_iso(data.get("not_before")),
            expires=_from_iso(data.get("expires")),
            quiet_hours=tuple(data.get("quiet_hours") or ()),
            escalation=data.get("escalation"),
            options=dict(data.get("options") or {}),
            source=data.get("source"),
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One recipient on one channel through one provider, and where it stands."""

    id: str
    alert_id: str
    recipient: Recipient
    channel: Channel
    provider: str
    state: DeliveryState
    created_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    provider_ref: str | None = None
    provider_message_id: str | None = None
    provider_status: str | None = None
    reason: str | None = None
    attempts: int = 0
    submitted_at: datetime | None = None
    step: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def advance(self, state: DeliveryState, at: datetime, **changes: Any) -> Delivery:
        """A copy in ``state``; raises :class:`IllegalTransitionError` if the move is illegal."""
        if not can_transition(self.state, state):
            raise IllegalTransitionError(
                f"delivery {self.id}: {self.state.value} -> {state.value} is not allowed")
        return dataclasses.replace(self, state=state, updated_at=at, **changes)

    def to_json(self) -> dict[str, Any]:
        """JSON form, as it appears in reports."""
        return {
            "id": self.id,
            "alert_id": self.alert_id,
            "to": self.recipient.number,
            "contact": self.recipient.contact,
            "recipient": self.recipient.to_json(),
            "channel": self.channel.value,
            "provider": self.provider,
            "state": self.state.value,
            "final": self.state.final,
            "provider_ref": self.provider_ref,
            "provider_message_id": self.provider_message_id,
            "provider_status": self.provider_status,
            "reason": self.reason,
            "attempts": self.attempts,
            "created_at": _iso(self.created_at),
            "updated_at": _iso(self.updated_at),
            "submitted_at": _iso(self.submitted_at),
            "deadline": _iso(self.deadline),
            "step": self.step,
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Delivery:
        """Inverse of :meth:`to_json`."""
        created = _from_iso(data["created_at"])
        updated = _from_iso(data["updated_at"])
        assert created is not None and updated is not None
        return cls(
            id=data["id"],
            alert_id=data["alert_id"],
            recipient=Recipient.from_json(data["recipient"]),
            channel=Channel(data["channel"]),
            provider=data["provider"],
            state=DeliveryState(data["state"]),
            created_at=created,
            updated_at=updated,
            deadline=_from_iso(data.get("deadline")),
            provider_ref=data.get("provider_ref"),
            provider_message_id=data.get("provider_message_id"),
            provider_status=data.get("provider_status"),
            reason=data.get("reason"),
            attempts=int(data.get("attempts") or 0),
            submitted_at=_from_iso(data.get("submitted_at")),
            step=data.get("step"),
            details=dict(data.get("details") or {}),
        )


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """Who stopped an alert's escalation, how and when."""

    by: str | None
    via: str
    at: datetime

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {"by": self.by, "via": self.via, "at": _iso(self.at)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Acknowledgement:
        """Inverse of :meth:`to_json`."""
        at = _from_iso(data["at"])
        assert at is not None
        return cls(by=data.get("by"), via=data["via"], at=at)


@dataclass(frozen=True, slots=True)
class AlertStatus:
    """Alert-level facts that are not per delivery: ack, cancel, resolve, escalation progress."""

    acknowledged: Acknowledgement | None = None
    cancelled: bool = False
    resolved: bool = False
    escalation: EscalationProgress | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "acknowledged": self.acknowledged.to_json() if self.acknowledged else None,
            "cancelled": self.cancelled,
            "resolved": self.resolved,
            "escalation": self.escalation.to_json() if self.escalation else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertStatus:
        """Inverse of :meth:`to_json`."""
        ack = data.get("acknowledged")
        return cls(acknowledged=Acknowledgement.from_json(ack) if ack else None,
                   cancelled=bool(data.get("cancelled")), resolved=bool(data.get("resolved")),
                   escalation=(EscalationProgress.from_json(data["escalation"])
                               if data.get("escalation") else None))


def alert_state(deliveries: list[Delivery], status: AlertStatus) -> AlertState:
    """The alert-level state implied by its deliveries and its alert-level facts."""
    if status.resolved:
        return AlertState.RESOLVED
    if status.acknowledged is not None:
        return AlertState.ACKNOWLEDGED
    escalating = bool(status.escalation and status.escalation.active)
    if not deliveries:
        return AlertState.CANCELLED if status.cancelled else AlertState.ACCEPTED
    if escalating or any(not d.state.final for d in deliveries):
        if all(d.state is DeliveryState.PENDING for d in deliveries):
            return AlertState.ACCEPTED
        return AlertState.IN_PROGRESS
    if status.cancelled and not any(d.state.success for d in deliveries):
        return AlertState.CANCELLED
    if status.escalation and status.escalation.outcome == "not_acknowledged":
        return AlertState.FAILED
    successes = sum(1 for d in deliveries if d.state.success)
    if successes == len(deliveries):
        return AlertState.DELIVERED
    if successes:
        return AlertState.PARTIALLY_DELIVERED
    if all(d.state is DeliveryState.CANCELLED for d in deliveries):
        return AlertState.CANCELLED
    return AlertState.FAILED


@dataclass(frozen=True, slots=True)
class Report:
    """Everything known about one alert: published on every change."""

    alert: Alert
    deliveries: tuple[Delivery, ...]
    status: AlertStatus
    updated_at: datetime

    @property
    def state(self) -> AlertState:
        """The alert-level state."""
        return alert_state(list(self.deliveries), self.status)

    @property
    def final(self) -> bool:
        """Whether nothing more will happen to this alert: its state is settled and every
        delivery is final (an acknowledged alert's ringing call is still followed to its end)."""
        return self.state not in (AlertState.ACCEPTED, AlertState.IN_PROGRESS) and all(
            d.state.final for d in self.deliveries)

    def counts(self) -> dict[str, int]:
        """Deliveries per state."""
        counts: dict[str, int] = {}
        for delivery in self.deliveries:
            counts[delivery.state.value] = counts.get(delivery.state.value, 0) + 1
        return counts

    def to_json(self) -> dict[str, Any]:
        """The payload of ``alertline/report/<id>``."""
        return {
            "id": self.alert.id,
            "state": self.state.value,
            "final": self.final,
            "message": self.alert.message,
            "title": self.alert.title,
            "route": self.alert.route,
            "priority": self.alert.priority.value,
            "created_at": _iso(self.alert.created_at),
            "updated_at": _iso(self.updated_at),
            "counts": self.counts(),
            "deliveries": [d.to_json() for d in self.deliveries],
            "acknowledged": (self.status.acknowledged.to_json()
                             if self.status.acknowledged else None),
            "cancelled": self.status.cancelled,
            "resolved": self.status.resolved,
            "escalation": (self.status.escalation.to_json()
                           if self.status.escalation else None),
        }
