"""The three state machines: no sequence of moves escapes their tables.

Delivery states are covered edge by edge in test_model.py; here the outbox phase and the alert
summary. The alert's table is checked against the real derivation (:func:`alert_state`): random
sequences of what the engine can do to an alert (delivery moves along their own table, ack,
cancel, resolve, escalation steps and their end, an SMS fallback for a failed call) must only
produce summary changes the table allows.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertline.model import (
    Acknowledgement,
    AlertStatus,
    Channel,
    Delivery,
    EscalationProgress,
    Recipient,
    alert_state,
)
from alertline.states import (
    ALERT_TRANSITIONS,
    PHASE_TRANSITIONS,
    AlertState,
    DeliveryState,
    IllegalTransitionError,
    Phase,
    can_alert_transition,
    can_phase_transition,
    can_transition,
    check_alert_transition,
    check_phase_transition,
    check_transition,
    phase_after,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


# -- submission phases ---------------------------------------------------------------------

def test_phase_values_are_the_stored_strings() -> None:
    assert [p.value for p in Phase] == ["queued", "in_flight", "tracking", "done"]


def test_a_tracked_delivery_is_never_sent_again() -> None:
    with pytest.raises(IllegalTransitionError, match="tracking -> queued"):
        check_phase_transition(Phase.TRACKING, Phase.QUEUED)
    with pytest.raises(IllegalTransitionError, match="tracking -> in_flight"):
        check_phase_transition(Phase.TRACKING, Phase.IN_FLIGHT)


@given(st.lists(st.sampled_from(list(Phase)), max_size=12))
def test_no_sequence_of_phases_escapes_the_table(path: list[Phase]) -> None:
    phase = Phase.QUEUED
    history = [phase]
    for target in path:
        if can_phase_transition(phase, target):
            check_phase_transition(phase, target)
            phase = target
        else:
            with pytest.raises(IllegalTransitionError, match=f"{phase.value} -> {target.value}"):
                check_phase_transition(phase, target)
        history.append(phase)
    for earlier, later in itertools.pairwise(history):
        assert later in PHASE_TRANSITIONS[earlier]
        if earlier is Phase.DONE:
            assert later is Phase.DONE, "a settled delivery stays settled"


@given(st.sampled_from(list(Phase)), st.sampled_from(list(DeliveryState)))
def test_the_phase_a_state_leads_to_is_always_legal(phase: Phase, state: DeliveryState) -> None:
    after = phase_after(phase, state)
    if phase is Phase.DONE and not state.final:
        return  # a settled delivery has no open state to move to (its table says so)
    assert can_phase_transition(phase, after)
    assert after is Phase.DONE if state.final else after in (phase, Phase.TRACKING)


# -- deliveries ----------------------------------------------------------------------------

def test_delivery_check_names_the_move() -> None:
    check_transition(DeliveryState.PENDING, DeliveryState.SUBMITTED)
    with pytest.raises(IllegalTransitionError, match="delivery x: delivered -> pending"):
        check_transition(DeliveryState.DELIVERED, DeliveryState.PENDING, what="delivery x")


# -- alerts --------------------------------------------------------------------------------

def test_settled_alerts_only_take_an_ack_or_a_resolve() -> None:
    with pytest.raises(IllegalTransitionError, match="delivered -> in_progress"):
        check_alert_transition(AlertState.DELIVERED, AlertState.IN_PROGRESS)
    with pytest.raises(IllegalTransitionError, match="resolved -> acknowledged"):
        check_alert_transition(AlertState.RESOLVED, AlertState.ACKNOWLEDGED)
    for settled in (s for s in AlertState if not s.open):
        assert can_alert_transition(settled, AlertState.RESOLVED)
        assert not can_alert_transition(settled, AlertState.ACCEPTED)


def test_every_alert_state_has_a_row() -> None:
    assert set(ALERT_TRANSITIONS) == set(AlertState)
    assert all(state in ALERT_TRANSITIONS[state] for state in AlertState)


@dataclass
class AlertModel:
    """What the engine can do to one alert, reduced to its deliveries and status."""

    deliveries: list[Delivery] = field(default_factory=list)
    status: AlertStatus = field(default_factory=AlertStatus)

    def add(self, channel: Channel) -> None:
        number = len(self.deliveries) + 1
        self.deliveries.append(Delivery(
            id=f"a-{number}", alert_id="a", recipient=Recipient(f"+4917012345{number:02d}"),
            channel=channel, provider="sim", state=DeliveryState.PENDING, created_at=T0,
            updated_at=T0))

    @property
    def escalating(self) -> bool:
        return self.status.escalation is not None and self.status.escalation.active

    def end_escalation(self, outcome: str) -> None:
        if self.status.escalation is not None and self.status.escalation.active:
            self.status = replace(self.status,
                                  escalation=self.status.escalation.ended(outcome, T0))

    def move(self, index: int, target: DeliveryState) -> None:
        delivery = self.deliveries[index % len(self.deliveries)]
        if not can_transition(delivery.state, target):
            return
        position = self.deliveries.index(delivery)
        self.deliveries[position] = delivery.advance(target, T0)
        halted = self.status.acknowledged or self.status.cancelled or self.status.resolved
        if delivery.channel is Channel.VOICE and target in (
                DeliveryState.FAILED, DeliveryState.EXPIRED) and not halted:
            self.add(Channel.SMS)  # the route's SMS fallback, in the same change

    def apply(self, action: tuple[str, int, DeliveryState]) -> None:
        kind, index, target = action
        if kind == "move":
            self.move(index, target)
        elif kind == "step" and self.escalating:
            self.add(Channel.VOICE if index % 2 else Channel.SMS)
        elif kind == "give_up":
            self.end_escalation("not_acknowledged")
        elif kind == "ack" and self.status.acknowledged is None:
            self.status = replace(self.status, acknowledged=Acknowledgement("bob", "api", T0))
            self.end_escalation("acknowledged")
            self.cancel_queued(index, "acknowledged")
        elif kind == "cancel":
            self.status = replace(self.status, cancelled=True)
            self.end_escalation("cancelled")
            self.cancel_queued(index, "cancelled")
        elif kind == "resolve":
            self.status = replace(self.status, resolved=True)
            self.end_escalation("resolved")
            self.cancel_queued(index, "resolved")

    def cancel_queued(self, in_flight: int, reason: str) -> None:
        """Pending deliveries still queued are cancelled; ``in_flight`` of them (from the
        start) are in a provider request already and keep going."""
        for position, delivery in enumerate(self.deliveries):
            if delivery.state is DeliveryState.PENDING and position >= in_flight:
                self.deliveries[position] = delivery.advance(DeliveryState.CANCELLED, T0,
                                                             reason=reason)

    @property
    def state(self) -> AlertState:
        return alert_state(self.deliveries, self.status)


actions = st.tuples(
    st.sampled_from(["move", "move", "move", "step", "give_up", "ack", "cancel", "resolve"]),
    st.integers(0, 6), st.sampled_from(list(DeliveryState)))


@given(st.booleans(), st.lists(st.sampled_from(list(Channel)), min_size=1, max_size=3),
       st.lists(actions, max_size=25))
def test_no_sequence_of_alert_changes_escapes_the_table(
        escalating: bool, channels: list[Channel],
        script: list[tuple[str, int, DeliveryState]]) -> None:
    model = AlertModel()
    if escalating:
        model.status = AlertStatus(escalation=EscalationProgress(
            policy="page", steps=2, rounds=1, started_at=T0))
    for channel in channels:
        model.add(channel)
    history = [model.state]
    assert history[0] is AlertState.ACCEPTED
    for action in script:
        model.apply(action)
        history.append(model.state)
    for earlier, later in itertools.pairwise(history):
        check_alert_transition(earlier, later)


def test_escalation_progress_ends_once() -> None:
    progress = EscalationProgress(policy="page", steps=1, rounds=1, started_at=T0)
    ended = progress.ended("acknowledged", T0 + timedelta(seconds=5))
    assert (ended.active, ended.outcome, ended.next_at) == (False, "acknowledged", None)
    with pytest.raises(IllegalTransitionError, match="cannot end it as resolved"):
        ended.ended("resolved", T0)
    with pytest.raises(IllegalTransitionError, match="cannot schedule a step"):
        ended.scheduled(T0)
