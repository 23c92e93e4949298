"""Escalation progress: where an alert's escalation stands, as a typed value.

It is stored inside the alert's status and shown in every report as ``escalation``; its JSON
(:meth:`EscalationProgress.to_json`) is exactly the shape earlier versions stored as a plain dict,
so old rows load and reports keep their keys. The progress has two states, active and ended;
:meth:`EscalationProgress.ended` refuses to end it twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from alertline.states import IllegalTransitionError

__all__ = ["EscalationProgress", "StepContact"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


@dataclass(frozen=True, slots=True)
class StepContact:
    """Whom one step (of one round) contacted, how, and through which deliveries."""

    step: int
    round: int
    at: datetime
    to: tuple[str, ...]
    channels: tuple[str, ...]
    deliveries: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """JSON form (one entry of ``contacted``)."""
        return {"step": self.step, "round": self.round, "at": self.at.isoformat(),
                "to": list(self.to), "channels": list(self.channels),
                "deliveries": list(self.deliveries)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StepContact:
        """Inverse of :meth:`to_json`."""
        return cls(step=int(data["step"]), round=int(data["round"]),
                   at=datetime.fromisoformat(data["at"]), to=tuple(data.get("to") or ()),
                   channels=tuple(data.get("channels") or ()),
                   deliveries=tuple(data.get("deliveries") or ()))


@dataclass(frozen=True, slots=True)
class EscalationProgress:
    """Where an alert's escalation stands: the policy, the current position (step and round),
    whom it contacted, when the next step is due, and how it ended."""

    policy: str
    steps: int
    rounds: int
    started_at: datetime
    active: bool = True
    position: int = -1
    contacted: tuple[StepContact, ...] = ()
    outcome: str | None = None
    step: int | None = None
    round: int | None = None
    step_started_at: datetime | None = None
    next_at: datetime | None = None
    ended_at: datetime | None = None
    error: str | None = None

    # -- moves -------------------------------------------------------------------------------

    def step_started(self, position: int, contact: StepContact) -> EscalationProgress:
        """The step at ``position`` has sent (``contact`` says to whom)."""
        self._require_active("start a step")
        return dataclasses.replace(self, position=position, step=contact.step,
                                   round=contact.round, step_started_at=contact.at,
                                   contacted=(*self.contacted, contact))

    def scheduled(self, due: datetime) -> EscalationProgress:
        """The next step is due at ``due``."""
        self._require_active("schedule a step")
        return dataclasses.replace(self, next_at=due)

    def ended(self, outcome: str, at: datetime, *, error: str | None = None) -> EscalationProgress:
        """The escalation is over with ``outcome`` (acknowledged, resolved, cancelled,
        not_acknowledged)."""
        self._require_active(f"end it as {outcome}")
        return dataclasses.replace(self, active=False, outcome=outcome, next_at=None, ended_at=at,
                                   error=error or None)

    def _require_active(self, what: str) -> None:
        if not self.active:
            raise IllegalTransitionError(f"escalation {self.policy}: cannot {what}, it ended "
                                         f"({self.outcome})")

    # -- JSON --------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The stored and reported form (the keys, in the order, earlier versions wrote)."""
        out: dict[str, Any] = {
            "policy": self.policy, "active": self.active, "position": self.position,
            "steps": self.steps, "rounds": self.rounds, "started_at": self.started_at.isoformat(),
            "contacted": [c.to_json() for c in self.contacted], "outcome": self.outcome}
        if self.step is not None:
            out.update(step=self.step, round=self.round,
                       step_started_at=_iso(self.step_started_at), next_at=_iso(self.next_at))
        if self.ended_at is not None:
            out["ended_at"] = self.ended_at.isoformat()
        if self.error is not None:
            out["error"] = self.error
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EscalationProgress:
        """Inverse of :meth:`to_json`."""
        started = _time(data.get("started_at"))
        assert started is not None, "escalation progress without started_at"
        return cls(policy=str(data.get("policy")), steps=int(data.get("steps") or 0),
                   rounds=int(data.get("rounds") or 1), started_at=started,
                   active=bool(data.get("active")), position=int(data.get("position", -1)),
                   contacted=tuple(StepContact.from_json(c) for c in data.get("contacted") or ()),
                   outcome=data.get("outcome"), step=data.get("step"), round=data.get("round"),
                   step_started_at=_time(data.get("step_started_at")),
                   next_at=_time(data.get("next_at")), ended_at=_time(data.get("ended_at")),
                   error=data.get("error"))

    def __getitem__(self, key: str) -> Any:
        """Read a field by its JSON key (``progress["active"]``), as report readers do."""
        return self.to_json()[key]
