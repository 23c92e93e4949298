"""Timers: the manual scheduler that tests drive, and APScheduler behind the same protocol."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import apscheduler.schedulers.base
import apscheduler.triggers.date
import pytest

from alertline.clock import ManualClock, SystemClock
from alertline.engine.scheduler import ApsScheduler, Job, ManualScheduler

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def scheduler(clock: ManualClock) -> ManualScheduler:
    return ManualScheduler(clock)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_jobs_run_in_due_order_at_their_due_time(clock: ManualClock,
                                                       scheduler: ManualScheduler) -> None:
    ran: list[tuple[str, datetime]] = []

    def job(name: str) -> Job:
        async def run() -> None:
            ran.append((name, clock.now()))
        return run

    scheduler.call_at("c", at(30), job("c"))
    scheduler.call_at("a", at(10), job("a"))
    scheduler.call_at("b", at(20), job("b"))
    assert scheduler.pending == 3
    assert scheduler.next_due() == at(10)
    assert await scheduler.advance(25) == 2
    assert ran == [("a", at(10)), ("b", at(20))]
    assert clock.now() == at(25)
    assert await scheduler.advance(5) == 1
    assert ran[-1] == ("c", at(30))
    assert scheduler.pending == 0 and scheduler.next_due() is None


async def test_a_key_replaces_the_earlier_job(scheduler: ManualScheduler) -> None:
    ran: list[str] = []

    async def first() -> None:
        ran.append("first")

    async def second() -> None:
        ran.append("second")

    scheduler.call_at("poll:1", at(5), first)
    scheduler.call_at("poll:1", at(10), second)
    assert scheduler.pending == 1
    assert scheduler.next_due() == at(10)
    await scheduler.advance(60)
    assert ran == ["second"]


async def test_cancelled_jobs_never_run(scheduler: ManualScheduler) -> None:
    ran: list[str] = []

    async def job() -> None:
        ran.append("ran")

    scheduler.call_at("hold:1", at(5), job)
    scheduler.cancel("hold:1")
    scheduler.cancel("never-existed")
    assert await scheduler.advance(60) == 0
    assert ran == []


async def test_jobs_scheduled_by_jobs_run_within_the_same_advance(
        clock: ManualClock, scheduler: ManualScheduler) -> None:
    times: list[datetime] = []

    async def poll() -> None:
        times.append(clock.now())
        if len(times) < 4:
            scheduler.call_at("poll", clock.now() + timedelta(seconds=2), poll)

    scheduler.call_at("poll", at(1), poll)
    await scheduler.advance(6)
    assert times == [at(1), at(3), at(5)]
    await scheduler.advance(1)
    assert times[-1] == at(7)


async def test_overdue_jobs_run_now(clock: ManualClock, scheduler: ManualScheduler) -> None:
    ran: list[datetime] = []

    async def job() -> None:
        ran.append(clock.now())

    scheduler.call_at("late", at(-30), job)
    assert await scheduler.run_due() == 1
    assert ran == [T0], "the clock never goes backwards"


async def test_a_failing_job_is_logged_and_the_rest_still_run(
        scheduler: ManualScheduler, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[str] = []

    async def broken() -> None:
        raise RuntimeError("poll exploded")

    async def fine() -> None:
        ran.append("fine")

    scheduler.call_at("broken", at(1), broken)
    scheduler.call_at("fine", at(2), fine)
    with caplog.at_level(logging.ERROR, logger="alertline.engine.scheduler"):
        assert await scheduler.advance(5) == 2
    assert ran == ["fine"]
    assert "scheduled job broken failed" in caplog.text


async def test_shutdown_drops_every_job(scheduler: ManualScheduler) -> None:
    async def job() -> None:
        raise AssertionError("must not run")

    scheduler.call_at("a", at(1), job)
    scheduler.shutdown()
    assert scheduler.pending == 0
    assert await scheduler.advance(10) == 0


async def test_manual_clock_sleep_advances_time(clock: ManualClock) -> None:
    await clock.sleep(2.5)
    await clock.sleep(-1)
    assert clock.now() == at(2.5)
    assert clock.slept == [2.5, -1]
    clock.set(at(1))
    assert clock.now() == at(2.5)


async def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)


# -- APScheduler -------------------------------------------------------------------------------


async def test_aps_scheduler_runs_jobs_in_order_and_honours_cancel_and_replace() -> None:
    scheduler = ApsScheduler()
    scheduler.start()
    ran: list[str] = []
    done = asyncio.Event()

    def job(name: str) -> Job:
        async def run() -> None:
            ran.append(name)
            if name == "last":
                done.set()
        return run

    now = datetime.now(UTC)
    try:
        scheduler.call_at("cancelled", now + timedelta(milliseconds=20), job("cancelled"))
        scheduler.call_at("replaced", now + timedelta(milliseconds=30), job("old"))
        scheduler.call_at("replaced", now + timedelta(milliseconds=40), job("new"))
        scheduler.call_at("first", now + timedelta(milliseconds=10), job("first"))
        scheduler.call_at("last", now + timedelta(milliseconds=80), job("last"))
        scheduler.cancel("cancelled")
        scheduler.cancel("unknown")
        assert scheduler.pending == 3
        await asyncio.wait_for(done.wait(), 10)
    finally:
        scheduler.shutdown()
        scheduler.shutdown()
    assert ran == ["first", "new", "last"]


async def test_aps_scheduler_runs_missed_jobs_and_survives_failures(
        caplog: pytest.LogCaptureFixture) -> None:
    scheduler = ApsScheduler()
    done = asyncio.Event()

    async def broken() -> None:
        raise RuntimeError("poll exploded")

    async def fine() -> None:
        done.set()

    past = datetime.now(UTC) - timedelta(seconds=5)
    scheduler.call_at("broken", past, broken)
    scheduler.call_at("fine", past + timedelta(milliseconds=1), fine)
    with caplog.at_level(logging.ERROR, logger="alertline.engine.scheduler"):
        scheduler.start()
        try:
            await asyncio.wait_for(done.wait(), 10)
        finally:
            scheduler.shutdown()
    assert "scheduled job broken failed" in caplog.text


async def test_aps_scheduler_never_asks_tzlocal(monkeypatch: pytest.MonkeyPatch) -> None:
    """tzlocal reads files and imports tzdata: blocking calls inside Home Assistant's loop."""
    def refuse() -> None:
        raise AssertionError("tzlocal consulted")

    monkeypatch.setattr(apscheduler.schedulers.base, "get_localzone", refuse)
    monkeypatch.setattr(apscheduler.triggers.date, "get_localzone", refuse)
    scheduler = ApsScheduler()
    done = asyncio.Event()

    async def job() -> None:
        done.set()

    scheduler.start()
    try:
        scheduler.call_at("soon", datetime.now(UTC) + timedelta(milliseconds=5), job)
        await asyncio.wait_for(done.wait(), 10)
    finally:
        scheduler.shutdown()


async def test_aps_scheduler_runs_a_job_replaced_while_its_key_is_running_after_it() -> None:
    """A poll that reschedules its own key while it runs (or a take-over that schedules a
    poll of a job being polled) must not be skipped: APScheduler skips a one-shot job whose
    previous instance still runs, and it would never run."""
    scheduler = ApsScheduler()
    scheduler.start()
    ran: list[str] = []
    first_running, release, second_done = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> None:
        ran.append("first starts")
        first_running.set()
        await release.wait()
        ran.append("first ends")

    async def second() -> None:
        ran.append("second")
        second_done.set()

    try:
        scheduler.call_at("poll:job", datetime.now(UTC), first)
        await asyncio.wait_for(first_running.wait(), 10)
        scheduler.call_at("poll:job", datetime.now(UTC), second)
        await asyncio.sleep(0.05)  # the second is due while the first still runs: it waits
        assert ran == ["first starts"]
        release.set()
        await asyncio.wait_for(second_done.wait(), 10)
    finally:
        scheduler.shutdown()
    assert ran == ["first starts", "first ends", "second"]
