"""The engine after a restart, a crash mid-submission, and a failing provider."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
from datetime import datetime, timedelta
from typing import Any

import pytest

from alertline.engine.core import Engine
from alertline.errors import AuthError, RejectedError, TransientError
from alertline.intake.request import parse_request
from alertline.model import AlertState, DeliveryState
from alertline.providers.base import Provider, Submission, SubmittedItem
from alertline.providers.simulator import SimulatorProvider
from tests.engine_harness import SIM_OPTIONS, T0, EngineHarness, ScriptedProvider, make_config

pytestmark = pytest.mark.usefixtures("no_engine_errors")


def submissions(harness: EngineHarness) -> int:
    with sqlite3.connect(harness.path) as conn:
        count: int = conn.execute("SELECT COUNT(*) FROM submissions").fetchone()[0]
    return count


async def test_restart_resumes_tracking_without_resubmitting(
        manual_engine: EngineHarness) -> None:
    first_sim = manual_engine.simulator(sms_delay=10)
    engine = await manual_engine.start(providers={"sim": first_sim})
    accepted = await manual_engine.send(engine, id="leak-7",
                                        to=["+491701234560", "+491701234568"])
    await manual_engine.advance(engine, 3)
    submitted = await engine.report(accepted.alert_id)
    assert {d.state for d in submitted.deliveries} == {DeliveryState.SUBMITTED}
    await engine.stop()

    second_sim = manual_engine.simulator(sms_delay=10)
    restarted = await manual_engine.start(providers={"sim": second_sim})
    resumed = await restarted.report(accepted.alert_id)
    assert resumed.state is AlertState.IN_PROGRESS
    assert restarted.open_alerts == 1
    await manual_engine.advance(restarted, 10)
    final = await restarted.wait_final(accepted.alert_id, timeout=10)
    assert {d.recipient.number: d.state.value for d in final.deliveries} == {
        "+491701234560": "delivered", "+491701234568": "failed"}
    assert [d.provider_ref for d in final.deliveries] == \
        [d.provider_ref for d in submitted.deliveries], "the same provider job, followed on"
    assert (first_sim.requests, second_sim.requests) == (1, 0)
    assert submissions(manual_engine) == 1
    assert all(d.attempts == 1 for d in final.deliveries)
    again = await restarted.accept(parse_request({"id": "leak-7", "message": "m",
                                                  "to": "+491701234560"}))
    assert again.duplicate and second_sim.requests == 0


async def test_restart_sends_what_was_still_queued(manual_engine: EngineHarness) -> None:
    first_sim = manual_engine.simulator()
    engine = await manual_engine.start(providers={"sim": first_sim})
    later = (T0 + timedelta(seconds=60)).isoformat()
    accepted = await manual_engine.send(engine, to="+491701234560", not_before=later)
    await engine.stop()
    second_sim = manual_engine.simulator()
    restarted = await manual_engine.start(providers={"sim": second_sim})
    await manual_engine.advance(restarted, 59)
    assert second_sim.requests == 0, "the hold survives the restart"
    await manual_engine.advance(restarted, 5)
    assert (await restarted.report(accepted.alert_id)).state is AlertState.DELIVERED
    assert (first_sim.requests, second_sim.requests) == (0, 1)


async def test_restart_expires_deliveries_past_their_deadline(
        manual_engine: EngineHarness) -> None:
    engine = await manual_engine.start()
    accepted = await manual_engine.send(engine, to="+491701234569")
    await engine.stop()
    manual_engine.clock.advance(3600)  # down for an hour
    restarted = await manual_engine.start()
    await manual_engine.advance(restarted, 0)
    report = await restarted.wait_final(accepted.alert_id, timeout=10)
    assert report.deliveries[0].state is DeliveryState.EXPIRED
    assert "last: ACCEPTED" in (report.deliveries[0].reason or "")


async def crash_mid_submission(harness: EngineHarness, *, idempotent: bool) -> str:
    """Accept an alert, let the provider hang in ``submit``, then die without a word."""
    hanging = ScriptedProvider("sim", harness.clock, gated=True, idempotent=idempotent)
    engine = await harness.start(providers={"sim": hanging})
    accepted = await engine.accept(parse_request({"message": "m", "to": "+491701234560"}))
    await asyncio.wait_for(hanging.entered.wait(), 5)
    for task in hanging.blocked:  # the process dies: the request's outcome is never recorded
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await engine.stop()
    return accepted.alert_id


async def test_in_doubt_submission_is_not_repeated(manual_engine: EngineHarness) -> None:
    alert_id = await crash_mid_submission(manual_engine, idempotent=False)
    after = ScriptedProvider("sim", manual_engine.clock)
    restarted = await manual_engine.start(providers={"sim": after})
    await restarted.drain()
    report = await restarted.wait_final(alert_id, timeout=10)
    delivery = report.deliveries[0]
    assert delivery.state is DeliveryState.FAILED
    assert delivery.reason is not None and "interrupted while being submitted" in delivery.reason
    assert after.batches == [], "a call or SMS that may have gone out is not sent twice"


async def test_in_doubt_submission_is_repeated_where_the_provider_deduplicates(
        manual_engine: EngineHarness) -> None:
    alert_id = await crash_mid_submission(manual_engine, idempotent=True)
    after = ScriptedProvider("sim", manual_engine.clock, idempotent=True)
    restarted = await manual_engine.start(providers={"sim": after})
    await manual_engine.advance(restarted, 2)
    report = await restarted.wait_final(alert_id, timeout=10)
    assert report.state is AlertState.DELIVERED
    assert [[item.delivery_id for item in b.items] for b in after.batches] == [[f"{alert_id}-1"]]


class ReconcilingProvider(ScriptedProvider):
    """A provider whose API can say which deliveries it received (by our reference)."""

    def __init__(self, *args: Any, received: set[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = received
        self.asked: list[list[str]] = []

    async def find_submitted(self, items: list[SubmittedItem],
                             since: datetime) -> list[Submission]:
        """The items this provider already has, under the job it gave them."""
        self.asked.append([item.delivery_id for item in items])
        have = tuple(SubmittedItem(item.delivery_id, item.number, f"job-1-{item.delivery_id}")
                     for item in items if item.delivery_id in self.received)
        now = self.context.clock.now()
        return [Submission(provider_ref="job-1", items=have, submitted_at=now)] if have else []


@pytest.mark.parametrize("provider_has_it", [True, False])
async def test_in_doubt_submission_is_settled_by_asking_the_provider(
        manual_engine: EngineHarness, provider_has_it: bool) -> None:
    alert_id = await crash_mid_submission(manual_engine, idempotent=False)
    delivery_id = f"{alert_id}-1"
    after = ReconcilingProvider("sim", manual_engine.clock,
                                received={delivery_id} if provider_has_it else set())
    restarted = await manual_engine.start(providers={"sim": after})
    await manual_engine.advance(restarted, 2)
    report = await restarted.wait_final(alert_id, timeout=10)
    assert after.asked == [[delivery_id]]
    assert report.state is AlertState.DELIVERED
    if provider_has_it:  # tracked under the job the provider already had: not sent again
        assert after.batches == []
        assert report.deliveries[0].provider_ref == "job-1"
    else:  # the provider never got it: sent now, once
        assert [[i.delivery_id for i in b.items] for b in after.batches] == [[delivery_id]]


# -- failover ----------------------------------------------------------------------------------

FAILOVER_CONFIG = {
    "providers": {"flaky": {"type": "simulator"}, "sim": dict(SIM_OPTIONS)},
    "routes": {"leak": {"to": ["+491701234560"], "provider": ["flaky", "sim"]}},
}


async def start_failover(harness: EngineHarness, error: Exception) -> tuple[
        ScriptedProvider, SimulatorProvider, Engine]:
    flaky = ScriptedProvider("flaky", harness.clock, error=error)
    backup = harness.simulator()
    providers: dict[str, Provider] = {"flaky": flaky, "sim": backup}
    engine = await harness.start(make_config(**FAILOVER_CONFIG), providers=providers)
    return flaky, backup, engine


@pytest.mark.parametrize("error", [
    TransientError("flaky", "HTTP 503 from upstream", status=503),
    AuthError("flaky", "credentials rejected", status=401),
])
async def test_failover_to_the_next_provider_of_the_route(
        manual_engine: EngineHarness, error: Exception) -> None:
    flaky, backup, engine = await start_failover(manual_engine, error)
    accepted = await manual_engine.send(engine, route="leak")
    assert (len(flaky.batches), backup.requests) == (1, 1)
    await manual_engine.advance(engine, 2)
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    delivery = report.deliveries[0]
    assert (delivery.state, delivery.provider) == (DeliveryState.DELIVERED, "sim")
    assert delivery.details["failover_from"] == "flaky"
    assert str(error) in delivery.details["failover_reason"]


async def test_failover_when_no_route_names_the_provider(manual_engine: EngineHarness) -> None:
    flaky, backup, engine = await start_failover(manual_engine,
                                                 TransientError("flaky", "timeout"))
    accepted = await manual_engine.send(engine, to="+491701234560")
    assert (len(flaky.batches), backup.requests) == (1, 1), "the default provider fails over"
    await manual_engine.advance(engine, 2)
    assert (await engine.report(accepted.alert_id)).state is AlertState.DELIVERED


async def test_no_failover_for_rejected_requests(manual_engine: EngineHarness) -> None:
    error = RejectedError("flaky", "sender id not allowed", code="E42")
    flaky, backup, engine = await start_failover(manual_engine, error)
    accepted = await manual_engine.send(engine, route="leak")
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    assert (len(flaky.batches), backup.requests) == (1, 0)
    delivery = report.deliveries[0]
    assert delivery.state is DeliveryState.REJECTED
    assert delivery.reason == "flaky: sender id not allowed [E42]"
    assert report.state is AlertState.FAILED


async def test_every_provider_failing_fails_the_delivery(manual_engine: EngineHarness) -> None:
    first = ScriptedProvider("flaky", manual_engine.clock,
                             error=TransientError("flaky", "timeout"))
    second = ScriptedProvider("sim", manual_engine.clock,
                              error=TransientError("sim", "connection refused"))
    engine = await manual_engine.start(make_config(**FAILOVER_CONFIG),
                                       providers={"flaky": first, "sim": second})
    accepted = await manual_engine.send(engine, route="leak")
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    assert (len(first.batches), len(second.batches)) == (1, 1)
    delivery = report.deliveries[0]
    assert (delivery.state, delivery.reason) == (DeliveryState.FAILED,
                                                  "sim: connection refused")
    assert engine.metrics["provider_errors"] == 2


async def test_secrets_stay_out_of_failure_reasons(manual_engine: EngineHarness) -> None:
    secret = "pw-Very-Secret-123"
    config = make_config(providers={"sim": dict(SIM_OPTIONS)},
                         mqtt={"host": "127.0.0.1", "password": secret})
    broken = ScriptedProvider("sim", manual_engine.clock,
                              error=RejectedError("sim", f"login {secret} refused"))
    engine = await manual_engine.start(config, providers={"sim": broken})
    accepted = await manual_engine.send(engine, to="+491701234560")
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    assert report.deliveries[0].reason == "sim: login **REDACTED** refused"
    assert secret not in str(report.to_json())


async def test_secrets_stay_out_of_failover_logs_and_details(
        manual_engine: EngineHarness, caplog: pytest.LogCaptureFixture) -> None:
    secret = "pw-Very-Secret-456"
    config = make_config(**FAILOVER_CONFIG, alertmanager={"token": secret})
    flaky = ScriptedProvider("flaky", manual_engine.clock,
                             error=TransientError("flaky", f"GET /?token={secret} timed out"))
    engine = await manual_engine.start(config, providers={"flaky": flaky,
                                                          "sim": manual_engine.simulator()})
    with caplog.at_level(logging.DEBUG, logger="alertline"):
        accepted = await manual_engine.send(engine, route="leak")
        await manual_engine.advance(engine, 2)
    report = await engine.wait_final(accepted.alert_id, timeout=10)
    assert report.deliveries[0].details["failover_reason"] == \
        "flaky: GET /?token=**REDACTED** timed out"
    assert "failing over to sim" in caplog.text
    assert secret not in caplog.text
    assert secret not in json.dumps(report.to_json())
