"""What the engine's helpers decide, as small values the ledger applies.

Tracking, failover, recovery, escalation and policy look at an alert and return these; only
:class:`~alertline.engine.ledger.Ledger` turns them into changed states, phases, progress, counters,
timers and events (and so into one store transaction each).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from alertline.model import Acknowledgement, Delivery
from alertline.progress import EscalationProgress
from alertline.states import DeliveryState, Phase

__all__ = [
    "AddDelivery",
    "Advance",
    "Annotate",
    "CountSend",
    "Decision",
    "DropTimer",
    "EndAlert",
    "Queue",
    "Reroute",
    "SetEscalation",
    "SetPhase",
    "SetTimer",
]


@dataclass(frozen=True, slots=True)
class Advance:
    """Move a delivery to ``state`` at ``at``, with the fields in ``changes`` (provider status,
    reason, ids, ...); a move its table forbids is ignored (a stale provider update)."""

    delivery_id: str
    state: DeliveryState
    at: datetime
    changes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SetPhase:
    """Move a delivery to another outbox phase (and submission)."""

    delivery_id: str
    phase: Phase
    submission_id: str | None = None


@dataclass(frozen=True, slots=True)
class Reroute:
    """Fail a delivery over to ``provider``: it is queued again there, nothing was sent."""

    delivery_id: str
    provider: str
    reason: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Annotate:
    """Replace a delivery's details (e.g. the note that quiet hours hold it)."""

    delivery_id: str
    details: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AddDelivery:
    """Add a new pending delivery to its alert (an escalation step, an SMS fallback)."""

    delivery: Delivery


@dataclass(frozen=True, slots=True)
class Queue:
    """Hand pending deliveries to their providers' dispatchers."""

    delivery_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SetEscalation:
    """The alert's escalation progress is now ``progress``."""

    progress: EscalationProgress


@dataclass(frozen=True, slots=True)
class EndAlert:
    """An alert-level fact: acknowledged, cancelled or resolved, recorded as an event (named
    by ``kind``) with ``detail``."""

    kind: Literal["ack", "cancel", "resolve"]
    at: datetime
    detail: str | None = None
    acknowledgement: Acknowledgement | None = None


@dataclass(frozen=True, slots=True)
class CountSend:
    """Count one send against the cap counter ``key`` of the window starting at ``start``."""

    key: str
    start: datetime


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Store a timer (it survives a restart)."""

    key: str
    due: datetime
    data: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class DropTimer:
    """Forget a stored timer."""

    key: str


Decision = (Advance | SetPhase | Reroute | Annotate | AddDelivery | Queue | SetEscalation
            | EndAlert | CountSend | SetTimer | DropTimer)
