"""``schedule:<name>`` as a recipient: resolved when a step sends, not when the alert arrives."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alertline.config.sections import Config
from alertline.errors import ValidationError
from alertline.intake.request import parse_request
from tests.engine_harness import T0, EngineHarness, make_config

ALICE, BOB = "+491701234560", "+491701234561"

# T0 is 2026-01-01 12:00 UTC: hourly shifts from midnight make alice on call at 12:00, bob at 13:00
HOURLY: dict[str, Any] = {"time_zone": "UTC", "rotations": [
    {"members": ["alice", "bob"], "start": "2026-01-01T00:00", "shift": "1h"}]}


def config(**sections: Any) -> Config:
    return make_config(**{"contacts": {"alice": {"phone": ALICE}, "bob": {"phone": BOB}},
                          "schedules": {"hourly": HOURLY}, **sections})


async def test_each_escalation_step_pages_whoever_is_on_call_then(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start(config(
        routes={"ops": {"to": ["schedule:hourly"], "escalation": "page"}},
        escalations={"page": {"steps": [{"to": "schedule:hourly", "wait": "1h"},
                                        {"to": "schedule:hourly", "wait": "5m"}]}}))
    accepted = await manual_engine.send(engine, route="ops")
    report = await engine.report(accepted.alert_id)
    assert [d.recipient.number for d in report.deliveries] == [ALICE]
    await manual_engine.advance(engine, 3600)
    report = await engine.report(accepted.alert_id)
    assert [(d.recipient.number, d.recipient.contact, d.step) for d in report.deliveries] == [
        (ALICE, "alice", 0), (BOB, "bob", 1)], "step 2 went to whoever was on call at 13:00"


async def test_alert_to_a_schedule_goes_to_who_is_on_call(manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start(config())
    manual_engine.clock.advance(3600)
    accepted = await manual_engine.send(engine, to="schedule:hourly")
    report = await engine.report(accepted.alert_id)
    assert [(d.recipient.number, d.recipient.contact) for d in report.deliveries] == [(BOB, "bob")]


async def test_nobody_on_call_and_unknown_schedules_are_refused_by_name(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start(config(schedules={"hourly": HOURLY, "later": {
        "rotations": [{"members": ["alice"], "start": "2027-01-01T00:00", "shift": "1d"}]}}))
    with pytest.raises(ValidationError, match="nobody is on call in schedule 'later'") as caught:
        await engine.accept(parse_request({"message": "x", "to": "schedule:later"}))
    assert caught.value.field == "to[0]"
    with pytest.raises(ValidationError, match="unknown schedule 'nope'"):
        await engine.accept(parse_request({"message": "x", "to": ["schedule:nope"]}))


LATER: dict[str, Any] = {"rotations": [
    {"members": ["alice"], "start": "2027-01-01T00:00", "shift": "1d"}]}


async def test_an_empty_schedule_beside_other_targets_pages_the_others(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start(config(schedules={"hourly": HOURLY, "later": LATER}))
    accepted = await manual_engine.send(engine, to=["schedule:later", "bob"])
    report = await engine.report(accepted.alert_id)
    assert [d.recipient.number for d in report.deliveries] == [BOB]


async def test_an_escalation_step_with_nobody_on_call_is_skipped_not_fatal(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start(config(
        schedules={"hourly": HOURLY, "later": LATER},
        escalations={"page": {"steps": [{"to": "alice", "wait": "5m"},
                                        {"to": "schedule:later", "wait": "5m"},
                                        {"to": "bob", "wait": "5m"}]}}))
    accepted = await manual_engine.send(engine, to="alice", escalation="page")
    await manual_engine.advance(engine, 300)
    report = await engine.report(accepted.alert_id)
    assert [(d.recipient.number, d.step) for d in report.deliveries] == [(ALICE, 0), (BOB, 2)]
    assert report.deliveries[1].created_at == T0 + timedelta(minutes=5), "at once, not later"
