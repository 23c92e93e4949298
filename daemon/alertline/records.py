"""The in-memory state of an open alert, and the answer to an accepted request."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alertline.model import Alert, AlertStatus, Delivery, Report
from alertline.states import Phase
from alertline.store.stored import StoredDelivery


@dataclass(slots=True)
class AlertRecord:
    """An open alert in memory: the source of truth while it is not final (written through)."""

    alert: Alert
    status: AlertStatus
    deliveries: dict[str, Delivery]
    phases: dict[str, tuple[Phase, str | None]] = field(default_factory=dict)
    # what the store holds: deliveries by identity (they are frozen, so a change is a new object)
    # and the alert row's (status, state, final); only what differs is written
    saved: dict[str, tuple[Delivery, tuple[Phase, str | None]]] = field(default_factory=dict)
    saved_row: tuple[AlertStatus, str, bool] | None = None

    @classmethod
    def from_store(cls, alert: Alert, status: AlertStatus,
                   stored: list[StoredDelivery]) -> AlertRecord:
        """The record of a stored alert (the store's phase strings typed)."""
        return cls(alert=alert, status=status,
                   deliveries={s.delivery.id: s.delivery for s in stored},
                   phases={s.delivery.id: (Phase(s.phase), s.submission_id) for s in stored})

    def mark_saved(self) -> None:
        """Remember that the store holds the current deliveries and phases."""
        self.saved = {d.id: (d, self.phases.get(d.id, (Phase.QUEUED, None)))
                      for d in self.deliveries.values()}

    def unsaved(self) -> list[tuple[Delivery, str, str | None]]:
        """Deliveries (with phase and submission id) that changed since the last save."""
        rows: list[tuple[Delivery, str, str | None]] = []  # the store's row shape
        for delivery in self.deliveries.values():
            phase = self.phases.get(delivery.id, (Phase.QUEUED, None))
            stored = self.saved.get(delivery.id)
            if stored is None or stored[0] is not delivery or stored[1] != phase:
                rows.append((delivery, *phase))
        return rows

    def phase(self, delivery_id: str) -> Phase:
        """The outbox phase of a delivery (queued until said otherwise)."""
        return self.phases.get(delivery_id, (Phase.QUEUED, None))[0]

    def report(self, at: datetime) -> Report:
        """The current report."""
        return Report(alert=self.alert, deliveries=tuple(self.deliveries.values()),
                      status=self.status, updated_at=at)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The answer to an accepted request."""

    alert_id: str
    deliveries: int
    duplicate: bool
    report: Report

    def to_json(self) -> dict[str, Any]:
        """The payload of ``alertline/accepted/<id>``."""
        return {"id": self.alert_id, "state": "accepted", "deliveries": self.deliveries,
                "duplicate": self.duplicate}
