"""The plain data model: delivery state machine, alert-level summary, JSON round trips."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alertline.model import (
    Acknowledgement,
    Alert,
    AlertState,
    AlertStatus,
    Channel,
    Delivery,
    DeliveryState,
    EscalationProgress,
    IllegalTransitionError,
    Priority,
    Recipient,
    Report,
    alert_state,
    can_transition,
)
from alertline.progress import StepContact

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
FINAL = [s for s in DeliveryState if s.final]
OPEN = [DeliveryState.PENDING, DeliveryState.SUBMITTED]
SUCCESS = {DeliveryState.DELIVERED, DeliveryState.SENT}

# The diagram of DESIGN.md, written out edge by edge (a self-loop on an open state is a progress
# update, e.g. a new provider status while still submitted).
LEGAL = {
    (DeliveryState.PENDING, DeliveryState.PENDING),
    (DeliveryState.PENDING, DeliveryState.SUBMITTED),
    (DeliveryState.PENDING, DeliveryState.CANCELLED),
    (DeliveryState.PENDING, DeliveryState.REJECTED),
    # a provider may answer the submission itself with a final state
    (DeliveryState.PENDING, DeliveryState.DELIVERED),
    (DeliveryState.PENDING, DeliveryState.SENT),
    (DeliveryState.PENDING, DeliveryState.FAILED),
    (DeliveryState.PENDING, DeliveryState.EXPIRED),
    (DeliveryState.SUBMITTED, DeliveryState.SUBMITTED),
    (DeliveryState.SUBMITTED, DeliveryState.DELIVERED),
    (DeliveryState.SUBMITTED, DeliveryState.SENT),
    (DeliveryState.SUBMITTED, DeliveryState.FAILED),
    (DeliveryState.SUBMITTED, DeliveryState.EXPIRED),
    (DeliveryState.SUBMITTED, DeliveryState.CANCELLED),
}


def make_delivery(state: DeliveryState = DeliveryState.PENDING, number: str = "+491701234560",
                  index: int = 1) -> Delivery:
    return Delivery(id=f"al-1-{index}", alert_id="al-1", recipient=Recipient(number),
                    channel=Channel.SMS, provider="sim", state=state, created_at=T0,
                    updated_at=T0)


def make_alert(**changes: Any) -> Alert:
    values: dict[str, Any] = {
        "id": "al-1", "message": "Water leak", "recipients": (Recipient("+491701234560"),),
        "channels": (Channel.SMS,), "created_at": T0}
    values.update(changes)
    return Alert(**values)


# -- delivery states ---------------------------------------------------------------------------


def test_final_and_success_flags() -> None:
    assert {s for s in DeliveryState if not s.final} == set(OPEN)
    assert {s for s in DeliveryState if s.success} == SUCCESS
    assert all(s.final for s in SUCCESS)


@pytest.mark.parametrize("current", list(DeliveryState))
@pytest.mark.parametrize("new", list(DeliveryState))
def test_transition_table_matches_the_design(current: DeliveryState, new: DeliveryState) -> None:
    assert can_transition(current, new) is ((current, new) in LEGAL)


def test_rejected_only_before_submission() -> None:
    with pytest.raises(IllegalTransitionError, match="submitted -> rejected"):
        make_delivery(DeliveryState.SUBMITTED).advance(DeliveryState.REJECTED, T0)


def test_advance_returns_a_changed_copy() -> None:
    pending = make_delivery()
    later = T0 + timedelta(seconds=5)
    submitted = pending.advance(DeliveryState.SUBMITTED, later, provider_ref="JOB-1")
    assert pending.state is DeliveryState.PENDING and pending.provider_ref is None
    assert submitted.state is DeliveryState.SUBMITTED
    assert submitted.provider_ref == "JOB-1"
    assert submitted.updated_at == later
    assert submitted.created_at == T0


@given(st.lists(st.sampled_from(list(DeliveryState)), max_size=12))
def test_illegal_transitions_are_impossible(path: list[DeliveryState]) -> None:
    """Whatever sequence of moves is asked for, a delivery only ever follows the diagram."""
    delivery = make_delivery()
    history = [delivery.state]
    for step, target in enumerate(path):
        before = delivery
        at = T0 + timedelta(seconds=step + 1)
        if can_transition(delivery.state, target):
            delivery = delivery.advance(target, at)
            assert delivery.state is target
        else:
            with pytest.raises(IllegalTransitionError):
                delivery.advance(target, at)
            assert delivery == before
        history.append(delivery.state)
    for earlier, later in itertools.pairwise(history):
        assert (earlier, later) in LEGAL or earlier == later
        if earlier.final:
            assert later == earlier, "a final state never changes"
        if earlier is DeliveryState.SUBMITTED:
            assert later is not DeliveryState.PENDING


@given(st.sampled_from(FINAL), st.sampled_from(list(DeliveryState)))
def test_final_states_never_move(final: DeliveryState, target: DeliveryState) -> None:
    with pytest.raises(IllegalTransitionError):
        make_delivery(final).advance(target, T0)


# -- alert-level state -------------------------------------------------------------------------

states = st.sampled_from(list(DeliveryState))


def deliveries_in(chosen: list[DeliveryState]) -> list[Delivery]:
    return [make_delivery(s, index=i) for i, s in enumerate(chosen)]


@given(st.lists(states, min_size=1, max_size=8))
def test_alert_state_summarises_deliveries(chosen: list[DeliveryState]) -> None:
    state = alert_state(deliveries_in(chosen), AlertStatus())
    successes = sum(1 for s in chosen if s.success)
    if any(not s.final for s in chosen):
        expected = (AlertState.ACCEPTED if all(s is DeliveryState.PENDING for s in chosen)
                    else AlertState.IN_PROGRESS)
    elif successes == len(chosen):
        expected = AlertState.DELIVERED
    elif successes:
        expected = AlertState.PARTIALLY_DELIVERED
    elif all(s is DeliveryState.CANCELLED for s in chosen):
        expected = AlertState.CANCELLED
    else:
        expected = AlertState.FAILED
    assert state is expected


@given(st.lists(states, min_size=1, max_size=8), st.booleans(), st.booleans(), st.booleans())
def test_alert_level_facts_take_precedence(chosen: list[DeliveryState], acked: bool,
                                           resolved: bool, cancelled: bool) -> None:
    ack = Acknowledgement(by="alice", via="mqtt", at=T0) if acked else None
    status = AlertStatus(acknowledged=ack, resolved=resolved, cancelled=cancelled)
    state = alert_state(deliveries_in(chosen), status)
    if resolved:
        assert state is AlertState.RESOLVED
    elif acked:
        assert state is AlertState.ACKNOWLEDGED
    elif any(not s.final for s in chosen):
        assert state in (AlertState.ACCEPTED, AlertState.IN_PROGRESS)
    elif cancelled and not any(s.success for s in chosen):
        assert state is AlertState.CANCELLED


@given(st.lists(states, max_size=6), st.booleans())
def test_report_final_iff_nothing_more_can_happen(chosen: list[DeliveryState],
                                                  resolved: bool) -> None:
    report = Report(alert=make_alert(), deliveries=tuple(deliveries_in(chosen)),
                    status=AlertStatus(resolved=resolved), updated_at=T0)
    # final: every delivery is final (a resolved alert's ringing call is still followed),
    # and there is something to be final about (no deliveries yet = just accepted)
    all_final = all(s.final for s in chosen)
    assert report.final is (all_final and (resolved or bool(chosen)))
    assert sum(report.counts().values()) == len(chosen)


def test_active_escalation_keeps_the_alert_in_progress() -> None:
    done = deliveries_in([DeliveryState.DELIVERED])
    active = EscalationProgress(policy="page", steps=1, rounds=1, started_at=T0)
    assert alert_state(done, AlertStatus(escalation=active)) is AlertState.IN_PROGRESS
    assert alert_state(done, AlertStatus(escalation=active.ended("not_acknowledged", T0))) \
        is AlertState.FAILED


def test_cancelled_alert_without_deliveries() -> None:
    assert alert_state([], AlertStatus(cancelled=True)) is AlertState.CANCELLED
    assert alert_state([], AlertStatus()) is AlertState.ACCEPTED


# -- JSON round trips --------------------------------------------------------------------------

json_scalars = st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20)
json_values = st.recursive(
    json_scalars | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                  max_size=3),
    max_leaves=8)
aware = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, timezone(timedelta(hours=2)),
                                                timezone(timedelta(hours=-5, minutes=-30))]))
names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)
numbers = st.from_regex(r"\+49170[0-9]{7}", fullmatch=True)
recipients = st.builds(
    Recipient, number=numbers, contact=st.none() | names, locale=st.none() | names,
    personalization=st.dictionaries(names, st.text(max_size=10), max_size=3))
alerts = st.builds(
    Alert, id=names, message=st.text(max_size=40), recipients=st.tuples(recipients, recipients),
    channels=st.lists(st.sampled_from(list(Channel)), min_size=1, max_size=2, unique=True)
    .map(tuple), created_at=aware, title=st.none() | names, route=st.none() | names,
    provider=st.none() | names, sender=st.none() | names, locale=st.none() | names,
    priority=st.sampled_from(list(Priority)), audio_url=st.none() | names,
    not_before=st.none() | aware, expires=st.none() | aware,
    quiet_hours=st.lists(names, max_size=2).map(tuple), escalation=st.none() | names,
    options=st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    source=st.none() | names)
deliveries = st.builds(
    Delivery, id=names, alert_id=names, recipient=recipients,
    channel=st.sampled_from(list(Channel)), provider=names, state=states, created_at=aware,
    updated_at=aware, deadline=st.none() | aware, provider_ref=st.none() | names,
    provider_message_id=st.none() | names, provider_status=st.none() | names,
    reason=st.none() | st.text(max_size=20), attempts=st.integers(0, 10),
    submitted_at=st.none() | aware, step=st.none() | st.integers(0, 5),
    details=st.dictionaries(st.text(max_size=8), json_values, max_size=3))
contacts = st.builds(
    StepContact, step=st.integers(0, 5), round=st.integers(0, 3), at=aware,
    to=st.lists(names, max_size=2).map(tuple),
    channels=st.lists(st.sampled_from([c.value for c in Channel]), max_size=2).map(tuple),
    deliveries=st.lists(names, max_size=2).map(tuple))
progresses = st.builds(
    EscalationProgress, policy=names, steps=st.integers(1, 5), rounds=st.integers(1, 3),
    started_at=aware, active=st.booleans(), position=st.integers(-1, 10),
    contacted=st.lists(contacts, max_size=2).map(tuple),
    outcome=st.none() | names, step=st.integers(0, 5), round=st.integers(0, 3),
    step_started_at=aware, next_at=st.none() | aware, ended_at=st.none() | aware,
    error=st.none() | names)
statuses = st.builds(
    AlertStatus,
    acknowledged=st.none() | st.builds(Acknowledgement, by=st.none() | names, via=names,
                                       at=aware),
    cancelled=st.booleans(), resolved=st.booleans(),
    escalation=st.none() | progresses)


def through_json(data: dict[str, Any]) -> dict[str, Any]:
    """What a reader gets back after the value went over the wire or into the store."""
    decoded: dict[str, Any] = json.loads(json.dumps(data))
    return decoded


@given(recipients)
def test_recipient_round_trip(recipient: Recipient) -> None:
    assert Recipient.from_json(through_json(recipient.to_json())) == recipient


@given(alerts)
def test_alert_round_trip(alert: Alert) -> None:
    assert Alert.from_json(through_json(alert.to_json())) == alert


@given(deliveries)
def test_delivery_round_trip(delivery: Delivery) -> None:
    assert Delivery.from_json(through_json(delivery.to_json())) == delivery


@given(statuses)
def test_alert_status_round_trip(status: AlertStatus) -> None:
    assert AlertStatus.from_json(through_json(status.to_json())) == status


def test_empty_contact_survives_a_round_trip() -> None:
    recipient = Recipient("+491701234560", contact="", locale="")
    assert Recipient.from_json(through_json(recipient.to_json())) == recipient


@given(alerts, st.lists(deliveries, max_size=4), statuses)
def test_report_json_is_consistent(alert: Alert, items: list[Delivery],
                                   status: AlertStatus) -> None:
    report = Report(alert=alert, deliveries=tuple(items), status=status, updated_at=T0)
    payload = through_json(report.to_json())
    assert payload["id"] == alert.id
    assert payload["state"] == report.state.value
    assert payload["final"] is report.final
    assert payload["counts"] == report.counts()
    assert [Delivery.from_json(d) for d in payload["deliveries"]] == items
    assert payload["cancelled"] is status.cancelled and payload["resolved"] is status.resolved


def test_report_payload_shape() -> None:
    delivered = make_delivery(DeliveryState.DELIVERED)
    busy = make_delivery(DeliveryState.FAILED, "+491701234568", 2)
    busy = Delivery.from_json({**busy.to_json(), "reason": "busy", "provider_status": "BUSY"})
    report = Report(alert=make_alert(title="Basement"), deliveries=(delivered, busy),
                    status=AlertStatus(), updated_at=T0 + timedelta(seconds=3))
    payload = report.to_json()
    assert payload["state"] == "partially_delivered"
    assert payload["final"] is True
    assert payload["counts"] == {"delivered": 1, "failed": 1}
    assert payload["updated_at"] == "2026-01-01T12:00:03+00:00"
    second = payload["deliveries"][1]
    assert (second["to"], second["state"], second["reason"], second["provider_status"],
            second["final"]) == ("+491701234568", "failed", "busy", "BUSY", True)


def test_sms_text_carries_the_title() -> None:
    alert = make_alert(title="Basement")
    assert alert.text_for(Channel.SMS) == "Basement: Water leak"
    assert alert.text_for(Channel.VOICE) == "Water leak"
    assert make_alert().text_for(Channel.SMS) == "Water leak"
