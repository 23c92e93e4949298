"""Escalation policies, acknowledgement (API and keypad), restart, failover and SMS fallback.

The engine runs on its real SQLite store with the simulator or the provider emulators over
loopback HTTP; time is a ManualClock driven through a ManualScheduler, so nothing waits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from alertline.clock import ManualClock
from alertline.config.sections import validate_config
from alertline.engine.core import Engine
from alertline.engine.scheduler import ManualScheduler
from alertline.errors import ConfigError, ValidationError
from alertline.http.postbacks import PostbackReceiver, aiohttp_routes, callback_base_url
from alertline.intake.request import parse_request
from alertline.model import AlertState, Channel, DeliveryState, Report
from alertline.providers.base import ProviderContext
from alertline.store.sqlite import SqliteStore
from tests.emulators.fortytwo import FortytwoVoiceEmulator
from tests.emulators.retarus_sms import RetarusSmsEmulator

ALICE, BOB, CAROL = "+491701234560", "+491701234561", "+491701234568"  # carol: busy (8)
FT_TOKEN = "7c1e5a2b-93d4-4f0a-b6e8-2d9c0f1a4b57"
POSTBACK_TOKEN = "pb-9f8e7d6c5b4a39281706"
RETARUS_PASSWORD = "s3cr3t-Pa55word"
TEXT = "Water leak in the basement"


def base_config(**sections: Any) -> dict[str, Any]:
    """Three contacts, the simulator, and the three-step ``page`` policy."""
    config: dict[str, Any] = {
        "providers": {"sim": {"type": "simulator", "sms_delay": 1, "voice_delay": 3,
                              "deadline": 60}},
        "contacts": {"alice": {"phone": ALICE}, "bob": {"phone": BOB},
                     "carol": {"phone": CAROL}},
        "routes": {"leak": {"to": ["alice"], "escalation": "page"}},
        "escalations": {"page": {"steps": [
            {"to": "alice", "channel": "sms", "wait": "5m"},
            {"to": "alice", "channel": "voice", "wait": "5m"},
            {"to": "bob", "channel": "voice", "wait": "10m"}]}},
    }
    config.update(sections)
    return config


class Harness:
    """Engines on one store file and one manual clock (a new engine = a restart)."""

    def __init__(self, tmp_path: Path, config: dict[str, Any]) -> None:
        self.path = tmp_path / "alertline.db"
        self.config = validate_config(config, env={})
        self.clock = ManualClock()
        self.context = ProviderContext(clock=self.clock)
        self.engines: list[Engine] = []

    async def start(self) -> Engine:
        scheduler = ManualScheduler(self.clock)
        engine = Engine(self.config, SqliteStore(self.path, exclusive=True), clock=self.clock,
                        scheduler=scheduler, context=self.context)
        await engine.start()
        self.engines.append(engine)
        return engine

    @property
    def engine(self) -> Engine:
        return self.engines[-1]

    async def advance(self, seconds: float) -> None:
        scheduler = self.engine.scheduler
        assert isinstance(scheduler, ManualScheduler)
        await scheduler.advance(seconds)
        await self.engine.drain()

    async def restart(self) -> Engine:
        await self.engine.stop()
        return await self.start()

    async def send(self, **request: Any) -> str:
        accepted = await self.engine.accept(parse_request({"message": TEXT, **request}))
        await self.engine.drain()
        return accepted.alert_id

    async def report(self, alert_id: str) -> Report:
        return await self.engine.report(alert_id)

    async def close(self) -> None:
        for engine in self.engines:
            if engine._started:
                await engine.stop()


@pytest.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    made = Harness(tmp_path, base_config())
    await made.start()
    yield made
    await made.close()


def contacted(report: Report) -> list[tuple[int | None, str | None, str]]:
    """(step, contact, channel) of every delivery, in order."""
    return [(d.step, d.recipient.contact, d.channel.value) for d in report.deliveries]


# -- the policy runs its steps -------------------------------------------------------------

async def test_escalates_sms_then_call_then_next_contact(harness: Harness) -> None:
    alert_id = await harness.send(route="leak")
    report = await harness.report(alert_id)
    assert contacted(report) == [(0, "alice", "sms")]
    assert report.status.escalation is not None
    assert report.status.escalation["active"] is True
    assert report.status.escalation["next_at"] == "2026-01-01T12:05:00+00:00"

    await harness.advance(299)
    report = await harness.report(alert_id)
    assert contacted(report) == [(0, "alice", "sms")]
    assert report.deliveries[0].state is DeliveryState.DELIVERED
    assert report.state is AlertState.IN_PROGRESS  # delivered, but nobody acknowledged

    await harness.advance(1)
    assert contacted(await harness.report(alert_id)) == [(0, "alice", "sms"),
                                                         (1, "alice", "voice")]
    await harness.advance(300)
    report = await harness.report(alert_id)
    assert contacted(report) == [(0, "alice", "sms"), (1, "alice", "voice"), (2, "bob", "voice")]
    escalation = report.status.escalation
    assert escalation is not None
    assert (escalation["step"], escalation["round"], escalation["active"]) == (2, 0, True)
    assert [(c["step"], c["to"], c["channels"]) for c in escalation["contacted"]] == [
        (0, ["alice"], ["sms"]), (1, ["alice"], ["voice"]), (2, ["bob"], ["voice"])]

    await harness.advance(600)
    report = await harness.report(alert_id)
    assert report.state is AlertState.FAILED
    assert report.final
    assert report.status.escalation is not None
    assert report.status.escalation["outcome"] == "not_acknowledged"
    assert report.to_json()["escalation"]["active"] is False
    assert len(report.deliveries) == 3
    assert (await harness.engine.store.load_open_work()).timers == []


async def test_repeat_runs_the_steps_again(tmp_path: Path) -> None:
    config = base_config(routes={}, escalations={"twice": {"repeat": 1, "steps": [
        {"to": "alice", "channel": "sms", "wait": "1m"}]}})
    harness = Harness(tmp_path, config)
    await harness.start()
    try:
        alert_id = await harness.send(to="alice", escalation="twice")
        await harness.advance(60)
        report = await harness.report(alert_id)
        assert [(d.step, d.details["round"]) for d in report.deliveries] == [(0, 0), (0, 1)]
        await harness.advance(60)
        report = await harness.report(alert_id)
        assert report.state is AlertState.FAILED
        assert len(report.deliveries) == 2
    finally:
        await harness.close()


# -- what stops it -------------------------------------------------------------------------

@pytest.mark.parametrize(("action", "state", "outcome"), [
    ("ack", AlertState.ACKNOWLEDGED, "acknowledged"),
    ("resolve", AlertState.RESOLVED, "resolved"),
    ("cancel", AlertState.IN_PROGRESS, "cancelled"),
])
async def test_ack_resolve_and_cancel_stop_at_once(harness: Harness, action: str,
                                                   state: AlertState, outcome: str) -> None:
    alert_id = await harness.send(route="leak")
    await harness.advance(300)
    assert len((await harness.report(alert_id)).deliveries) == 2
    engine = harness.engine
    if action == "ack":
        report = await engine.ack(alert_id, by="alice", via="mqtt")
        assert report.status.acknowledged is not None
        assert (report.status.acknowledged.by, report.status.acknowledged.via) == ("alice", "mqtt")
    else:
        report = await getattr(engine, action)(alert_id, by="ops")
    assert report.state is state  # cancel: the call in flight still ends on its own
    assert report.status.escalation is not None
    assert report.status.escalation["outcome"] == outcome
    assert report.status.escalation["active"] is False
    await harness.advance(3600)
    report = await harness.report(alert_id)
    assert contacted(report) == [(0, "alice", "sms"), (1, "alice", "voice")]
    assert report.final
    assert (await engine.store.load_open_work()).timers == []


async def test_restart_mid_escalation_resumes_the_timer(harness: Harness) -> None:
    alert_id = await harness.send(route="leak")
    await harness.advance(300)
    stored = (await harness.engine.store.load_open_work()).timers
    assert [(key, due.isoformat(), data["position"]) for key, due, data in stored] == [
        (f"escalation:{alert_id}", "2026-01-01T12:10:00+00:00", 2)]
    await harness.advance(10)
    engine = await harness.restart()
    await harness.advance(289)
    assert len((await engine.report(alert_id)).deliveries) == 2
    await harness.advance(1)
    report = await engine.report(alert_id)
    assert contacted(report) == [(0, "alice", "sms"), (1, "alice", "voice"), (2, "bob", "voice")]
    assert report.deliveries[2].created_at.isoformat() == "2026-01-01T12:10:00+00:00"
    await engine.ack(alert_id, by="bob", via="cli")
    assert (await engine.report(alert_id)).state is AlertState.ACKNOWLEDGED


async def test_advance_on_failure_moves_on_without_waiting(tmp_path: Path) -> None:
    config = base_config(routes={}, escalations={"fast": {"advance_on_failure": True, "steps": [
        {"to": "carol", "channel": "voice", "wait": "10m"},
        {"to": "bob", "channel": "voice", "wait": "10m"}]}})
    harness = Harness(tmp_path, config)
    await harness.start()
    try:
        alert_id = await harness.send(to="carol", escalation="fast")
        await harness.advance(5)  # carol's line is busy after 3 s
        report = await harness.report(alert_id)
        assert report.deliveries[0].reason == "busy"
        assert contacted(report) == [(0, "carol", "voice"), (1, "bob", "voice")]
        assert report.deliveries[1].created_at < harness.clock.now()
    finally:
        await harness.close()


# -- keypad acknowledgement through Fortytwo's postbacks -----------------------------------

@pytest.mark.parametrize(("pressed", "acknowledged"), [("1", True), ("2", False)])
async def test_keypad_ack_from_a_fortytwo_postback(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                   pressed: str, acknowledged: bool) -> None:
    caplog.set_level(logging.DEBUG)
    config = base_config(routes={"page": {"to": ["alice"], "provider": ["ft", "sim"],
                                          "escalation": "page"}})
    config["providers"]["ft"] = {"type": "fortytwo_voice", "token": FT_TOKEN,
                                 "enable_menu_response": True}
    harness = Harness(tmp_path, config)
    async with FortytwoVoiceEmulator(FT_TOKEN, now=lambda: harness.clock.now().timestamp(),
                                     menu_number=ALICE.lstrip("+"), keypress=pressed) as emu:
        config["providers"]["ft"]["base_url"] = emu.base_url
        harness.config = validate_config(config, env={})
        engine = await harness.start()
        receiver = PostbackReceiver(POSTBACK_TOKEN, engine, engine.providers.get)
        app = web.Application()
        app.add_routes(aiohttp_routes(receiver))
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        port = runner.addresses[0][1]
        harness.context.callback_base_url = callback_base_url(f"http://127.0.0.1:{port}",
                                                              POSTBACK_TOKEN)
        try:
            alert_id = await harness.send(route="page")
            await harness.advance(300)  # step 2: the call through Fortytwo
            job = emu.requests[-1].body
            assert job["voice_content"]["tts_text"] == f"{TEXT}. Press 1 to acknowledge."
            assert job["voice_content"]["enable_menu_response"] is True
            await emu.advance()  # ringing
            await emu.advance()  # answered, key pressed
            report = await harness.report(alert_id)
            call = report.deliveries[1]
            assert (call.provider, call.state, call.details["keypress"]) == (
                "ft", DeliveryState.DELIVERED, pressed)
            await harness.advance(3600)
            report = await harness.report(alert_id)
            if acknowledged:
                assert report.state is AlertState.ACKNOWLEDGED
                assert report.status.acknowledged is not None
                assert (report.status.acknowledged.by,
                        report.status.acknowledged.via) == ("alice", "keypad")
                assert len(report.deliveries) == 2  # bob was never called
            else:
                assert report.status.acknowledged is None
                assert contacted(report)[-1] == (2, "bob", "voice")
        finally:
            await harness.close()
            await runner.cleanup()
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("alertline"))
    assert FT_TOKEN not in json.dumps(report.to_json()) + logged
    assert POSTBACK_TOKEN not in json.dumps(report.to_json())


# -- failover and voice→SMS fallback -------------------------------------------------------

@pytest.fixture
async def retarus(tmp_path: Path) -> AsyncIterator[RetarusSmsEmulator]:
    async with RetarusSmsEmulator(user="acme", password=RETARUS_PASSWORD,
                                  step_seconds=None) as emulator:
        yield emulator


def retarus_provider(emu: RetarusSmsEmulator) -> dict[str, Any]:
    return {"type": "retarus_sms", "username": "acme", "password": RETARUS_PASSWORD,
            "base_url": emu.base_url, "status_urls": [emu.base_url], "poll_interval": 5,
            "retry_attempts": 2, "retry_base_delay": 0.1}


async def test_failover_to_the_second_provider_on_5xx(
        tmp_path: Path, retarus: RetarusSmsEmulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    config = base_config(routes={"leak": {"to": ["alice", "bob"], "channel": "sms",
                                          "provider": ["retarus", "sim"]}})
    config["providers"]["retarus"] = retarus_provider(retarus)
    harness = Harness(tmp_path, config)
    await harness.start()
    retarus.fail_next(503, count=10, method="POST")
    try:
        alert_id = await harness.send(route="leak")
        await harness.advance(2)
        report = await harness.report(alert_id)
    finally:
        await harness.close()
    assert retarus.count("POST", "/jobs") == 2  # both attempts answered 503
    assert report.state is AlertState.DELIVERED
    for delivery in report.to_json()["deliveries"]:
        assert delivery["provider"] == "sim"
        assert delivery["details"]["failover_from"] == "retarus"
        assert "503" in delivery["details"]["failover_reason"]
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("alertline"))
    assert RETARUS_PASSWORD not in json.dumps(report.to_json()) + logged


async def test_failed_call_falls_back_to_sms(tmp_path: Path,
                                             retarus: RetarusSmsEmulator) -> None:
    config = base_config(routes={"call": {"to": ["carol"], "channel": "voice",
                                          "provider": ["retarus", "sim"],
                                          "fallback_sms": True}})
    config["providers"]["retarus"] = retarus_provider(retarus)
    harness = Harness(tmp_path, config)
    await harness.start()
    try:
        alert_id = await harness.send(route="call")
        await harness.advance(5)  # the simulated call is busy after 3 s
        report = await harness.report(alert_id)
        call, sms = report.deliveries
        assert (call.channel, call.provider, call.state) == (
            Channel.VOICE, "sim", DeliveryState.FAILED)
        assert (sms.channel, sms.provider, sms.details["fallback_for"]) == (
            Channel.SMS, "retarus", call.id)
        assert sms.recipient.number == CAROL
        assert not report.final
        retarus.advance(steps=2)
        await harness.advance(10)
        report = await harness.report(alert_id)
        assert report.deliveries[1].state is DeliveryState.DELIVERED
        assert report.state is AlertState.PARTIALLY_DELIVERED
    finally:
        await harness.close()


# -- bad input -----------------------------------------------------------------------------

def test_escalation_config_errors_name_the_path() -> None:
    config = base_config(escalations={"page": {"repeat": 11, "ack_digit": "x", "steps": [
        {"to": "nobody", "channel": "fax", "wait": "soon"}]}})
    with pytest.raises(ConfigError) as caught:
        validate_config(config, env={})
    problems = dict(caught.value.problems)
    assert problems["escalations.page.repeat"] == "value must be at most 10"
    assert problems["escalations.page.ack_digit"] == "one digit 0-9"
    assert problems["escalations.page.steps.0.channel"] == "sms, voice or both"
    assert problems["escalations.page.steps.0.wait"].startswith("expected a duration")

    config = base_config(escalations={"page": {"steps": [{"to": "nobody"}]}})
    with pytest.raises(ConfigError) as caught:
        validate_config(config, env={})
    assert ("escalations.page.steps.0.to.0", "unknown contact or group 'nobody'") in \
        caught.value.problems


async def test_a_step_no_provider_can_send_is_refused_at_accept(tmp_path: Path,
                                                                retarus: RetarusSmsEmulator
                                                                ) -> None:
    config = base_config(routes={"leak": {"to": ["alice"], "provider": "retarus",
                                          "escalation": "page"}})
    config["providers"]["retarus"] = retarus_provider(retarus)
    harness = Harness(tmp_path, config)
    await harness.start()
    try:
        with pytest.raises(ValidationError) as caught:
            await harness.send(route="leak")
        assert caught.value.field == "escalation"
        assert "step 2 of escalation 'page'" in caught.value.reason
        assert "voice" in caught.value.reason
        assert harness.engine.open_alerts == 0
    finally:
        await harness.close()
