"""The records a store hands out besides the model's own (alerts, statuses, deliveries).

Shared by every store implementation and by the :class:`~alertline.store.protocol.Store`
Protocol, so a caller types against these, never against one store's module.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alertline.model import Alert, AlertStatus, Delivery
from alertline.providers.base import Submission


class Phase:
    """Where a delivery is in the submission outbox."""

    QUEUED = "queued"          # waiting to be submitted
    IN_FLIGHT = "in_flight"    # handed to the provider; outcome not yet stored
    TRACKING = "tracking"      # submitted; status being tracked
    DONE = "done"              # final


@dataclass(frozen=True, slots=True)
class StoredDelivery:
    """A delivery with its outbox phase and submission id."""

    delivery: Delivery
    phase: str
    submission_id: str | None


@dataclass(frozen=True, slots=True)
class StoredSubmission:
    """A provider request that was made, with what the adapter needs to poll it."""

    id: str
    provider: str
    submission: Submission


@dataclass(frozen=True, slots=True)
class OpenWork:
    """Everything unfinished, loaded at start to resume."""

    alerts: dict[str, tuple[Alert, AlertStatus]]
    deliveries: list[StoredDelivery]
    submissions: dict[str, StoredSubmission]
    timers: list[tuple[str, datetime, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Member:
    """A daemon sharing the store (a cluster member), as the store sees it."""

    name: str
    host: str
    pid: int
    started_at: datetime
    expires_in: float
    """Seconds until its lease runs out (negative: expired, not yet taken over)."""
    alerts: int
    """Open alerts it owns."""


@dataclass(frozen=True, slots=True)
class Command:
    """An ack, cancel or resolve left by one member for the owner of an alert."""

    seq: int
    alert_id: str
    kind: str
    data: dict[str, Any]

    @property
    def by(self) -> str | None:
        """Who acked, cancelled or resolved (None: not said)."""
        by = self.data.get("by")
        return None if by is None else str(by)

    @property
    def via(self) -> str:
        """Where an ack came from (``api`` when not said)."""
        return str(self.data.get("via") or "api")


@dataclass(frozen=True, slots=True)
class Reservation:
    """Sends taken under caps at once: how many, and each cap counter's value after."""

    granted: int
    values: dict[str, int]
