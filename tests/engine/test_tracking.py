"""Tracking's decisions: what a provider's answer, its status updates and a deadline change."""

from __future__ import annotations

from datetime import timedelta

from alertline.clock import ManualClock
from alertline.engine.decisions import Advance, SetPhase
from alertline.engine.tracking import overdue_decision, status_decisions, submitted_decisions
from alertline.model import DeliveryState
from alertline.providers.base import ProviderContext, StatusUpdate, Submission, SubmittedItem
from alertline.providers.simulator import SimulatorProvider
from alertline.states import Phase
from tests.engine.conftest import T0, make_delivery
from tests.engine_harness import ScriptedProvider

LATER = T0 + timedelta(seconds=30)


def test_an_accepted_submission_tracks_and_moves_the_delivery() -> None:
    delivery = make_delivery(details={"kept": 1}, attempts=1)
    result = SubmittedItem("al-1-1", "+491701234560", "msg-1", provider_status="QUEUED",
                           details={"parts": 2})
    submission = Submission(provider_ref="JOB-1", items=(result,), submitted_at=T0)
    decisions = submitted_decisions(delivery, result, submission, submission_id="sub-1",
                                    deadline=LATER, now=T0)
    assert decisions[0] == SetPhase("al-1-1", Phase.TRACKING, "sub-1")
    advance = decisions[1]
    assert isinstance(advance, Advance)
    assert (advance.state, advance.at) == (DeliveryState.SUBMITTED, T0)
    assert advance.changes["provider_ref"] == "JOB-1"
    assert advance.changes["provider_message_id"] == "msg-1"
    assert advance.changes["attempts"] == 2
    assert advance.changes["deadline"] == LATER
    assert advance.changes["details"] == {"kept": 1, "parts": 2}


def test_an_answer_without_details_keeps_the_deliverys_own() -> None:
    result = SubmittedItem("al-1-1", "+491701234560")
    submission = Submission(provider_ref="JOB-1", items=(result,), submitted_at=T0)
    [_, advance] = submitted_decisions(make_delivery(), result, submission, submission_id="s",
                                       deadline=LATER, now=T0)
    assert isinstance(advance, Advance)
    assert "details" not in advance.changes


def test_status_updates_that_say_nothing_new_are_dropped() -> None:
    delivery = make_delivery(state=DeliveryState.SUBMITTED, provider_status="QUEUED")
    final = make_delivery(number=2, state=DeliveryState.DELIVERED)
    updates = [
        StatusUpdate(DeliveryState.SUBMITTED, delivery_id="al-1-1", provider_status="QUEUED"),
        StatusUpdate(DeliveryState.FAILED, delivery_id="al-1-2", provider_status="LATE"),
        StatusUpdate(DeliveryState.DELIVERED, delivery_id="unknown"),
    ]
    assert status_decisions({d.id: d for d in (delivery, final)}, updates, T0) == []


def test_a_status_update_moves_the_delivery_with_its_details_and_reason() -> None:
    delivery = make_delivery(state=DeliveryState.SUBMITTED, details={"parts": 2})
    update = StatusUpdate(DeliveryState.FAILED, delivery_id="al-1-1", provider_status="BUSY",
                          reason="busy", details={"attempt": 3}, at=LATER)
    [decision] = status_decisions({delivery.id: delivery}, [update], T0)
    assert decision == Advance("al-1-1", DeliveryState.FAILED, LATER, {
        "provider_status": "BUSY", "details": {"parts": 2, "attempt": 3}, "reason": "busy"})


def test_a_progress_update_without_reason_keeps_the_old_one() -> None:
    delivery = make_delivery(state=DeliveryState.SUBMITTED, reason="earlier")
    update = StatusUpdate(DeliveryState.SUBMITTED, delivery_id="al-1-1", provider_status="RING")
    [decision] = status_decisions({delivery.id: delivery}, [update], T0)
    assert isinstance(decision, Advance)
    assert "reason" not in decision.changes
    assert decision.at == T0


def test_a_delivery_expires_only_once_its_deadline_has_passed() -> None:
    provider = ScriptedProvider("scripted", ManualClock(T0))
    delivery = make_delivery(state=DeliveryState.SUBMITTED, deadline=LATER,
                             provider_status="QUEUED")
    assert overdue_decision(delivery, provider, LATER - timedelta(seconds=1)) is None
    decision = overdue_decision(delivery, provider, LATER)
    assert decision == Advance("al-1-1", DeliveryState.EXPIRED, LATER, {
        "reason": "no final status before the deadline (last: QUEUED)"})
    assert overdue_decision(make_delivery(state=DeliveryState.SUBMITTED), None, LATER) is None


def test_without_a_provider_the_last_status_is_named_as_missing() -> None:
    delivery = make_delivery(state=DeliveryState.SUBMITTED, deadline=T0)
    decision = overdue_decision(delivery, None, LATER)
    assert decision is not None
    assert decision.changes == {"reason": "no final status before the deadline "
                                          "(last: no final status)"}


class SettlingProvider(SimulatorProvider):
    """Says an accepted job at its deadline counts as sent (as Retarus does for RUNNING)."""

    def state_at_deadline(self, provider_status: str | None
                          ) -> tuple[DeliveryState, str] | None:
        """Sent, when the last status was RUNNING."""
        return (DeliveryState.SENT, "sent, no report") if provider_status == "RUNNING" else None


def test_a_provider_may_settle_a_delivery_at_its_deadline() -> None:
    settling = SettlingProvider("sim", SettlingProvider.validate_options({}),
                                ProviderContext(clock=ManualClock(T0)))
    delivery = make_delivery(state=DeliveryState.SUBMITTED, deadline=T0,
                             provider_status="RUNNING")
    assert overdue_decision(delivery, settling, LATER) == Advance(
        "al-1-1", DeliveryState.SENT, LATER, {"reason": "sent, no report"})
