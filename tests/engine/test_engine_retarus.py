"""The engine with the Retarus REST adapter and emulator: as few jobs as the API allows."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from typing import Any

from alertline.intake.request import parse_request
from alertline.model import AlertState, DeliveryState
from alertline.providers.base import Batch, ProviderContext, Submission
from alertline.providers.retarus.sms import RetarusSmsProvider
from tests.emulators.retarus_sms import RetarusSmsEmulator
from tests.engine_harness import EngineHarness, make_config

USER, PASSWORD = "acme", "retarus-engine-secret"


async def test_an_alert_to_7500_recipients_makes_exactly_three_jobs(
        manual_engine: EngineHarness) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=manual_engine.clock,
                                  step_seconds=1.0) as emulator:
        config = make_config(providers={"retarus": {
            "type": "retarus_sms", "username": USER, "password": PASSWORD,
            "base_url": emulator.base_url, "status_urls": [emulator.base_url],
            "poll_interval": 5}})
        engine = await manual_engine.start(config)
        numbers = [f"+4917{index:08d}0" for index in range(7500)]  # 0 at the end: delivered
        accepted = await manual_engine.send(engine, to=numbers)
        assert accepted.deliveries == 7500

        posts = [r for r in emulator.requests if r.method == "POST"]
        sizes = sorted(sum(len(m["recipients"]) for m in r.body["messages"]) for r in posts)
        assert sizes == [1500, 3000, 3000]  # the 3,000-recipient limit, no more requests

        await manual_engine.advance(engine, 60)
        assert not [r for r in emulator.requests if r.method == "POST"][3:]  # polls only
        report = await engine.report(accepted.alert_id)
        assert report.final and report.state is AlertState.DELIVERED
        assert Counter(d.state for d in report.deliveries) == {DeliveryState.DELIVERED: 7500}
        assert len({d.provider_ref for d in report.deliveries}) == 3


async def test_running_at_the_tracking_deadline_ends_as_sent(
        manual_engine: EngineHarness) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=manual_engine.clock,
                                  step_seconds=1.0) as emulator:
        # 8: sent, the delivery notification never comes; 9: never leaves OPEN
        emulator.outcomes["8"] = ((("OPEN", ""),), (("OPEN", ""), ("RUNNING", "SUC_ACC")))
        config = make_config(providers={"retarus": {
            "type": "retarus_sms", "username": USER, "password": PASSWORD,
            "base_url": emulator.base_url, "status_urls": [emulator.base_url],
            "poll_interval": 5, "tracking_deadline": 120}})
        engine = await manual_engine.start(config)
        accepted = await manual_engine.send(engine, to=["+491701234568", "+491701234569"])
        await manual_engine.advance(engine, 60)
        report = await engine.report(accepted.alert_id)
        assert {d.provider_status for d in report.deliveries} == {"RUNNING SUC_ACC", "OPEN"}
        assert not report.final
        await manual_engine.advance(engine, 120)
        report = await engine.report(accepted.alert_id)
        states = {d.recipient.number: (d.state, d.reason) for d in report.deliveries}
        assert states["+491701234568"] == (
            DeliveryState.SENT, "sent, but no delivery notification was received before the "
            "tracking deadline")
        assert states["+491701234569"][0] is DeliveryState.EXPIRED
        assert report.final


class DyingRetarus(RetarusSmsProvider):
    """Retarus accepts the job, then the daemon dies before it stores the answer."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    async def submit(self, batch: Batch) -> Submission:
        """Send for real, then hang until the test kills the task."""
        await super().submit(batch)
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        self.sent.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_in_doubt_job_behind_1000_others_is_found_and_not_sent_twice(
        manual_engine: EngineHarness) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=manual_engine.clock,
                                  step_seconds=1.0) as emulator:
        options = {"type": "retarus_sms", "username": USER, "password": PASSWORD,
                   "base_url": emulator.base_url, "status_urls": [emulator.base_url],
                   "poll_interval": 5}
        config = make_config(providers={"retarus": options})
        dying = DyingRetarus("retarus", RetarusSmsProvider.validate_options(
            {k: v for k, v in options.items() if k != "type"}),
            ProviderContext(clock=manual_engine.clock))
        engine = await manual_engine.start(config, providers={"retarus": dying})
        emulator.seed_jobs(1200)  # a storm: 1,200 jobs listed before ours
        accepted = await engine.accept(parse_request({"message": "Leak",
                                                      "to": "+491701234560"}))
        await asyncio.wait_for(dying.sent.wait(), 5)
        for task in dying.tasks:  # kill -9: the job id is never stored
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await engine.stop()
        await dying.aclose()

        restarted = await manual_engine.start(config)
        await manual_engine.advance(restarted, 30)
        report = await restarted.report(accepted.alert_id)
        assert report.final and report.state is AlertState.DELIVERED
        ours = [job for job in emulator.jobs.values()
                if any(r.dst == "+491701234560" for r in job.recipients)]
        assert len(ours) == 1  # no second SMS
        assert report.deliveries[0].provider_ref == ours[0].job_id
        offsets = {r.query.get("offset") for r in emulator.requests if r.method == "GET"
                   and r.path.endswith("/jobs")}
        assert offsets == {"0", "1000"}


async def test_unicode_alert_goes_as_utf16_and_the_report_shows_its_parts(
        manual_engine: EngineHarness) -> None:
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=manual_engine.clock,
                                  step_seconds=1.0) as emulator:  # account default: REFUSE
        config = make_config(providers={"retarus": {
            "type": "retarus_sms", "username": USER, "password": PASSWORD,
            "base_url": emulator.base_url, "status_urls": [emulator.base_url],
            "poll_interval": 5}})
        engine = await manual_engine.start(config)
        accepted = await manual_engine.send(engine, to=["+491701234560"],
                                            message="Протечка воды в подвале! " * 4)
        await manual_engine.advance(engine, 30)
        report = await engine.report(accepted.alert_id)
        assert report.state is AlertState.DELIVERED
        details = report.deliveries[0].details
        assert (details["encoding"], details["parts"]) == ("UCS-2", 2)
        assert report.to_json()["deliveries"][0]["details"]["parts"] == 2
