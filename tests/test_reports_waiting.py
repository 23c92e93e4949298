"""Waiting for an alert's report: the first provider answer, the final report, a timeout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alertline import (
    DeliveryState,
    Engine,
    NotFoundError,
    ReportWaiters,
    TransientError,
    create_engine,
    nothing_sent,
    parse_request,
    provider_answered,
)
from alertline.clock import ManualClock
from alertline.engine.scheduler import ManualScheduler
from tests.engine_harness import T0, ScriptedProvider, make_config

REQUEST = {"to": "+491701234560", "message": "Leak"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


async def _engine(tmp_path: Path, clock: ManualClock, provider: ScriptedProvider
                  ) -> Engine:
    engine = create_engine(make_config(), store=tmp_path / "w.db", clock=clock,
                           scheduler=ManualScheduler(clock), providers={"sim": provider})
    await engine.start()
    return engine


@pytest.fixture
async def gated(tmp_path: Path, clock: ManualClock) -> AsyncIterator[tuple[Engine,
                                                                            ScriptedProvider]]:
    provider = ScriptedProvider("sim", clock, gated=True)
    engine = await _engine(tmp_path, clock, provider)
    yield engine, provider
    provider.gate.set()
    await engine.stop(drain_timeout=1.0)


async def test_the_wait_ends_with_the_providers_answer(
        gated: tuple[Engine, ScriptedProvider]) -> None:
    engine, provider = gated
    waiters = ReportWaiters(engine)
    accepted = await engine.accept(parse_request(REQUEST))
    waiting = asyncio.create_task(waiters.wait(accepted.alert_id, provider_answered, 5))
    await provider.entered.wait()
    assert not waiting.done()
    provider.gate.set()
    report = await waiting
    assert [d.state for d in report.deliveries] == [DeliveryState.SUBMITTED]
    assert not nothing_sent(report)


async def test_a_report_already_there_counts(gated: tuple[Engine, ScriptedProvider]) -> None:
    engine, _ = gated
    waiters = ReportWaiters(engine)
    accepted = await engine.accept(parse_request(REQUEST))
    report = await waiters.wait(accepted.alert_id, lambda r: True, 0.01)
    assert report.alert.id == accepted.alert_id


async def test_a_timeout_raises_or_gives_the_latest_report(
        gated: tuple[Engine, ScriptedProvider]) -> None:
    engine, _ = gated
    waiters = ReportWaiters(engine)
    accepted = await engine.accept(parse_request(REQUEST))
    with pytest.raises(TimeoutError):
        await waiters.wait(accepted.alert_id, lambda r: r.final, 0.01)
    latest = await waiters.wait(accepted.alert_id, lambda r: r.final, 0.01,
                                latest_on_timeout=True)
    assert not latest.final
    with pytest.raises(NotFoundError):
        await waiters.wait("no-such-alert", lambda r: True, 0.01)


async def test_closing_cancels_the_waits(gated: tuple[Engine, ScriptedProvider]) -> None:
    engine, _ = gated
    waiters = ReportWaiters(engine)
    accepted = await engine.accept(parse_request(REQUEST))
    waiting = asyncio.create_task(waiters.wait(accepted.alert_id, lambda r: r.final, 5))
    await asyncio.sleep(0.01)
    waiters.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_nothing_sent_when_the_provider_refused_the_request(
        tmp_path: Path, clock: ManualClock) -> None:
    provider = ScriptedProvider("sim", clock, error=TransientError("sim", "unreachable"))
    engine = await _engine(tmp_path, clock, provider)
    try:
        waiters = ReportWaiters(engine)
        accepted = await engine.accept(parse_request(REQUEST))
        report = await waiters.wait(accepted.alert_id, provider_answered, 5)
    finally:
        await engine.stop(drain_timeout=1.0)
    assert nothing_sent(report)
