"""Guard rails: allowlist, caps that survive restarts, quiet hours, duplicate suppression.

Same setup as the escalation tests: the real engine and store, the simulator (or the Retarus
emulator over loopback HTTP), and a manual clock.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertline.config.sections import validate_config
from alertline.errors import ConfigError, ValidationError
from alertline.intake.request import parse_request
from alertline.model import AlertState, DeliveryState
from alertline.providers.simulator import SimulatorProvider
from tests.emulators.retarus_sms import RetarusSmsEmulator
from tests.engine.test_escalation import ALICE, BOB, Harness, retarus_provider

AUSTRIA = "+436641234567"
LATE_EVENING = datetime(2026, 1, 5, 22, 30, tzinfo=UTC)  # 23:30 in Berlin


def config(limits: dict[str, Any] | None = None, **sections: Any) -> dict[str, Any]:
    """The simulator, alice (quiet 22:00-07:00 Berlin time) and bob, and ``limits``."""
    result: dict[str, Any] = {
        "providers": {"sim": {"type": "simulator", "sms_delay": 1, "voice_delay": 3}},
        "contacts": {"alice": {"phone": ALICE, "timezone": "Europe/Berlin",
                               "quiet_hours": ["22:00/07:00"]},
                     "bob": {"phone": BOB}},
        "routes": {"leak": {"to": ["bob"]}},
        "limits": limits or {},
    }
    result.update(sections)
    return result


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Any]:
    made: list[Harness] = []

    async def build(cfg: dict[str, Any], start: datetime | None = None) -> Harness:
        harness = Harness(tmp_path, cfg)
        if start is not None:
            harness.clock.set(start)
        await harness.start()
        made.append(harness)
        return harness

    yield build
    for harness in made:
        await harness.close()


def simulator(harness: Harness) -> SimulatorProvider:
    provider = harness.engine.providers["sim"]
    assert isinstance(provider, SimulatorProvider)
    return provider


# -- allowlist -----------------------------------------------------------------------------

@pytest.mark.parametrize("allow", [["+49"], ["DE"], ["+4917012345", "+4917"], [ALICE, BOB]])
async def test_a_number_off_the_allowlist_is_rejected_with_the_rule(make: Any,
                                                                    allow: list[str]) -> None:
    harness = await make(config({"allow": allow}))
    alert_id = await harness.send(to=["bob", AUSTRIA])
    await harness.advance(2)
    report = await harness.report(alert_id)
    by_number = {d.recipient.number: d for d in report.deliveries}
    assert by_number[AUSTRIA].state is DeliveryState.REJECTED
    assert by_number[AUSTRIA].reason == "not on the allowlist (limits.allow)"
    assert by_number[AUSTRIA].submitted_at is None
    assert by_number[BOB].state is DeliveryState.DELIVERED
    assert report.state is AlertState.PARTIALLY_DELIVERED


async def test_without_an_allowlist_every_valid_number_passes(make: Any) -> None:
    harness = await make(config())
    alert_id = await harness.send(to=[AUSTRIA])
    await harness.advance(2)
    assert (await harness.report(alert_id)).state is AlertState.DELIVERED


async def test_a_listed_number_does_not_admit_a_longer_one(make: Any) -> None:
    harness = await make(config({"allow": ["+491709876543", "+43*"]}))
    alert_id = await harness.send(to=["+491709876543", "+4917098765430", AUSTRIA])
    await harness.advance(2)
    by_number = {d.recipient.number: d for d in (await harness.report(alert_id)).deliveries}
    assert by_number["+4917098765430"].state is DeliveryState.REJECTED
    assert by_number["+4917098765430"].reason == "not on the allowlist (limits.allow)"
    assert by_number["+491709876543"].state is DeliveryState.DELIVERED
    assert by_number[AUSTRIA].state is DeliveryState.DELIVERED


@pytest.mark.parametrize(("allow", "admitted"), [
    ([], False), (["+49"], False), (["DE"], False), (["+49*"], False),
    (["+49900*"], True), (["+499001234567"], True),
])
async def test_a_premium_rate_number_needs_an_explicit_entry(make: Any, allow: list[str],
                                                             admitted: bool) -> None:
    harness = await make(config({"allow": allow}))
    alert_id = await harness.send(to=["+499001234567"], channel="voice")
    await harness.advance(5)
    delivery = (await harness.report(alert_id)).deliveries[0]
    if admitted:
        assert delivery.state is DeliveryState.DELIVERED
    else:
        assert delivery.state is DeliveryState.REJECTED
        assert delivery.reason is not None and delivery.reason.startswith(
            "premium-rate number: refused unless limits.allow names it")
        assert delivery.submitted_at is None


# -- caps ----------------------------------------------------------------------------------

async def test_the_eleventh_call_over_a_cap_of_ten_is_rejected_also_after_restart(
        make: Any) -> None:
    harness = await make(config({"per_hour": {"voice": 10}}))
    calls = [await harness.send(to="bob", channel="voice") for _ in range(10)]
    eleventh = await harness.send(to="bob", channel="voice")
    texted = await harness.send(to="bob", channel="sms")
    await harness.advance(5)
    for alert_id in calls:
        assert (await harness.report(alert_id)).state is AlertState.DELIVERED
    report = await harness.report(eleventh)
    assert report.deliveries[0].state is DeliveryState.REJECTED
    assert report.deliveries[0].reason == \
        "cap of 10 voice calls per hour reached (limits.per_hour.voice)"
    assert report.state is AlertState.FAILED
    assert (await harness.report(texted)).state is AlertState.DELIVERED
    assert harness.engine.policy.usage()["limits.per_hour.voice"]["used"] == 10
    assert simulator(harness).requests == 11

    await harness.restart()
    twelfth = await harness.send(to="bob", channel="voice")
    assert (await harness.report(twelfth)).deliveries[0].reason == \
        "cap of 10 voice calls per hour reached (limits.per_hour.voice)"
    await harness.advance(3600)  # a new hour
    next_hour = await harness.send(to="bob", channel="voice")
    await harness.advance(5)
    assert (await harness.report(next_hour)).state is AlertState.DELIVERED


async def test_a_route_cap_names_the_route_and_spares_other_alerts(make: Any) -> None:
    harness = await make(config({"routes": {"leak": {"per_day": {"sms": 1}}}}))
    first = await harness.send(route="leak")
    second = await harness.send(route="leak", message="The leak got worse")
    direct = await harness.send(to="bob")
    await harness.advance(2)
    assert (await harness.report(first)).state is AlertState.DELIVERED
    assert (await harness.report(second)).deliveries[0].reason == \
        "cap of 1 SMS per day reached (limits.routes.leak.per_day.sms)"
    assert (await harness.report(direct)).state is AlertState.DELIVERED


# -- quiet hours ---------------------------------------------------------------------------

async def test_quiet_hours_hold_an_sms_until_the_window_ends(make: Any) -> None:
    harness = await make(config(), start=LATE_EVENING)
    alert_id = await harness.send(to="alice")
    delivery = (await harness.report(alert_id)).deliveries[0]
    assert delivery.state is DeliveryState.PENDING
    assert delivery.details["held_until"] == "2026-01-06T06:00:00+00:00"
    assert delivery.details["held_by"] == \
        "quiet hours 22:00/07:00 (contacts.alice.quiet_hours)"
    await harness.advance(3600)
    await harness.restart()  # the hold is re-derived from the stored delivery
    await harness.advance(6 * 3600 + 1799)
    assert (await harness.report(alert_id)).deliveries[0].state is DeliveryState.PENDING
    assert simulator(harness).requests == 0
    await harness.advance(1)
    delivery = (await harness.report(alert_id)).deliveries[0]
    assert delivery.state is DeliveryState.SUBMITTED
    assert delivery.submitted_at == datetime(2026, 1, 6, 6, 0, tzinfo=UTC)
    await harness.advance(2)
    assert (await harness.report(alert_id)).state is AlertState.DELIVERED


@pytest.mark.parametrize(("override", "held"), [("high", False), ("none", True)])
async def test_high_priority_overrides_quiet_hours_when_configured(make: Any, override: str,
                                                                   held: bool) -> None:
    harness = await make(config({"quiet_hours_override": override}), start=LATE_EVENING)
    alert_id = await harness.send(to="alice", priority="high")
    state = (await harness.report(alert_id)).deliveries[0].state
    assert state is (DeliveryState.PENDING if held else DeliveryState.SUBMITTED)


async def test_an_alert_interval_holds_a_contact_without_quiet_hours(make: Any) -> None:
    harness = await make(config(), start=LATE_EVENING)
    alert_id = await harness.send(
        to="bob", quiet_hours=["2026-01-05T22:00:00Z/2026-01-05T23:00:00Z"])
    await harness.advance(1799)
    assert (await harness.report(alert_id)).deliveries[0].state is DeliveryState.PENDING
    await harness.advance(1)
    delivery = (await harness.report(alert_id)).deliveries[0]
    assert delivery.submitted_at == datetime(2026, 1, 5, 23, 0, tzinfo=UTC)
    await harness.advance(2)
    assert (await harness.report(alert_id)).state is AlertState.DELIVERED


async def test_a_scheduling_provider_gets_blackout_periods_instead_of_a_hold(make: Any) -> None:
    async with RetarusSmsEmulator(user="acme", password="s3cr3t-Pa55word",
                                  step_seconds=None) as emu:
        cfg = config(routes={"leak": {"to": ["alice"], "provider": "retarus"}})
        cfg["providers"]["retarus"] = retarus_provider(emu)
        harness = await make(cfg, start=LATE_EVENING)
        alert_id = await harness.send(route="leak")
        delivery = (await harness.report(alert_id)).deliveries[0]
        assert delivery.state is DeliveryState.SUBMITTED
        assert "held_until" not in delivery.details
        body = [r for r in emu.requests if r.method == "POST"][-1].body
    assert body["options"]["blackoutPeriods"] == [
        "2026-01-05T22:00:00.000+01:00/2026-01-06T07:00:00.000+01:00",
        "2026-01-06T22:00:00.000+01:00/2026-01-07T07:00:00.000+01:00",
        "2026-01-07T22:00:00.000+01:00/2026-01-08T07:00:00.000+01:00"]


# -- duplicate suppression -----------------------------------------------------------------

async def test_the_same_route_and_message_within_the_window_is_a_duplicate(make: Any) -> None:
    harness = await make(config({"duplicate_window": "10m"}))
    engine = harness.engine
    first = await engine.accept(parse_request({"message": "Leak", "route": "leak"}))
    again = await engine.accept(parse_request({"message": "Leak ", "route": "leak"}))
    other = await engine.accept(parse_request({"message": "Smoke", "route": "leak"}))
    direct = await engine.accept(parse_request({"message": "Leak", "to": "bob"}))
    assert (again.alert_id, again.duplicate, first.duplicate) == (first.alert_id, True, False)
    assert other.alert_id != first.alert_id and not other.duplicate
    assert not direct.duplicate
    assert engine.metrics["alerts_duplicate"] == 1
    await harness.advance(600)
    later = await engine.accept(parse_request({"message": "Leak", "route": "leak"}))
    assert later.alert_id != first.alert_id and not later.duplicate


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize(("limits", "days", "accepted"), [
    ({}, 29, True), ({}, 31, False), ({"not_before_horizon": "60d"}, 59, True),
    ({"not_before_horizon": "1h"}, 1, False),
])
async def test_not_before_further_than_the_horizon_is_refused(
        make: Any, limits: dict[str, Any], days: int, accepted: bool) -> None:
    harness = await make(config(limits), start=LATE_EVENING)
    later = (LATE_EVENING + timedelta(days=days)).isoformat()
    request = parse_request({"message": "Leak", "to": "bob", "not_before": later})
    if accepted:
        assert not (await harness.engine.accept(request)).duplicate
        return
    with pytest.raises(ValidationError) as caught:
        await harness.engine.accept(request)
    assert caught.value.field == "not_before"
    assert "(limits.not_before_horizon)" in caught.value.reason


def test_a_contact_personalization_value_with_a_control_character_is_a_config_error() -> None:
    cfg = config()
    cfg["contacts"]["bob"]["personalization"] = {"room": "cellar\x00"}
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg, env={})
    assert dict(caught.value.problems)["contacts.bob.personalization.room"].startswith(
        "contains a control character")


def test_limits_config_errors_name_the_path() -> None:
    cfg = config({"allow": ["+49", "0049", "XX"], "per_hour": {"voice": -1, "fax": 3},
                  "timezone": "Mars/Olympus", "quiet_hours_override": "always"})
    cfg["contacts"]["bob"] = {"phone": BOB, "quiet_hours": ["22:00-07:00"], "timezone": "CET1"}
    with pytest.raises(ConfigError) as caught:
        validate_config(cfg, env={})
    problems = dict(caught.value.problems)
    assert problems["limits.allow.1"].startswith("'0049' is neither an E.164 number")
    assert "limits.allow.2" in problems
    assert problems["limits.per_hour.voice"] == "value must be at least 0"
    assert problems["limits.per_hour.fax"] == "unknown option"
    assert problems["limits.timezone"].startswith("unknown time zone 'Mars/Olympus'")
    assert problems["limits.quiet_hours_override"].startswith("high (high-priority")
    assert problems["contacts.bob.quiet_hours.0"].startswith("'22:00-07:00' is neither")
    assert problems["contacts.bob.timezone"].startswith("unknown time zone")

    with pytest.raises(ConfigError) as caught:
        validate_config(config({"routes": {"nope": {"per_hour": {"sms": 1}}}}), env={})
    assert caught.value.problems == [("limits.routes.nope", "unknown route 'nope'")]


@pytest.mark.parametrize("window", ["2026-01-05T22:00/soon", "22:00/25:00", "T"])
def test_a_request_with_a_malformed_window_is_refused(window: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_request({"message": "x", "to": "bob", "quiet_hours": [window]})
    assert caught.value.field == "quiet_hours"
