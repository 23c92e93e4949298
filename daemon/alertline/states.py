"""The three state machines of alertline, each with its transition table in one place.

- :class:`DeliveryState`: one recipient on one channel (the diagram of DESIGN.md);
- :class:`AlertState`: the alert-level summary, derived from the deliveries and the alert's
  status (ack, cancel, resolve, escalation) by :func:`alertline.model.alert_state`;
- :class:`Phase`: where a delivery is in the submission outbox (queued → in_flight → tracking →
  done); the stored strings are these values.

Each machine has a ``can_*`` predicate and a ``check_*`` function that raises
:class:`IllegalTransitionError` naming the move, so a bug cannot silently push a delivery, an alert
or a submission somewhere its table does not lead. A self-loop on an open state is a progress
update (a new provider status while still submitted; a delivery queued again).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ALERT_TRANSITIONS",
    "DELIVERY_TRANSITIONS",
    "PHASE_TRANSITIONS",
    "AlertState",
    "DeliveryState",
    "IllegalTransitionError",
    "Phase",
    "can_alert_transition",
    "can_phase_transition",
    "can_transition",
    "check_alert_transition",
    "check_phase_transition",
    "check_transition",
    "phase_after",
]


class IllegalTransitionError(ValueError):
    """A delivery, an alert or a submission was asked to move where its table does not lead."""


# -- deliveries ----------------------------------------------------------------------------

class DeliveryState(StrEnum):
    """Normalised state of one delivery (one recipient on one channel)."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    DELIVERED = "delivered"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        """Whether no further change can happen."""
        return self not in (DeliveryState.PENDING, DeliveryState.SUBMITTED)

    @property
    def success(self) -> bool:
        """Whether the delivery counts as a success."""
        return self in (DeliveryState.DELIVERED, DeliveryState.SENT)


DELIVERY_TRANSITIONS: dict[DeliveryState, frozenset[DeliveryState]] = {
    DeliveryState.PENDING: frozenset({
        DeliveryState.PENDING, DeliveryState.SUBMITTED, DeliveryState.CANCELLED,
        DeliveryState.REJECTED, DeliveryState.FAILED, DeliveryState.EXPIRED,
        DeliveryState.DELIVERED, DeliveryState.SENT,
    }),
    DeliveryState.SUBMITTED: frozenset({
        DeliveryState.SUBMITTED, DeliveryState.DELIVERED, DeliveryState.SENT,
        DeliveryState.FAILED, DeliveryState.EXPIRED, DeliveryState.CANCELLED,
    }),
}
"""Final states lead nowhere (they are absent)."""


def can_transition(current: DeliveryState, new: DeliveryState) -> bool:
    """Whether a delivery in ``current`` may move to ``new`` (same state = progress update)."""
    return new in DELIVERY_TRANSITIONS.get(current, frozenset())


def check_transition(current: DeliveryState, new: DeliveryState, *, what: str = "delivery") -> None:
    """Raise :class:`IllegalTransitionError` unless a delivery may move ``current`` → ``new``."""
    if not can_transition(current, new):
        raise IllegalTransitionError(f"{what}: {current.value} -> {new.value} is not allowed")


# -- alerts --------------------------------------------------------------------------------

class AlertState(StrEnum):
    """Alert-level summary state."""

    ACCEPTED = "accepted"
    IN_PROGRESS = "in_progress"
    DELIVERED = "delivered"
    PARTIALLY_DELIVERED = "partially_delivered"
    FAILED = "failed"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"
    RESOLVED = "resolved"

    @property
    def open(self) -> bool:
        """Whether the alert is still being worked on."""
        return self in (AlertState.ACCEPTED, AlertState.IN_PROGRESS)


ALERT_TRANSITIONS: dict[AlertState, frozenset[AlertState]] = {
    # nothing happened yet: anything may follow (a step's deliveries all rejected at once, ...)
    AlertState.ACCEPTED: frozenset(AlertState),
    # some delivery moved: it never goes back to "nothing happened"
    AlertState.IN_PROGRESS: frozenset(AlertState) - {AlertState.ACCEPTED},
    # a settled outcome may still be acknowledged or resolved afterwards; a failed one cancelled
    AlertState.DELIVERED: frozenset({AlertState.DELIVERED, AlertState.ACKNOWLEDGED,
                                     AlertState.RESOLVED}),
    AlertState.PARTIALLY_DELIVERED: frozenset({AlertState.PARTIALLY_DELIVERED,
                                               AlertState.ACKNOWLEDGED, AlertState.RESOLVED}),
    AlertState.FAILED: frozenset({AlertState.FAILED, AlertState.CANCELLED,
                                  AlertState.ACKNOWLEDGED, AlertState.RESOLVED}),
    AlertState.CANCELLED: frozenset({AlertState.CANCELLED, AlertState.ACKNOWLEDGED,
                                     AlertState.RESOLVED}),
    # an acknowledgement is sticky; only resolving beats it
    AlertState.ACKNOWLEDGED: frozenset({AlertState.ACKNOWLEDGED, AlertState.RESOLVED}),
    AlertState.RESOLVED: frozenset({AlertState.RESOLVED}),
}


def can_alert_transition(current: AlertState, new: AlertState) -> bool:
    """Whether an alert summarised as ``current`` may next be summarised as ``new``."""
    return new in ALERT_TRANSITIONS[current]


def check_alert_transition(current: AlertState, new: AlertState, *, what: str = "alert") -> None:
    """Raise :class:`IllegalTransitionError` unless an alert may move ``current`` → ``new``."""
    if not can_alert_transition(current, new):
        raise IllegalTransitionError(f"{what}: {current.value} -> {new.value} is not allowed")


# -- submission phases ---------------------------------------------------------------------

class Phase(StrEnum):
    """Where a delivery is in the submission outbox (stored as these strings)."""

    QUEUED = "queued"          # waiting to be submitted
    IN_FLIGHT = "in_flight"    # handed to the provider; outcome not yet stored
    TRACKING = "tracking"      # submitted; status being tracked
    DONE = "done"              # final


PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    # queued: handed over, or settled without a request (cancel, reject, expiry), or found
    # already submitted after a restart
    Phase.QUEUED: frozenset({Phase.QUEUED, Phase.IN_FLIGHT, Phase.TRACKING, Phase.DONE}),
    # in flight: back to the queue (throttled, failed over, resent after a restart), tracked,
    # or settled by the provider's answer
    Phase.IN_FLIGHT: frozenset({Phase.IN_FLIGHT, Phase.QUEUED, Phase.TRACKING, Phase.DONE}),
    # tracking: only its end (a submitted delivery is never sent again)
    Phase.TRACKING: frozenset({Phase.TRACKING, Phase.DONE}),
    Phase.DONE: frozenset({Phase.DONE}),
}


def can_phase_transition(current: Phase, new: Phase) -> bool:
    """Whether a delivery's outbox phase may move ``current`` → ``new``."""
    return new in PHASE_TRANSITIONS[current]


def check_phase_transition(current: Phase, new: Phase, *, what: str = "submission") -> None:
    """Raise :class:`IllegalTransitionError` unless the phase may move ``current`` → ``new``."""
    if not can_phase_transition(current, new):
        raise IllegalTransitionError(f"{what}: phase {current.value} -> {new.value} is not "
                                     "allowed")


def phase_after(current: Phase, state: DeliveryState) -> Phase:
    """The outbox phase a delivery reaches with ``state``: done once final, tracking once
    submitted, else unchanged."""
    if state.final:
        return Phase.DONE
    if state is DeliveryState.SUBMITTED:
        return Phase.TRACKING
    return current
