"""A rate limit never fails an alert by itself (#11.1): the engine with the Retarus REST adapter
against its emulator on loopback, refusing with 429 beyond N jobs per 10-second window.

The daemon, the adapter and the emulator share one manual clock: a dispatcher's pause advances
it, so minutes of rate-limited traffic run in a second, through real HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from alertline.engine.core import Accepted, Engine
from alertline.errors import ConfigError, ProviderError, RateLimitedError
from alertline.intake.request import parse_request
from alertline.model import AlertState, DeliveryState
from alertline.store.sqlite import SqliteStore
from tests.emulators.retarus_sms import RetarusSmsEmulator
from tests.engine_harness import SIM_OPTIONS, T0, EngineHarness, make_config
from tests.held_clock import HeldClock

USER, PASSWORD = "acme", "rate-limit-secret"
WINDOW = 10.0


@pytest.fixture
async def retarus(manual_engine: EngineHarness) -> AsyncIterator[RetarusSmsEmulator]:
    """The Retarus REST emulator admitting one job per 10-second window, without Retry-After
    (the seed's 429 has "No content")."""
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=manual_engine.clock,
                                  step_seconds=1.0, rate_limit=(1, WINDOW)) as emulator:
        yield emulator


def retarus_options(emulator: RetarusSmsEmulator, **options: Any) -> dict[str, Any]:
    return {"type": "retarus_sms", "username": USER, "password": PASSWORD,
            "base_url": emulator.base_url, "status_urls": [emulator.base_url],
            "poll_interval": 5, **options}


def numbers(count: int) -> list[str]:
    return [f"+4917{index:08d}0" for index in range(count)]  # 0 at the end: delivered


def refusal_times(engine: Engine, harness: EngineHarness) -> list[datetime]:
    """Where each 429 the engine saw falls on the shared clock."""
    times: list[datetime] = []

    def seen(error: ProviderError) -> None:
        if isinstance(error, RateLimitedError):
            times.append(harness.clock.now())

    engine.on_provider_error(seen)
    return times


def most_in_one_window(times: list[datetime]) -> int:
    """The largest number of ``times`` inside any 10-second window."""
    return max((sum(1 for t in times if start <= t < start + timedelta(seconds=WINDOW))
                for start in times), default=0)


def statuses(emulator: RetarusSmsEmulator) -> list[int]:
    return [r.status for r in emulator.requests if r.method == "POST"]


async def test_twenty_alerts_one_job_per_window_are_all_delivered(
        manual_engine: EngineHarness, retarus: RetarusSmsEmulator) -> None:
    config = make_config(providers={"retarus": retarus_options(retarus, max_recipients=1)})
    engine = await manual_engine.start(config)
    refused = refusal_times(engine, manual_engine)
    started = manual_engine.clock.now()
    accepted = [await engine.accept(parse_request({"message": "Water leak", "to": number}))
                for number in numbers(20)]
    await engine.drain()

    assert statuses(retarus).count(201) == 20  # one job per recipient (max_recipients: 1)
    elapsed = (manual_engine.clock.now() - started).total_seconds()
    assert 19 * WINDOW <= elapsed <= 19 * WINDOW * 1.3  # one window per job, not more
    assert statuses(retarus).count(429) == len(refused)
    assert len(refused) <= 20 + 4  # about one probe refused per window: no request storm
    assert most_in_one_window(refused) <= 4

    await manual_engine.advance(engine, 60)
    for alert in accepted:
        report = await engine.report(alert.alert_id)
        assert report.state is AlertState.DELIVERED, report.to_json()


@contextlib.asynccontextmanager
async def window_taken(manual_engine: EngineHarness) -> AsyncIterator[
        tuple[HeldClock, RetarusSmsEmulator, Engine, Accepted, asyncio.Event]]:
    """An engine on a held clock whose provider admits one job per window, the window already
    taken by a first alert; the event is set when the provider next refuses."""
    clock = manual_engine.clock = HeldClock(T0)
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, clock=clock, step_seconds=1.0,
                                  rate_limit=(1, WINDOW)) as emulator:
        engine = await manual_engine.start(make_config(providers={
            "retarus": retarus_options(emulator)}))
        first = await manual_engine.send(engine, to=numbers(1))  # takes the window
        refused = asyncio.Event()
        engine.on_provider_error(lambda error: refused.set())
        yield clock, emulator, engine, first, refused


async def test_alerts_refused_meanwhile_gather_into_the_next_job(
        manual_engine: EngineHarness) -> None:
    async with window_taken(manual_engine) as (clock, emulator, engine, first, refused):
        clock.hold()  # the pause lasts until every other alert has arrived
        second = await engine.accept(parse_request({"message": "Water leak",
                                                    "to": numbers(2)[1]}))
        await asyncio.wait_for(refused.wait(), 5)
        others = [await engine.accept(parse_request({"message": "Water leak", "to": number}))
                  for number in numbers(20)[2:]]
        assert statuses(emulator) == [201, 429]  # nothing is sent while paused
        clock.release()
        await engine.drain()

        # the refused alert went back in front, the 18 that arrived meanwhile joined it
        assert statuses(emulator) == [201, 429, 201]
        last = [r for r in emulator.requests if r.method == "POST"][-1]
        assert sum(len(m["recipients"]) for m in last.body["messages"]) == 19
        await manual_engine.advance(engine, 60)
        for alert in (first, second, *others):
            assert (await engine.report(alert.alert_id)).state is AlertState.DELIVERED


async def test_retry_after_is_honoured(manual_engine: EngineHarness,
                                       retarus: RetarusSmsEmulator) -> None:
    retarus.rate_limit = None
    retarus.fail_next(429, method="POST", retry_after=42)
    engine = await manual_engine.start(make_config(providers={
        "retarus": retarus_options(retarus)}))
    started = manual_engine.clock.now()
    accepted = await manual_engine.send(engine, to=numbers(1))
    waited = (manual_engine.clock.now() - started).total_seconds()
    assert 42 <= waited <= 42 * 1.1
    assert statuses(retarus) == [429, 201]
    await manual_engine.advance(engine, 30)
    assert (await engine.report(accepted.alert_id)).state is AlertState.DELIVERED


async def test_a_provider_that_never_admits_fails_the_alert_at_the_deadline(
        manual_engine: EngineHarness, retarus: RetarusSmsEmulator) -> None:
    retarus.fail_next(429, method="POST", count=10_000)  # never admits
    engine = await manual_engine.start(make_config(providers={
        "retarus": retarus_options(retarus, tracking_deadline=120)}))
    started = manual_engine.clock.now()
    accepted = await manual_engine.send(engine, to=numbers(1))
    report = await engine.report(accepted.alert_id)
    delivery = report.deliveries[0]
    assert (delivery.state, delivery.reason) == (DeliveryState.FAILED, "rate limited")
    waited = (manual_engine.clock.now() - started).total_seconds()
    assert 120 <= waited <= 120 + 6 * WINDOW * 1.2  # kept trying until the deadline
    # the pause grew: far fewer attempts than windows at one per window
    assert 3 <= statuses(retarus).count(429) <= 8


async def test_rate_limited_until_the_deadline_then_fails_over(
        manual_engine: EngineHarness, retarus: RetarusSmsEmulator) -> None:
    retarus.fail_next(429, method="POST", count=10_000)  # never admits
    config = make_config(
        providers={"retarus": retarus_options(retarus, tracking_deadline=60),
                   "sim": dict(SIM_OPTIONS)},
        routes={"leak": {"to": numbers(1), "channel": "sms", "provider": ["retarus", "sim"]}})
    engine = await manual_engine.start(config)
    accepted = await manual_engine.send(engine, route="leak")
    await manual_engine.advance(engine, 5)
    delivery = (await engine.report(accepted.alert_id)).deliveries[0]
    assert (delivery.state, delivery.provider) == (DeliveryState.DELIVERED, "sim")
    assert delivery.details["failover_from"] == "retarus"
    assert delivery.details["failover_reason"] == "rate limited"


async def test_a_503_without_another_provider_waits_and_delivers(
        manual_engine: EngineHarness, retarus: RetarusSmsEmulator) -> None:
    retarus.rate_limit = None
    retarus.fail_next(503, count=4, method="POST")
    engine = await manual_engine.start(make_config(providers={
        "retarus": retarus_options(retarus, retry_base_delay=0.1)}))
    started = manual_engine.clock.now()
    accepted = await manual_engine.send(engine, to=numbers(1))
    # one quick retry per attempt, then a pause of a window, then of two
    assert statuses(retarus) == [503, 503, 503, 503, 201]
    assert (manual_engine.clock.now() - started).total_seconds() >= 3 * WINDOW
    await manual_engine.advance(engine, 30)
    assert (await engine.report(accepted.alert_id)).state is AlertState.DELIVERED


async def test_rate_limit_window_option_sets_the_pause(
        manual_engine: EngineHarness, retarus: RetarusSmsEmulator) -> None:
    retarus.rate_limit = None
    retarus.fail_next(429, method="POST")
    engine = await manual_engine.start(make_config(providers={
        "retarus": retarus_options(retarus, rate_limit_window="45s")}))
    started = manual_engine.clock.now()
    await manual_engine.send(engine, to=numbers(1))
    waited = (manual_engine.clock.now() - started).total_seconds()
    assert 45 <= waited <= 45 * 1.25
    assert statuses(retarus) == [429, 201]


async def test_pacing_keeps_a_known_limit_without_a_single_refusal(
        manual_engine: EngineHarness, retarus: RetarusSmsEmulator) -> None:
    engine = await manual_engine.start(make_config(providers={"retarus": retarus_options(
        retarus, max_recipients=1, rate_limit={"jobs": 1, "per": "10s"})}))
    started = manual_engine.clock.now()
    accepted = [await engine.accept(parse_request({"message": "Water leak", "to": number}))
                for number in numbers(5)]
    await engine.drain()
    assert statuses(retarus) == [201] * 5  # the emulator admits one per window: never refused
    assert (manual_engine.clock.now() - started).total_seconds() >= 4 * WINDOW
    await manual_engine.advance(engine, 60)
    for alert in accepted:
        assert (await engine.report(alert.alert_id)).state is AlertState.DELIVERED


def test_rate_limit_options_are_validated(retarus: RetarusSmsEmulator) -> None:
    config = make_config(providers={"retarus": retarus_options(
        retarus, rate_limit={"jobs": 2, "per": "1m"}, rate_limit_window=30)})
    assert config.providers["retarus"].options["rate_limit"] == {"jobs": 2, "per": 60.0}
    with pytest.raises(ConfigError) as err:
        make_config(providers={"retarus": retarus_options(retarus, rate_limit={"jobs": 0})})
    assert "rate_limit" in str(err.value) and "jobs" in str(err.value)
    with pytest.raises(ConfigError, match="rate_limit_window"):
        make_config(providers={"retarus": retarus_options(retarus, rate_limit_window="soon")})


async def test_in_real_time_every_alert_gets_through_a_limited_provider(tmp_path: Path) -> None:
    """The same on the system clock (no manual time): a short window, real pauses."""
    window = 0.3
    async with RetarusSmsEmulator(user=USER, password=PASSWORD, step_seconds=0.05,
                                  rate_limit=(1, window)) as emulator:
        config = make_config(providers={"retarus": retarus_options(
            emulator, max_recipients=1, rate_limit_window=window, poll_interval=0.1)})
        engine = Engine(config, SqliteStore(tmp_path / "alertline.db"))
        await engine.start()
        try:
            accepted = [await engine.accept(parse_request({"message": "Water leak",
                                                           "to": number}))
                        for number in numbers(8)]
            reports = [await engine.wait_final(a.alert_id, timeout=20) for a in accepted]
        finally:
            await engine.stop(drain_timeout=1)
    assert [r.state for r in reports] == [AlertState.DELIVERED] * 8
    assert statuses(emulator).count(201) == 8
    assert statuses(emulator).count(429) <= 8 + 4  # about one refused probe per window


async def test_high_priority_goes_first_when_the_provider_admits_again(
        manual_engine: EngineHarness) -> None:
    async with window_taken(manual_engine) as (clock, emulator, engine, _first, refused):
        clock.hold()
        normal = numbers(8)[1:7]
        await engine.accept(parse_request({"message": "Water leak", "to": normal[0]}))
        await asyncio.wait_for(refused.wait(), 5)  # paused now
        for number in normal[1:]:
            await engine.accept(parse_request({"message": "Water leak", "to": number}))
        urgent = numbers(8)[7]
        await engine.accept(parse_request({"message": "Fire", "to": urgent,
                                           "priority": "high"}))
        clock.release()
        await engine.drain()

    admitted = [r for r in emulator.requests if r.method == "POST" and r.status == 201]
    recipients = [[rcpt["dst"] for m in r.body["messages"] for rcpt in m["recipients"]]
                  for r in admitted]
    assert recipients[1] == [urgent]  # the first job the provider admitted after the pause
    assert sorted(recipients[2]) == sorted(normal)


async def test_a_pause_past_the_deadline_fails_over_at_once(
        manual_engine: EngineHarness, retarus: RetarusSmsEmulator) -> None:
    retarus.rate_limit = None
    retarus.fail_next(429, method="POST", retry_after=3600)
    config = make_config(
        providers={"retarus": retarus_options(retarus), "sim": dict(SIM_OPTIONS)},
        routes={"leak": {"to": numbers(1), "channel": "sms", "provider": ["retarus", "sim"]}})
    engine = await manual_engine.start(config)
    started = manual_engine.clock.now()
    accepted = await engine.accept(parse_request({"route": "leak", "message": "Water leak",
                                                  "expires": "10m"}))
    await engine.drain()
    # the alert expires long before Retarus would take anything again: the backup sends it now
    assert (manual_engine.clock.now() - started).total_seconds() < 60
    await manual_engine.advance(engine, 5)
    delivery = (await engine.report(accepted.alert_id)).deliveries[0]
    assert (delivery.state, delivery.provider) == (DeliveryState.DELIVERED, "sim")
    assert statuses(retarus) == [429]
