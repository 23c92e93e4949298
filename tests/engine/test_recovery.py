"""Recovery's decisions after a restart: what is queued again, what is in doubt, what fails."""

from __future__ import annotations

from alertline.engine.decisions import Advance, Queue, SetPhase
from alertline.engine.recovery import (
    INTERRUPTED,
    fail_decision,
    requeue_plan,
    resend_decisions,
)
from alertline.model import AlertStatus, DeliveryState
from alertline.records import AlertRecord
from alertline.states import Phase
from alertline.store.sqlite import StoredDelivery
from tests.engine.conftest import T0, make_alert, make_delivery, make_record


def test_only_pending_deliveries_are_requeued_or_in_doubt() -> None:
    queued = make_delivery(number=1)
    in_flight = make_delivery(number=2)
    tracked = make_delivery(number=3, state=DeliveryState.SUBMITTED)
    done = make_delivery(number=4, state=DeliveryState.DELIVERED)
    record = make_record(queued, in_flight, tracked, done)
    record.phases.update({in_flight.id: (Phase.IN_FLIGHT, None),
                          tracked.id: (Phase.TRACKING, "sub-1"), done.id: (Phase.DONE, "sub-1")})
    requeue, in_doubt = requeue_plan(record)
    assert [d.id for d in requeue] == [queued.id]
    assert [d.id for d in in_doubt] == [in_flight.id]


def test_a_resent_delivery_goes_back_to_the_queue() -> None:
    assert resend_decisions(make_delivery()) == [SetPhase("al-1-1", Phase.QUEUED),
                                                 Queue(("al-1-1",))]


def test_a_delivery_in_doubt_fails_rather_than_being_sent_twice() -> None:
    assert fail_decision(make_delivery(), T0) == Advance(
        "al-1-1", DeliveryState.FAILED, T0, {"reason": INTERRUPTED})


def test_stored_phases_come_back_typed() -> None:
    stored = [StoredDelivery(make_delivery(number=1), "in_flight", None),
              StoredDelivery(make_delivery(number=2, state=DeliveryState.SUBMITTED), "tracking",
                             "sub-1")]
    record = AlertRecord.from_store(make_alert(), AlertStatus(), stored)
    assert record.phases == {"al-1-1": (Phase.IN_FLIGHT, None),
                             "al-1-2": (Phase.TRACKING, "sub-1")}
    assert all(isinstance(phase, Phase) for phase, _ in record.phases.values())
    assert list(record.deliveries) == ["al-1-1", "al-1-2"]
