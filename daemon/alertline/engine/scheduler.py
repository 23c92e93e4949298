"""Timers for status polls, held sends, deadlines and escalation steps.

Production uses APScheduler's asyncio scheduler; tests use :class:`ManualScheduler`, which runs due
jobs when told to advance a :class:`~alertline.clock.ManualClock`, so no test waits for real time.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger

from alertline.clock import ManualClock

_LOGGER = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]


class Scheduler(Protocol):
    """Run a coroutine function at a time, under a key that replaces earlier jobs with that key."""

    def call_at(self, key: str, when: datetime, job: Job) -> None:
        """Run ``job`` at ``when`` (replacing any job with ``key``)."""

    def cancel(self, key: str) -> None:
        """Forget the job with ``key``, if any."""

    def start(self) -> None:
        """Begin running jobs."""

    def shutdown(self) -> None:
        """Stop running jobs."""


class ApsScheduler:
    """APScheduler 3 (asyncio) behind the :class:`Scheduler` protocol."""

    def __init__(self) -> None:
        # An explicit time zone: without one, APScheduler asks tzlocal, which reads
        # /etc/timezone and imports tzdata inside the event loop (Home Assistant reports those
        # blocking calls). Run dates are aware datetimes, so the zone only names "now".
        # APScheduler skips a job whose previous instance still runs, and a one-shot job that
        # is skipped never runs: instead, runs of one key wait for each other (``_one_at_a_time``)
        self._scheduler = AsyncIOScheduler(timezone=UTC, job_defaults={
            "misfire_grace_time": None, "coalesce": True, "max_instances": 1000})
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    def call_at(self, key: str, when: datetime, job: Job) -> None:
        """Run ``job`` at ``when`` (replacing any job with ``key``; a run of ``key`` already
        under way finishes first)."""
        self._scheduler.add_job(self._one_at_a_time(key, _guarded(key, job)), id=key, name=key,
                                replace_existing=True,
                                trigger=DateTrigger(run_date=when, timezone=UTC))

    def _one_at_a_time(self, key: str, job: Job) -> Job:
        async def run() -> None:
            lock, users = self._locks.get(key, (asyncio.Lock(), 0))
            self._locks[key] = (lock, users + 1)
            try:
                async with lock:
                    await job()
            finally:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)
        return run

    def cancel(self, key: str) -> None:
        """Forget the job with ``key``, if any."""
        job = self._scheduler.get_job(key)
        if job is not None:
            job.remove()

    def start(self) -> None:
        """Begin running jobs (needs a running event loop)."""
        if not self._scheduler.running:
            self._scheduler.start()

    def shutdown(self) -> None:
        """Stop running jobs."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    @property
    def pending(self) -> int:
        """How many jobs are scheduled."""
        return len(self._scheduler.get_jobs())


def _guarded(key: str, job: Job) -> Job:
    async def run() -> None:
        try:
            await job()
        except Exception:
            _LOGGER.exception("scheduled job %s failed", key)
    return run


class ManualScheduler:
    """A scheduler driven by a manual clock: ``await advance(seconds)`` runs what falls due."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self._heap: list[tuple[datetime, int, str]] = []
        self._jobs: dict[str, tuple[int, Job]] = {}
        self._seq = itertools.count()

    def call_at(self, key: str, when: datetime, job: Job) -> None:
        """Run ``job`` at ``when`` (replacing any job with ``key``)."""
        seq = next(self._seq)
        self._jobs[key] = (seq, job)
        heapq.heappush(self._heap, (when, seq, key))

    def cancel(self, key: str) -> None:
        """Forget the job with ``key``, if any."""
        self._jobs.pop(key, None)

    def start(self) -> None:
        """Nothing to start."""

    def shutdown(self) -> None:
        """Drop every job."""
        self._jobs.clear()
        self._heap.clear()

    @property
    def pending(self) -> int:
        """How many jobs are scheduled."""
        return len(self._jobs)

    def next_due(self) -> datetime | None:
        """When the earliest job is due."""
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def _drop_stale(self) -> None:
        while self._heap and self._jobs.get(self._heap[0][2], (None,))[0] != self._heap[0][1]:
            heapq.heappop(self._heap)

    async def run_due(self) -> int:
        """Run every job due now; returns how many ran."""
        return await self._run_until(self.clock.now())

    async def advance(self, seconds: float) -> int:
        """Move the clock forward, running each job at its due time, in order."""
        target = self.clock.now().timestamp() + seconds
        return await self._run_until(datetime.fromtimestamp(target, tz=self.clock.now().tzinfo))

    async def _run_until(self, target: datetime) -> int:
        ran = 0
        while True:
            due = self.next_due()
            if due is None or due > target:
                break
            _, _, key = heapq.heappop(self._heap)
            _, job = self._jobs.pop(key)
            self.clock.set(due)
            await _guarded(key, job)()
            ran += 1
        self.clock.set(target)
        return ran
