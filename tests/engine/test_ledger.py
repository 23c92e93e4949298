"""The ledger: the one writer of states, phases, status and progress, one transaction per change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from alertline.clock import ManualClock
from alertline.engine.decisions import (
    AddDelivery,
    Advance,
    CountSend,
    Decision,
    DropTimer,
    EndAlert,
    Queue,
    Reroute,
    SetPhase,
    SetTimer,
)
from alertline.engine.ledger import Ledger
from alertline.model import Acknowledgement, Delivery, DeliveryState, Report
from alertline.records import AlertRecord
from alertline.states import AlertState, IllegalTransitionError, Phase
from alertline.store.sqlite import SqliteStore
from tests.engine.conftest import T0, make_delivery, make_record


class Queued:
    """Records what the ledger hands to dispatch."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, record: AlertRecord, deliveries: list[Delivery]) -> None:
        self.calls.append([d.id for d in deliveries])


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "ledger.db")
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture
def queued() -> Queued:
    return Queued()


@pytest.fixture
def ledger(store: SqliteStore, queued: Queued) -> Ledger:
    return Ledger(store, ManualClock(T0), queue=queued)


async def opened(ledger: Ledger, record: AlertRecord | None = None) -> AlertRecord:
    """A record written as newly accepted."""
    record = record or make_record()
    await ledger.open_new(record, [])
    return record


async def test_a_new_alert_is_written_whole_then_emitted(ledger: Ledger,
                                                        store: SqliteStore) -> None:
    seen: list[Report] = []
    ledger.subscribe(seen.append)
    ledger.add_outbox_sink(lambda report: [(f"report/{report.alert.id}", b"{}", False)])
    record = make_record()
    ledger.apply(None, [CountSend("cap:*:hour:sms", T0), SetTimer("escalation:al-1", T0, {})])
    accepted = await ledger.open_new(record, ["key-1"])
    assert (accepted.alert_id, accepted.deliveries, accepted.duplicate) == ("al-1", 2, False)
    assert [r.state for r in seen] == [AlertState.ACCEPTED]
    assert ledger.record("al-1") is record
    assert await store.alert_for_key("key-1") == "al-1"
    assert await store.counter("cap:*:hour:sms", T0) == 1
    work = await store.load_open_work()
    assert [key for key, _, _ in work.timers] == ["escalation:al-1"]
    assert {(s.delivery.id, s.phase) for s in work.deliveries} == {
        ("al-1-1", "queued"), ("al-1-2", "queued")}
    assert [topic for _, topic, _, _ in await store.outbox()] == ["report/al-1"]
    assert [e["kind"] for e in await store.events("al-1")] == ["accepted"]


async def test_a_move_changes_state_and_phase_and_is_logged(ledger: Ledger,
                                                            store: SqliteStore) -> None:
    record = await opened(ledger)
    changed = ledger.apply(record, [
        SetPhase("al-1-1", Phase.TRACKING, "sub-1"),
        Advance("al-1-1", DeliveryState.DELIVERED, T0, {"provider_status": "DONE"})])
    await ledger.save(["al-1"])
    assert changed
    assert record.deliveries["al-1-1"].state is DeliveryState.DELIVERED
    assert record.phases["al-1-1"] == (Phase.DONE, "sub-1")
    loaded = await ledger.store.load_alert("al-1")
    assert loaded is not None
    stored = {s.delivery.id: (s.delivery.state, s.phase, s.submission_id) for s in loaded[2]}
    assert stored["al-1-1"] == (DeliveryState.DELIVERED, "done", "sub-1")
    events = await store.events("al-1")
    assert [(e["kind"], e["from_state"], e["to_state"]) for e in events][-1] == (
        "state", "pending", "delivered")


async def test_a_move_the_table_forbids_is_ignored(ledger: Ledger, store: SqliteStore) -> None:
    record = await opened(ledger, make_record(
        make_delivery(state=DeliveryState.DELIVERED), phase=Phase.DONE))
    before = record.deliveries["al-1-1"]
    assert not ledger.apply(record, [Advance("al-1-1", DeliveryState.FAILED, T0)])
    await ledger.save(["al-1"])
    assert record.deliveries["al-1-1"] is before
    assert [e["kind"] for e in await store.events("al-1")] == ["accepted"]


async def test_a_phase_the_table_forbids_raises(ledger: Ledger) -> None:
    record = await opened(ledger, make_record(
        make_delivery(state=DeliveryState.SUBMITTED), phase=Phase.TRACKING))
    with pytest.raises(IllegalTransitionError, match="al-1-1: phase tracking -> queued"):
        ledger.apply(record, [SetPhase("al-1-1", Phase.QUEUED)])
    assert record.phases["al-1-1"] == (Phase.TRACKING, None)


async def test_an_alert_summary_the_table_forbids_is_not_written(ledger: Ledger) -> None:
    record = await opened(ledger, make_record(make_delivery(number=1)))
    ledger.apply(record, [Advance("al-1-1", DeliveryState.DELIVERED, T0)])
    await ledger.save(["al-1"])
    ledger.adopt(record)  # emitted final, but hold it open to try a bad change
    ledger.apply(record, [AddDelivery(make_delivery(number=2))])
    with pytest.raises(IllegalTransitionError, match="alert al-1: delivered -> in_progress"):
        await ledger.save(["al-1"])


async def test_a_failover_queues_the_delivery_again_with_its_new_provider(
        ledger: Ledger, queued: Queued) -> None:
    record = await opened(ledger, make_record(make_delivery(), phase=Phase.IN_FLIGHT))
    ledger.apply(record, [Reroute("al-1-1", "backup", "funds", T0), Queue(("al-1-1",))])
    delivery = record.deliveries["al-1-1"]
    assert (delivery.provider, delivery.state) == ("backup", DeliveryState.PENDING)
    assert delivery.details == {"failover_from": "sim", "failover_reason": "funds"}
    assert record.phases["al-1-1"] == (Phase.QUEUED, None)
    assert queued.calls == [["al-1-1"]]


async def test_what_follows_a_final_state_is_applied_in_order(store: SqliteStore,
                                                              queued: Queued) -> None:
    seen_by_second: list[int] = []

    def follow(record: AlertRecord, delivery: Delivery) -> Iterator[Decision]:
        if delivery.id != "al-1-1":
            return
        yield AddDelivery(make_delivery(number=2))
        seen_by_second.append(len(record.deliveries))  # the first decision is applied already
        yield Queue(("al-1-2",))

    ledger = Ledger(store, ManualClock(T0), queue=queued, on_final=follow)
    record = await opened(ledger, make_record(make_delivery(number=1)))
    ledger.apply(record, [Advance("al-1-1", DeliveryState.FAILED, T0, {"reason": "busy"})])
    assert seen_by_second == [2]
    assert queued.calls == [["al-1-2"]]
    assert record.phases["al-1-2"] == (Phase.QUEUED, None)


async def test_alert_facts_are_status_and_events(ledger: Ledger, store: SqliteStore) -> None:
    """Ack, cancel and resolve change the status and are logged with who did it."""
    record = await opened(ledger)
    ack = Acknowledgement(by="alice", via="mqtt", at=T0)
    ledger.apply(record, [EndAlert("ack", T0, "mqtt:alice", ack), EndAlert("cancel", T0, "ops")])
    await ledger.save(["al-1"])
    assert (record.status.acknowledged, record.status.cancelled) == (ack, True)
    events = [(e["kind"], e["reason"]) for e in await store.events("al-1")]
    assert events[-2:] == [("ack", "mqtt:alice"), ("cancel", "ops")]
    ledger.apply(record, [EndAlert("resolve", T0, "ops")])
    assert record.status.resolved


async def test_a_final_alert_leaves_the_open_set_and_wakes_its_waiters(ledger: Ledger) -> None:
    record = await opened(ledger, make_record(make_delivery(number=1)))
    finals: list[Report] = []
    ledger.when_final("al-1", finals.append)
    ledger.apply(record, [Advance("al-1-1", DeliveryState.SENT, T0 + timedelta(seconds=1))])
    await ledger.settle(["al-1"])
    assert [r.state for r in finals] == [AlertState.DELIVERED]
    assert ledger.record("al-1") is None
    recent = ledger.recent("al-1")
    assert recent is not None and recent.final


async def test_phases_alone_are_written_cheaply(ledger: Ledger, store: SqliteStore) -> None:
    record = await opened(ledger)
    entries = [(record, d) for d in record.deliveries.values()]
    await ledger.save_phases(entries, Phase.IN_FLIGHT)
    work = await store.load_open_work()
    assert {s.phase for s in work.deliveries} == {"in_flight"}
    assert record.unsaved() == []  # the ledger knows the store holds it


async def test_timers_are_dropped_with_the_next_commit(ledger: Ledger, store: SqliteStore) -> None:
    ledger.apply(None, [SetTimer("escalation:x", T0, {"position": 1})])
    await ledger.save([])
    ledger.apply(None, [DropTimer("escalation:x")])
    await ledger.save([])
    assert (await store.load_open_work()).timers == []


async def test_record_decisions_need_their_record(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="needs the alert"):
        ledger.apply(None, [Queue(("al-1-1",))])
