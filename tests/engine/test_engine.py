"""The engine on a manual clock with the simulator: accept → submit → track → report."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest

from alertline.engine.core import Engine
from alertline.errors import NotFoundError, ValidationError
from alertline.intake.request import parse_request
from alertline.model import AlertState, Channel, DeliveryState, Report
from alertline.providers.base import StatusMode, StatusUpdate
from alertline.providers.simulator import SimulatorProvider
from tests.engine_harness import T0, EngineHarness, ScriptedProvider, make_config

pytestmark = pytest.mark.usefixtures("no_engine_errors")


def sim(engine: Engine) -> SimulatorProvider:
    provider = engine.providers["sim"]
    assert isinstance(provider, SimulatorProvider)
    return provider


def by_number(report: Report) -> dict[str, tuple[str, str | None, str | None]]:
    return {d.recipient.number: (d.state.value, d.provider_status, d.reason)
            for d in report.deliveries}


async def test_final_states_by_last_digit(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    numbers = ["+491701234560", "+491701234567", "+491701234568", "+491701234569"]
    accepted = await manual_engine.send(engine, to=numbers)
    assert (accepted.deliveries, accepted.duplicate) == (4, False)
    assert sim(engine).requests == 1, "one alert's recipients share one request"
    await manual_engine.advance(engine, 2)
    report = await engine.report(accepted.alert_id)
    assert by_number(report) == {
        "+491701234560": ("delivered", "DELIVERED", None),
        "+491701234567": ("delivered", "DELIVERED", None),
        "+491701234568": ("failed", "BUSY", "busy"),
        "+491701234569": ("submitted", "ACCEPTED", None),
    }
    assert report.state is AlertState.IN_PROGRESS
    await manual_engine.advance(engine, 30)
    final = await engine.wait_final(accepted.alert_id, timeout=10)
    expired = final.deliveries[3]
    assert expired.state is DeliveryState.EXPIRED
    assert expired.updated_at == T0 + timedelta(seconds=30), "expires at the deadline"
    assert expired.reason == "no final status before the deadline (last: ACCEPTED)"
    assert final.state is AlertState.PARTIALLY_DELIVERED
    assert engine.open_alerts == 0


async def test_voice_calls_are_answered_later(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to="+491701234561", channel="voice")
    await manual_engine.advance(engine, 2)
    assert (await engine.report(accepted.alert_id)).deliveries[0].provider_status == "RINGING"
    await manual_engine.advance(engine, 3)  # polls back off: 0.5 s, then x1.5 up to 2 s
    report = await engine.report(accepted.alert_id)
    assert by_number(report) == {"+491701234561": ("delivered", "ANSWERED", None)}


async def test_a_report_on_every_state_change(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to="+491701234560")
    await manual_engine.advance(engine, 5)
    assert manual_engine.states(accepted.alert_id) == ["accepted", "in_progress", "delivered"]
    delivery_states = [r.deliveries[0].state.value for r in manual_engine.reports]
    assert delivery_states == ["pending", "submitted", "delivered"]
    events = await engine.store.events(accepted.alert_id)
    assert [(e["kind"], e["from_state"], e["to_state"]) for e in events] == [
        ("accepted", None, None), ("state", "pending", "submitted"),
        ("state", "submitted", "delivered")]


async def test_failed_alert(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to=["+491701234568", "+491701234578"])
    await manual_engine.advance(engine, 2)
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    assert report.state is AlertState.FAILED
    assert report.to_json()["counts"] == {"failed": 2}


async def test_channels_and_contacts_expand(manual_engine: EngineHarness) -> None:
    config = make_config(
        contacts={"alice": {"phone": "+491701234560"}, "bob": {"phone": "+491701234561"}},
        groups={"oncall": ["alice", "bob"], "all": ["oncall", "+491701234562"]},
        routes={"leak": {"to": ["all"], "channel": ["sms", "voice"], "title": "Leak"}})
    engine = await manual_engine.start(config)
    accepted = await manual_engine.send(engine, route="leak", to=["all", "alice"])
    report = await engine.report(accepted.alert_id)
    assert [(d.recipient.number, d.recipient.contact, d.channel.value)
            for d in report.deliveries] == [
        ("+491701234560", "alice", "sms"), ("+491701234561", "bob", "sms"),
        ("+491701234562", None, "sms"), ("+491701234560", "alice", "voice"),
        ("+491701234561", "bob", "voice"), ("+491701234562", None, "voice")]
    assert sim(engine).requests == 2, "one request per channel"


@pytest.mark.parametrize(("fields", "field", "reason"), [
    ({"to": "carol"}, "to[0]", "unknown contact or group 'carol'"),
    ({"to": "+4917012"}, "to[0]", "invalid phone number '+4917012'"),
    ({}, "to", "no recipients"),
    ({"to": "+491701234560", "route": "nope"}, "route", "unknown route 'nope'"),
    ({"to": "+491701234560", "provider": "nope"}, "provider", "unknown provider 'nope'"),
    ({"to": "+491701234560", "expires": "2020-01-01T00:00:00Z"}, "expires", "in the past"),
    ({"to": "+491701234560", "escalation": "nope"}, "escalation", "unknown escalation"),
])
async def test_bad_requests_are_refused_and_nothing_is_stored(
        manual_engine: EngineHarness, fields: dict[str, str], field: str, reason: str) -> None:
    engine = await manual_engine.start()
    with pytest.raises(ValidationError) as caught:
        await engine.accept(parse_request({"message": "m", **fields}))
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert (await engine.store.stats())["alerts_total"] == 0
    assert engine.metrics["alerts_rejected"] == 1
    assert manual_engine.reports == []


# -- batching ----------------------------------------------------------------------------------


async def test_alerts_queued_behind_a_busy_provider_share_a_request(
        manual_engine: EngineHarness) -> None:
    provider = ScriptedProvider("sim", manual_engine.clock, gated=True)
    engine = await manual_engine.start(providers={"sim": provider}, max_in_flight=1)
    first = await engine.accept(parse_request({"message": "leak", "to": "+491701234560"}))
    await asyncio.wait_for(provider.entered.wait(), 5)
    provider.entered.clear()
    second = await engine.accept(parse_request({"message": "leak", "to": "+491701234561"}))
    third = await engine.accept(parse_request({"message": "leak", "to": "+491701234562"}))
    urgent = await engine.accept(parse_request({"message": "leak", "to": "+491701234563",
                                                "priority": "high"}))
    # high priority is not held behind the batch in flight: it takes the slot kept for it
    await asyncio.wait_for(provider.entered.wait(), 5)
    assert len(provider.batches) == 2
    assert engine.queue_depth() == 2
    provider.gate.set()
    await engine.drain()
    assert [sorted(item.alert_id for item in batch.items) for batch in provider.batches] == [
        [first.alert_id], [urgent.alert_id], sorted([second.alert_id, third.alert_id])]
    assert provider.batches[2].reference == f"{min(second.alert_id, third.alert_id)}+1"
    await manual_engine.advance(engine, 2)
    for accepted in (first, second, third, urgent):
        assert (await engine.report(accepted.alert_id)).state is AlertState.DELIVERED


async def test_requests_respect_the_provider_recipient_limit(
        manual_engine: EngineHarness) -> None:
    provider = ScriptedProvider("sim", manual_engine.clock, max_recipients=2)
    engine = await manual_engine.start(providers={"sim": provider})
    await manual_engine.send(engine, to=[f"+49170123456{n}" for n in range(5)])
    assert [len(batch.items) for batch in provider.batches] == [2, 2, 1]


# -- idempotency -------------------------------------------------------------------------------


async def test_same_id_twice_is_accepted_once(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    first = await manual_engine.send(engine, id="leak-1", to="+491701234560")
    again = await manual_engine.send(engine, id="leak-1", to="+491701234561", message="other")
    assert (first.alert_id, first.duplicate) == ("leak-1", False)
    assert (again.alert_id, again.duplicate, again.deliveries) == ("leak-1", True, 1)
    assert sim(engine).requests == 1
    assert engine.metrics["alerts_duplicate"] == 1
    await manual_engine.advance(engine, 2)
    later = await manual_engine.send(engine, id="leak-1", to="+491701234560")
    assert later.duplicate and later.report.state is AlertState.DELIVERED
    assert sim(engine).requests == 1


async def test_same_id_concurrently_is_accepted_once(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    request = parse_request({"id": "leak-2", "message": "m", "to": "+491701234560"})
    results = await asyncio.gather(*(engine.accept(request) for _ in range(5)))
    await engine.drain()
    assert sorted(r.duplicate for r in results) == [False, True, True, True, True]
    assert {r.alert_id for r in results} == {"leak-2"}
    assert sim(engine).requests == 1
    assert (await engine.store.stats())["alerts_total"] == 1


async def test_same_key_concurrently_is_accepted_once(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    request = parse_request({"message": "m", "to": "+491701234560"})
    results = await asyncio.gather(*(engine.accept(request, keys=["mqtt:42"])
                                     for _ in range(3)))
    await engine.drain()
    assert len({r.alert_id for r in results}) == 1
    assert sorted(r.duplicate for r in results) == [False, True, True]
    assert sim(engine).requests == 1
    again = await engine.accept(request, keys=["mqtt:42"])
    assert again.duplicate and again.alert_id == results[0].alert_id


async def test_a_refused_request_refuses_its_concurrent_duplicates(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    request = parse_request({"id": "bad", "message": "m", "to": "carol"})
    results = await asyncio.gather(engine.accept(request), engine.accept(request),
                                   return_exceptions=True)
    assert all(isinstance(r, ValidationError) for r in results)
    assert (await engine.store.stats())["alerts_total"] == 0


# -- personalization ---------------------------------------------------------------------------


async def test_personalization_per_recipient(manual_engine: EngineHarness) -> None:
    provider = ScriptedProvider("sim", manual_engine.clock)
    config = make_config(contacts={"alice": {"phone": "+491701234560",
                                             "personalization": {"room": "cellar"}}})
    engine = await manual_engine.start(config, providers={"sim": provider})
    await manual_engine.send(
        engine, to=["alice", "+491701234561"], title="${room}",
        message="Hi ${name}: leak in ${room} at ${number}, costs $5, ${ not a key}",
        personalization={"alice": {"name": "Alice"},
                         "+491701234561": {"name": "${room}", "room": "${number}"}})
    assert provider.texts == {
        "+491701234560": "cellar: Hi Alice: leak in cellar at +491701234560, costs $5, "
                         "${ not a key}",
        "+491701234561": "${number}: Hi ${room}: leak in ${number} at +491701234561, "
                         "costs $5, ${ not a key}",
    }, "values are inserted literally, never expanded again"


async def test_missing_personalization_key_is_a_clear_error(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    with pytest.raises(ValidationError) as caught:
        await engine.accept(parse_request({
            "message": "Hi ${firstname}", "to": ["+491701234560", "+491701234561"],
            "personalization": {"+491701234560": {"firstname": "Max"}}}))
    assert caught.value.field == "personalization"
    assert caught.value.reason == "no value for ${firstname} for recipient +491701234561"
    assert (await engine.store.stats())["alerts_total"] == 0
    assert sim(engine).requests == 0


async def test_missing_key_is_refused_for_voice_with_audio_too(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    with pytest.raises(ValidationError, match=r"no value for \$\{room\}"):
        await engine.accept(parse_request({
            "message": "Leak in ${room}", "to": "+491701234560", "channel": "voice",
            "audio_url": "https://example.org/leak.wav"}))
    assert (await engine.store.stats())["alerts_total"] == 0


# -- cancel, ack, resolve, not_before, expires -------------------------------------------------


async def test_cancel_before_sending(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    later = (T0 + timedelta(seconds=60)).isoformat()
    accepted = await manual_engine.send(engine, to="+491701234560", not_before=later)
    report = await engine.cancel(accepted.alert_id, by="alice")
    assert report.state is AlertState.CANCELLED and report.final
    assert by_number(report) == {"+491701234560": ("cancelled", None, "cancelled")}
    await manual_engine.advance(engine, 120)
    assert sim(engine).requests == 0
    assert (await engine.report(accepted.alert_id)).state is AlertState.CANCELLED


async def test_cancel_after_sending_keeps_what_is_under_way(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to="+491701234560")
    report = await engine.cancel(accepted.alert_id)
    assert report.status.cancelled and report.state is AlertState.IN_PROGRESS
    await manual_engine.advance(engine, 2)
    assert (await engine.report(accepted.alert_id)).state is AlertState.DELIVERED


async def test_ack_and_resolve(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    paged = await manual_engine.send(engine, to="+491701234569")
    report = await engine.ack(paged.alert_id, by="alice", via="mqtt")
    # acknowledged, but the call already placed is still followed to its end
    assert report.state is AlertState.ACKNOWLEDGED and not report.final
    assert report.to_json()["acknowledged"] == {"by": "alice", "via": "mqtt",
                                                "at": T0.isoformat()}
    second = await engine.ack(paged.alert_id, by="bob")
    assert second.status.acknowledged is not None and second.status.acknowledged.by == "alice"
    await manual_engine.advance(engine, 60)
    settled = await engine.report(paged.alert_id)
    assert settled.final and settled.state is AlertState.ACKNOWLEDGED
    assert settled.deliveries[0].state.value == "expired"
    fixed = await manual_engine.send(engine, to="+491701234569")
    assert (await engine.resolve(fixed.alert_id)).state is AlertState.RESOLVED
    assert (await engine.report(fixed.alert_id)).state is AlertState.RESOLVED


async def test_unknown_alerts(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    for action in (engine.ack, engine.cancel, engine.resolve, engine.report):
        with pytest.raises(NotFoundError, match="unknown alert 'nope'"):
            await action("nope")


async def test_not_before_holds_the_send(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    later = (T0 + timedelta(seconds=60)).isoformat()
    accepted = await manual_engine.send(engine, to="+491701234560", not_before=later)
    await manual_engine.advance(engine, 59)
    assert sim(engine).requests == 0
    await manual_engine.advance(engine, 1)
    assert sim(engine).requests == 1
    report = await engine.report(accepted.alert_id)
    assert report.deliveries[0].submitted_at == T0 + timedelta(seconds=60)


async def test_expired_before_it_could_be_sent(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    later = (T0 + timedelta(seconds=60)).isoformat()
    accepted = await manual_engine.send(engine, to="+491701234560", not_before=later,
                                        expires="30s")
    await manual_engine.advance(engine, 61)
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    assert by_number(report) == {"+491701234560": ("expired", None,
                                                   "expired before it could be sent")}
    assert sim(engine).requests == 0


async def test_expiry_shortens_the_tracking_deadline(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to="+491701234569", expires="5s")
    await manual_engine.advance(engine, 6)
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    assert report.deliveries[0].state is DeliveryState.EXPIRED
    assert report.deliveries[0].updated_at == T0 + timedelta(seconds=5)


async def test_wait_final_times_out(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to="+491701234569")
    with pytest.raises(TimeoutError):
        await engine.wait_final(accepted.alert_id, timeout=0.01)


# -- pushed status -----------------------------------------------------------------------------


async def test_pushed_status_is_matched_by_provider_ids(manual_engine: EngineHarness) -> None:
    provider = ScriptedProvider("push", manual_engine.clock, status=StatusMode.PUSH)
    config = make_config(providers={"push": {"type": "simulator"}})
    engine = await manual_engine.start(config, providers={"push": provider})
    accepted = await manual_engine.send(engine, to=["+491701234560", "+491701234561"])
    report = await engine.report(accepted.alert_id)
    first = report.deliveries[0]
    assert first.provider_message_id is not None
    matched = await engine.apply_push("push", [StatusUpdate(
        DeliveryState.FAILED, provider_message_id=first.provider_message_id,
        provider_status="NO_ANSWER", reason="no answer")])
    assert matched == 1
    assert by_number(await engine.report(accepted.alert_id))["+491701234560"] == (
        "failed", "NO_ANSWER", "no answer")
    assert await engine.apply_push("push", [StatusUpdate(
        DeliveryState.DELIVERED, provider_message_id="unknown")]) == 0
    assert await engine.apply_push("other", [StatusUpdate(
        DeliveryState.DELIVERED, provider_message_id=first.provider_message_id)]) == 0


# -- listeners and outbox sinks ----------------------------------------------------------------


async def test_listeners_sync_async_failing_and_unsubscribed(
        manual_engine: EngineHarness, caplog: pytest.LogCaptureFixture) -> None:
    engine = await manual_engine.start()
    seen_async: list[str] = []
    seen_late: list[str] = []

    async def async_listener(report: Report) -> None:
        seen_async.append(report.state.value)

    def broken_listener(report: Report) -> None:
        raise RuntimeError("listener bug")

    engine.subscribe(broken_listener)
    engine.subscribe(async_listener)
    unsubscribe = engine.subscribe(lambda r: seen_late.append(r.state.value))
    accepted = await manual_engine.send(engine, to="+491701234560")
    unsubscribe()
    await manual_engine.advance(engine, 2)
    assert seen_async == manual_engine.states(accepted.alert_id) == [
        "accepted", "in_progress", "delivered"]
    assert seen_late == ["accepted", "in_progress"]
    failures = [r for r in caplog.records if r.getMessage().startswith("report listener failed")]
    assert len(failures) == 3
    caplog.clear()  # the listener failures were expected


async def test_outbox_sink_messages_are_stored_with_each_change(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    engine.add_outbox_sink(lambda report: [(
        f"alertline/report/{report.alert.id}", json.dumps(report.to_json()).encode(), False)])
    accepted = await manual_engine.send(engine, to=["+491701234560", "+491701234568"])
    await manual_engine.advance(engine, 2)
    outbox = await engine.store.outbox()
    assert {topic for _, topic, _, _ in outbox} == {f"alertline/report/{accepted.alert_id}"}
    published = [json.loads(payload) for _, _, payload, _ in outbox]
    assert [p["state"] for p in published] == manual_engine.states(accepted.alert_id)
    assert published[-1]["state"] == "partially_delivered" and published[-1]["final"]
    assert published[-1]["counts"] == {"delivered": 1, "failed": 1}


async def test_metrics_and_gauges(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    await manual_engine.send(engine, id="a", to="+491701234569")
    await manual_engine.send(engine, id="a", to="+491701234569")
    assert engine.metrics["alerts_received"] == 2
    assert engine.metrics["provider_requests"] == 1
    assert engine.open_alerts == 1 and engine.queue_depth() == 0
    assert engine.tracker.tracked == 1


async def test_delivery_channels_follow_the_config_default(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start(make_config(defaults={"channel": "voice"}))
    accepted = await manual_engine.send(engine, to="+491701234560")
    assert [d.channel for d in (await engine.report(accepted.alert_id)).deliveries] == [
        Channel.VOICE]
