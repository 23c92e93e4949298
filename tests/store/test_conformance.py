"""The store conformance suite: what every store implementation must do, through the Protocol only.

Each test runs against every entry of :data:`tests.store.conftest.IMPLEMENTATIONS` and uses only
:class:`alertline.store.protocol.Store`, the intents and the typed records, so a new store (the
PostgreSQL one) is correct when it passes these unchanged.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from alertline.model import Acknowledgement, AlertStatus, DeliveryState
from alertline.progress import EscalationProgress, StepContact
from alertline.providers.base import Submission, SubmittedItem
from alertline.store.errors import StoreClosedError, StoreRejectedError
from alertline.store.intents import (
    AppendEvents,
    CounterAdd,
    DeleteTimer,
    InsertAlert,
    Intent,
    MetaSet,
    OutboxAdd,
    OutboxRemove,
    PruneFinished,
    SaveDeliveries,
    SaveSubmission,
    SetPhase,
    SetTimer,
    UnitOfWork,
    UpdateAlert,
)
from alertline.store.protocol import Store
from alertline.store.stored import Phase
from tests.store.conftest import StoreFactory
from tests.store.samples import HOUR, T0, accepted, alert, delivery, finished, outbox_payloads


# -- idempotency keys ---------------------------------------------------------------------------
async def test_an_alert_is_found_by_its_id_and_its_keys(store: Store) -> None:
    await store.commit(accepted("al-1", "mqtt:17", "am:abc"))
    assert await store.alert_for_key("al-1") == "al-1"
    assert await store.alert_for_key("mqtt:17") == "al-1"
    assert await store.alert_for_key("am:abc") == "al-1"
    assert await store.alert_for_key("mqtt:18") is None


async def test_a_taken_key_keeps_pointing_at_its_first_alert(store: Store) -> None:
    await store.commit(accepted("al-1", "mqtt:17"))
    await store.commit(accepted("al-2", "mqtt:17", "mqtt:18"))
    assert await store.alert_for_key("mqtt:17") == "al-1"
    assert await store.alert_for_key("mqtt:18") == "al-2"


async def test_concurrent_key_look_ups_each_get_their_own_answer(store: Store) -> None:
    await store.commit([*accepted("al-1", "k1"), *accepted("al-2", "k2")])
    found = await asyncio.gather(*(store.alert_for_key(k) for k in ("k1", "k2", "k3", "k1")))
    assert found == ["al-1", "al-2", None, "al-1"]


# -- alerts -------------------------------------------------------------------------------------

async def test_an_inserted_alert_loads_as_it_was_given(store: Store) -> None:
    await store.commit([InsertAlert(alert("al-1"), AlertStatus(), "accepted", False)])
    assert await store.load_alert("al-1") == (alert("al-1"), AlertStatus(), [])
    assert await store.load_alert("al-2") is None


async def test_an_update_changes_status_state_and_finality(store: Store) -> None:
    await store.commit(accepted("al-1"))
    ack = Acknowledgement(by="alice", via="mqtt", at=T0 + timedelta(minutes=1))
    status = AlertStatus(acknowledged=ack, cancelled=True)
    await store.commit([UpdateAlert("al-1", status, "acknowledged", True,
                                    T0 + timedelta(minutes=2))])
    loaded = await store.load_alert("al-1")
    assert loaded is not None and loaded[:2] == (alert("al-1"), status)
    assert await store.recent_alerts() == [
        (alert("al-1"), "acknowledged", True, T0 + timedelta(minutes=2))]
    assert list((await store.load_open_work()).alerts) == []


async def test_escalation_progress_round_trips_with_its_timer(store: Store) -> None:
    progress = EscalationProgress(
        policy="night", steps=3, rounds=1, started_at=T0, position=1, step=1, round=0,
        step_started_at=T0,
        contacted=(StepContact(step=0, round=0, at=T0, to=("alice",), channels=("sms",),
                               deliveries=("d-1",)),))
    due = T0 + timedelta(minutes=5)
    await store.commit([*accepted("al-1"),
                        UpdateAlert("al-1", AlertStatus(escalation=progress), "in_progress",
                                    False, T0),
                        SetTimer("escalate:al-1", due, {"alert": "al-1", "position": 2})])
    loaded = await store.load_alert("al-1")
    assert loaded is not None and loaded[1].escalation == progress
    work = await store.load_open_work()
    assert work.alerts["al-1"][1] == AlertStatus(escalation=progress)
    assert work.timers == [("escalate:al-1", due, {"alert": "al-1", "position": 2})]


async def test_recent_alerts_lists_open_ones_first_then_newest(store: Store) -> None:
    for n in range(4):
        await store.commit(accepted(f"al-{n}", at=T0 + timedelta(minutes=n)))
    await store.commit([finished("al-3", T0 + timedelta(hours=1))])
    recent = [(a.id, state, final) for a, state, final, _ in await store.recent_alerts()]
    assert recent == [("al-2", "accepted", False), ("al-1", "accepted", False),
                      ("al-0", "accepted", False), ("al-3", "delivered", True)]
    assert [a.id for a, *_ in await store.recent_alerts(limit=2)] == ["al-2", "al-1"]


# -- deliveries and their phases ----------------------------------------------------------------

async def test_deliveries_are_replaced_in_place_and_keep_their_order(store: Store) -> None:
    await store.commit(accepted("al-1", deliveries=3))
    submitted = delivery("al-1", 1, state=DeliveryState.SUBMITTED, provider_ref="JOB-1")
    await store.commit([SaveDeliveries(((submitted, Phase.TRACKING, "sub-1"),))])
    loaded = await store.load_alert("al-1")
    assert loaded is not None
    assert [(d.delivery, d.phase, d.submission_id) for d in loaded[2]] == [
        (submitted, Phase.TRACKING, "sub-1"), (delivery("al-1", 2), Phase.QUEUED, None),
        (delivery("al-1", 3), Phase.QUEUED, None)]


async def test_a_phase_moves_without_touching_the_delivery(store: Store) -> None:
    await store.commit(accepted("al-1", deliveries=2))
    await store.commit([SetPhase(("al-1-1", "al-1-2"), Phase.IN_FLIGHT)])
    await store.commit([SetPhase(("al-1-2",), Phase.DONE)])
    loaded = await store.load_alert("al-1")
    assert loaded is not None
    assert [(d.delivery, d.phase) for d in loaded[2]] == [
        (delivery("al-1", 1), Phase.IN_FLIGHT), (delivery("al-1", 2), Phase.DONE)]


async def test_pushed_statuses_find_alerts_by_message_id_then_job(store: Store) -> None:
    await store.commit([*accepted("al-1"), *accepted("al-2")])
    one = delivery("al-1", 1, state=DeliveryState.SUBMITTED, provider_ref="JOB-1",
                   provider_message_id="MSG-1")
    two = delivery("al-2", 1, state=DeliveryState.SUBMITTED, provider_ref="JOB-1",
                   provider_message_id="MSG-2")
    await store.commit([SaveDeliveries(((one, Phase.TRACKING, None), (two, Phase.TRACKING, None)))])
    assert await store.find_deliveries("sim", "JOB-1", "MSG-2") == ["al-2"]
    assert sorted(await store.find_deliveries("sim", "JOB-1", None)) == ["al-1", "al-2"]
    assert sorted(await store.find_deliveries("sim", "JOB-1", "MSG-9")) == ["al-1", "al-2"]
    assert await store.find_deliveries("other", "JOB-1", "MSG-1") == []
    assert await store.find_deliveries("sim", None, None) == []


# -- events and submissions ---------------------------------------------------------------------

async def test_events_are_kept_per_alert_in_order(store: Store) -> None:
    await store.commit([*accepted("al-1"), *accepted("al-2")])
    await store.commit([AppendEvents((
        ("al-1", "al-1-1", T0, "state", "pending", "submitted", "ACCEPTED", None),
        ("al-2", None, T0, "acknowledged", None, None, None, "by alice"),
        ("al-1", "al-1-1", T0 + timedelta(seconds=5), "state", "submitted", "failed", "ERR",
         "number unknown")))])
    assert await store.events("al-1") == [
        {"delivery_id": "al-1-1", "at": T0.isoformat(), "kind": "state",
         "from_state": "pending", "to_state": "submitted", "provider_status": "ACCEPTED",
         "reason": None},
        {"delivery_id": "al-1-1", "at": (T0 + timedelta(seconds=5)).isoformat(),
         "kind": "state", "from_state": "submitted", "to_state": "failed",
         "provider_status": "ERR", "reason": "number unknown"}]
    assert [e["kind"] for e in await store.events("al-2")] == ["acknowledged"]
    assert await store.events("al-3") == []


async def test_open_work_holds_unfinished_alerts_their_submissions_and_timers(
        store: Store) -> None:
    submission = Submission(provider_ref="JOB-1", submitted_at=T0, data={"channel": "sms"},
                            items=(SubmittedItem("al-open-1", "+491701234560", "MSG-1"),))
    tracking = delivery("al-open", 1, state=DeliveryState.SUBMITTED)
    await store.commit([*accepted("al-open"), *accepted("al-done"),
                        finished("al-done", T0), SaveSubmission("sub-1", "sim", submission),
                        SaveSubmission("sub-unused", "sim", submission),
                        SaveDeliveries(((tracking, Phase.TRACKING, "sub-1"),)),
                        SetTimer("hold:al-open", T0, {"alert": "al-open"})])
    work = await store.load_open_work()
    assert list(work.alerts) == ["al-open"]
    assert work.alerts["al-open"] == (alert("al-open"), AlertStatus())
    assert [(d.delivery, d.phase, d.submission_id) for d in work.deliveries] == [
        (tracking, Phase.TRACKING, "sub-1")]
    assert list(work.submissions) == ["sub-1"]
    stored = work.submissions["sub-1"]
    assert (stored.id, stored.provider, stored.submission) == ("sub-1", "sim", submission)
    assert work.timers == [("hold:al-open", T0, {"alert": "al-open"})]


# -- timers, counters, meta ---------------------------------------------------------------------

async def test_a_timer_is_replaced_by_its_key_and_deleted(store: Store) -> None:
    await store.commit([SetTimer("t1", T0, {"n": 1}), SetTimer("t2", T0, {})])
    await store.commit([SetTimer("t1", T0 + timedelta(minutes=1), {"n": 2}), DeleteTimer("t2"),
                        DeleteTimer("never-set")])
    assert (await store.load_open_work()).timers == [("t1", T0 + timedelta(minutes=1), {"n": 2})]


async def test_counters_add_up_within_a_window_and_restart_with_the_next(store: Store) -> None:
    await store.commit([CounterAdd("sms:sim", 2, HOUR)])
    await store.commit([CounterAdd("sms:sim", 3, HOUR), CounterAdd("voice:sim", 1, HOUR)])
    assert await store.counter("sms:sim", HOUR) == 5
    assert await store.counter("voice:sim", HOUR) == 1
    assert await store.counter("unknown", HOUR) == 0
    later = HOUR + timedelta(hours=1)
    assert await store.counter("sms:sim", later) == 0
    await store.commit([CounterAdd("sms:sim", 1, later)])
    assert await store.counter("sms:sim", later) == 1
    assert await store.counter("sms:sim", HOUR) == 0  # the old window is gone


async def test_meta_values_are_set_and_replaced(store: Store) -> None:
    assert await store.meta_get("discovery") is None
    await store.commit([MetaSet("discovery", '{"a": 1}')])
    await store.commit([MetaSet("discovery", '{"a": 2}'), MetaSet("other", "")])
    assert await store.meta_get("discovery") == '{"a": 2}'
    assert await store.meta_get("other") == ""


# -- the outbox ---------------------------------------------------------------------------------

async def test_the_outbox_hands_messages_out_in_order_until_acknowledged(store: Store) -> None:
    await store.commit([OutboxAdd((("alertline/report/a", b"1", False),
                                   ("alertline/status", b"online", True)), T0)])
    await store.commit([OutboxAdd((("alertline/report/a", b"\x00\xff", False),), T0)])
    queued = await store.outbox()
    assert [(topic, payload, retain) for _, topic, payload, retain in queued] == [
        ("alertline/report/a", b"1", False), ("alertline/status", b"online", True),
        ("alertline/report/a", b"\x00\xff", False)]
    seqs = [seq for seq, *_ in queued]
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    assert await store.outbox(limit=2) == queued[:2]
    assert await store.outbox(after=seqs[0]) == queued[1:]
    assert await store.outbox(limit=0) == []
    await store.commit([OutboxRemove((seqs[0], seqs[2]))])
    assert await outbox_payloads(store) == [b"online"]


async def test_outbox_sequence_numbers_are_never_reused(store: Store) -> None:
    await store.commit([OutboxAdd((("t", b"1", False), ("t", b"2", False)), T0)])
    first = [seq for seq, *_ in await store.outbox()]
    await store.commit([OutboxRemove(tuple(first))])
    await store.commit([OutboxAdd((("t", b"3", False),), T0)])
    (seq, *_), = await store.outbox()
    assert seq > max(first)
    assert await store.outbox(after=max(first)) == await store.outbox()


# -- stats --------------------------------------------------------------------------------------

async def test_stats_count_deliveries_alerts_and_the_outbox(store: Store) -> None:
    failed = delivery("al-1", 2, state=DeliveryState.FAILED, reason="unknown number")
    await store.commit([*accepted("al-1", deliveries=2), *accepted("al-2"),
                        SaveDeliveries(((failed, Phase.DONE, None),)),
                        finished("al-2", T0), OutboxAdd((("t", b"", False),), T0)])
    assert await store.stats() == {"deliveries": {"sim|pending": 2, "sim|failed": 1},
                                   "alerts_open": 1, "alerts_total": 2, "outbox": 1}


# -- retention ----------------------------------------------------------------------------------

async def test_prune_deletes_alerts_finished_before_the_cutoff_with_their_rows(
        store: Store) -> None:
    shared = Submission(provider_ref="JOB-1", submitted_at=T0, items=())
    old, recent = T0, T0 + timedelta(days=20)
    await store.commit([*accepted("al-old", "key-old"), *accepted("al-recent"),
                        *accepted("al-open"), SaveSubmission("sub-old", "sim", shared),
                        SaveSubmission("sub-shared", "sim", shared),
                        SaveDeliveries(((delivery("al-old", 1), Phase.DONE, "sub-old"),
                                        (delivery("al-old", 2), Phase.DONE, "sub-shared"),
                                        (delivery("al-open", 1), Phase.TRACKING, "sub-shared"))),
                        AppendEvents((("al-old", None, old, "state", None, None, None, None),)),
                        finished("al-old", old), finished("al-recent", recent)])
    assert await store.prune(T0 + timedelta(days=10)) == 1
    assert await store.load_alert("al-old") is None
    assert await store.alert_for_key("key-old") is None
    assert await store.events("al-old") == []
    assert await store.load_alert("al-recent") is not None
    work = await store.load_open_work()
    assert list(work.submissions) == ["sub-shared"]  # still used by an open delivery
    assert (await store.stats())["deliveries"] == {"sim|pending": 2}  # al-recent's, al-open's
    assert await store.prune(T0 + timedelta(days=10)) == 0


async def test_prune_takes_the_oldest_first_up_to_its_limit(store: Store) -> None:
    for n in range(5):
        at = T0 + timedelta(hours=n)
        await store.commit([*accepted(f"al-{n}", at=at), finished(f"al-{n}", at)])
    assert await store.prune(T0 + timedelta(days=1), limit=2) == 2
    assert [a.id for a, *_ in await store.recent_alerts()] == ["al-4", "al-3", "al-2"]
    await store.commit([PruneFinished(T0 + timedelta(days=1), 10)])  # as an intent, too
    assert await store.recent_alerts() == []


# -- units of work: order, atomicity, concurrency, durability -----------------------------------

async def test_a_unit_applies_its_intents_in_order(store: Store) -> None:
    await store.commit(UnitOfWork((SetTimer("t", T0, {}), DeleteTimer("t"),
                                   DeleteTimer("u"), SetTimer("u", T0, {}),
                                   *accepted("al-1"), SetPhase(("al-1-1",), Phase.IN_FLIGHT))))
    assert [key for key, _, _ in (await store.load_open_work()).timers] == ["u"]
    loaded = await store.load_alert("al-1")
    assert loaded is not None and loaded[2][0].phase == Phase.IN_FLIGHT


async def test_an_empty_unit_is_kept_trivially(store: Store) -> None:
    await store.commit([])
    await store.commit(UnitOfWork(()))
    assert await store.stats() == {"deliveries": {}, "alerts_open": 0, "alerts_total": 0,
                                   "outbox": 0}


async def test_two_concurrent_units_are_both_kept(store: Store) -> None:
    await asyncio.gather(store.commit([*accepted("al-1"), OutboxAdd((("t", b"1", False),), T0)]),
                         store.commit([*accepted("al-2"), OutboxAdd((("t", b"2", False),), T0)]))
    assert await store.load_alert("al-1") is not None
    assert await store.load_alert("al-2") is not None
    assert sorted(await outbox_payloads(store)) == [b"1", b"2"]


async def test_many_concurrent_units_are_all_kept(store: Store) -> None:
    await asyncio.gather(*(store.commit([*accepted(f"al-{n}"), CounterAdd("sms", 1, HOUR)])
                           for n in range(40)))
    assert (await store.stats())["alerts_total"] == 40
    assert await store.counter("sms", HOUR) == 40


async def test_a_unit_that_fails_leaves_nothing(store: Store) -> None:
    await store.commit(accepted("al-taken"))
    doomed: list[Intent] = [
        *accepted("al-new", "key-new"), OutboxAdd((("t", b"doomed", False),), T0),
        SetTimer("t", T0, {}), CounterAdd("sms", 1, HOUR), MetaSet("m", "doomed"),
        InsertAlert(alert("al-taken"), AlertStatus(), "accepted", False)]
    with pytest.raises(StoreRejectedError):
        await store.commit(doomed)
    assert await store.load_alert("al-new") is None
    assert await store.alert_for_key("key-new") is None
    assert await store.outbox() == []
    assert (await store.load_open_work()).timers == []
    assert await store.counter("sms", HOUR) == 0
    assert await store.meta_get("m") is None


async def test_a_failing_unit_does_not_fail_its_concurrent_neighbours(store: Store) -> None:
    await store.commit(accepted("al-taken"))
    results = await asyncio.gather(
        store.commit(accepted("al-1")),
        store.commit([*accepted("al-2"), *accepted("al-taken")]),
        store.commit(accepted("al-3")), return_exceptions=True)
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], StoreRejectedError)
    assert await store.load_alert("al-1") is not None
    assert await store.load_alert("al-2") is None
    assert await store.load_alert("al-3") is not None


async def test_what_was_committed_is_there_after_reopening(new_store: StoreFactory) -> None:
    first = new_store()
    await first.open()
    await first.commit([*accepted("al-1", "k"), OutboxAdd((("t", b"1", False),), T0),
                        SetTimer("t", T0, {"a": 1}), CounterAdd("sms", 2, HOUR)])
    await first.close()
    second = new_store()
    await second.open()
    try:
        assert await second.alert_for_key("k") == "al-1"
        assert await outbox_payloads(second) == [b"1"]
        assert (await second.load_open_work()).timers == [("t", T0, {"a": 1})]
        assert await second.counter("sms", HOUR) == 2
    finally:
        await second.close()


async def test_close_keeps_what_was_handed_over_before_it(new_store: StoreFactory) -> None:
    first = new_store()
    await first.open()
    await asyncio.gather(*(first.commit(accepted(f"al-{n}")) for n in range(5)), first.close())
    second = new_store()
    await second.open()
    try:
        assert (await second.stats())["alerts_total"] == 5
    finally:
        await second.close()


async def test_a_closed_store_refuses_work_and_reads(new_store: StoreFactory) -> None:
    closed = new_store()
    await closed.open()
    await closed.close()
    with pytest.raises(StoreClosedError):
        await closed.commit(accepted("al-1"))
    with pytest.raises(StoreClosedError):
        await closed.load_alert("al-1")
    assert closed.health.available  # closed on purpose: not an outage


async def test_the_store_counts_its_commits_and_is_healthy(store: Store) -> None:
    before = store.commits
    await store.commit(accepted("al-1"))
    assert store.commits > before
    assert store.health.available and store.health.error == ""
