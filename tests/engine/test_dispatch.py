"""The dispatcher on its own: priority, the reserved slot, pauses after a refusal, pacing.

The provider is a test double that holds each request at a gate the test opens, so what is in
flight at any moment is decided by the test, not by timing. Time is a manual clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from alertline.clock import ManualClock
from alertline.engine.dispatch import MAX_GROWTH, BatchKey, Dispatcher
from alertline.errors import RateLimitedError, TransientError
from alertline.model import Channel, Priority
from alertline.providers.base import (
    Batch,
    BatchItem,
    Capabilities,
    Provider,
    ProviderContext,
    ProviderInfo,
    RateLimit,
    Submission,
    SubmittedItem,
)
from tests.held_clock import HeldClock


class GatedProvider(Provider):
    """Records each request; holds it until the test releases it; can refuse the next ones."""

    type = "gated"
    description = "test double"
    default_capabilities = Capabilities(channels=frozenset({Channel.SMS}), max_recipients=100)

    def __init__(self, clock: ManualClock, *, gated: bool = False,
                 rate_limit: RateLimit | None = None, rate_window: float = 10.0) -> None:
        super().__init__("gated", {}, ProviderContext(clock=clock))
        self.capabilities = Capabilities(channels=frozenset({Channel.SMS}), max_recipients=100,
                                         rate_limit=rate_limit, rate_window=rate_window)
        self.clock = clock
        self.gate = asyncio.Event()
        if not gated:
            self.gate.set()
        self.refuse: list[Exception] = []  # raised by the next requests, in order
        self.batches: list[tuple[float, Batch]] = []  # (clock seconds, batch)
        self.entered = asyncio.Event()
        self.inside = 0

    async def submit(self, batch: Batch) -> Submission:
        """Record, wait at the gate, then refuse (if told) or accept."""
        self.batches.append((self.clock.now().timestamp(), batch))
        self.entered.set()
        self.inside += 1
        try:
            await self.gate.wait()
        finally:
            self.inside -= 1
        if self.refuse:
            raise self.refuse.pop(0)
        return Submission("ref", tuple(SubmittedItem(i.delivery_id, i.number)
                                       for i in batch.items), self.clock.now())

    async def check(self) -> ProviderInfo:
        """Always fine."""
        return ProviderInfo(provider=self.name)

    def alert_ids(self) -> list[list[str]]:
        """The alerts of each request, in order."""
        return [[item.alert_id for item in batch.items] for _, batch in self.batches]


def key(priority: Priority = Priority.NORMAL, content: str = "") -> BatchKey:
    return BatchKey(channel=Channel.SMS, priority=priority, sender=None, locale=None,
                    audio_url=None, not_before=None, expires=None, blackout_periods=(),
                    options="{}", content=content)


def item(alert_id: str) -> BatchItem:
    return BatchItem(delivery_id=f"{alert_id}-1", alert_id=alert_id, number="+491701234560",
                     text="leak", template="leak")


class Outcomes:
    """The dispatcher's callbacks: what finished, what was refused and may wait."""

    def __init__(self, keep_refused: bool = True) -> None:
        self.finished: list[tuple[Batch, BaseException | None]] = []
        self.refused: list[Batch] = []
        self.keep_refused = keep_refused

    async def prepare(self, batch: Batch) -> Batch | None:
        return batch

    async def finish(self, batch: Batch, submission: Submission | None,
                     error: BaseException | None, seconds: float) -> None:
        self.finished.append((batch, error))

    async def throttled(self, batch: Batch, error: BaseException,
                        seconds: float) -> Batch | None:
        self.refused.append(batch)
        return batch if self.keep_refused else None


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def dispatcher(provider: GatedProvider, outcomes: Outcomes, **kwargs: Any) -> Dispatcher:
    return Dispatcher(provider, outcomes.prepare, outcomes.finish, throttled=outcomes.throttled,
                      clock=provider.clock, **kwargs)


async def entered(provider: GatedProvider) -> None:
    """Wait until the next request reaches the provider."""
    await asyncio.wait_for(provider.entered.wait(), 5)
    provider.entered.clear()


async def settle(condition: Callable[[], bool]) -> None:
    """Let the loop run the dispatcher's tasks until ``condition`` holds (bounded)."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


# -- priority ----------------------------------------------------------------------------------

async def test_high_priority_is_taken_before_older_normal_items(clock: ManualClock) -> None:
    provider = GatedProvider(clock, gated=True)
    outcomes = Outcomes()
    queue = dispatcher(provider, outcomes, max_in_flight=1)
    queue.enqueue(key(content="a"), [item("n1")])
    await entered(provider)
    queue.enqueue(key(content="b"), [item("n2")])
    queue.enqueue(key(content="c"), [item("n3")])
    queue.enqueue(key(Priority.HIGH), [item("h1")])
    await entered(provider)  # the kept slot: not behind the batch in flight
    queue.enqueue(key(Priority.HIGH, content="x"), [item("h2")])
    provider.gate.set()
    await queue.drain()
    assert provider.alert_ids() == [["n1"], ["h1"], ["h2"], ["n2"], ["n3"]]


async def test_one_slot_is_kept_for_high_priority(clock: ManualClock) -> None:
    provider = GatedProvider(clock, gated=True)
    queue = dispatcher(provider, Outcomes(), max_in_flight=2)
    for n in range(3):
        queue.enqueue(key(content=str(n)), [item(f"n{n}")])
    await settle(lambda: provider.inside == 2)
    assert queue.in_flight == 2 and queue.queued == 1  # normal work uses max_in_flight only
    queue.enqueue(key(Priority.HIGH), [item("h")])
    await settle(lambda: provider.inside == 3)
    assert provider.alert_ids()[-1] == ["h"] and queue.queued == 1
    provider.gate.set()
    await queue.drain()
    assert len(provider.batches) == 4


# -- refusals ----------------------------------------------------------------------------------

async def test_a_refusal_pauses_for_retry_after_and_gathers_what_arrives() -> None:
    clock = HeldClock()
    provider = GatedProvider(clock, gated=True)
    provider.refuse.append(RateLimitedError("gated", "HTTP 429", retry_after=30))
    outcomes = Outcomes()
    queue = dispatcher(provider, outcomes)
    queue.enqueue(key(), [item("a1")])
    await entered(provider)
    clock.hold()  # the pause lasts until the test has enqueued what arrives meanwhile
    provider.gate.set()
    await asyncio.wait_for(clock.waiting.wait(), 5)
    assert queue.paused_until is not None
    queue.enqueue(key(), [item("a2")])
    queue.enqueue(key(Priority.HIGH), [item("h")])
    queue.enqueue(key(), [item("a3")])
    assert len(provider.batches) == 1  # nothing is sent while paused
    started = clock.now()
    clock.release()
    await queue.drain()
    assert 30 <= clock.slept[0] <= 30 * 1.1
    # high priority first once the provider admits again; the refused item leads the next job
    assert provider.alert_ids() == [["a1"], ["h"], ["a1", "a2", "a3"]]
    assert all(when >= started.timestamp() + 30 for when, _ in provider.batches[1:])
    assert [error for _, error in outcomes.finished] == [None, None]


async def test_pauses_without_retry_after_grow_from_the_rate_window(clock: ManualClock) -> None:
    provider = GatedProvider(clock, rate_window=10.0)
    provider.refuse.extend(RateLimitedError("gated", "HTTP 429") for _ in range(6))
    outcomes = Outcomes()
    queue = dispatcher(provider, outcomes)
    queue.enqueue(key(), [item("a")])
    await queue.drain()
    assert len(clock.slept) == 6 and len(outcomes.refused) == 6
    for pause, growth in zip(clock.slept, (1, 2, 4, MAX_GROWTH, MAX_GROWTH, MAX_GROWTH),
                             strict=True):
        assert 10.0 * growth <= pause <= 10.0 * growth * 1.2 + 1e-9
    assert len(set(clock.slept[3:])) == 3  # jitter: returns are not in step
    assert len(outcomes.finished) == 1 and outcomes.finished[0][1] is None


class LateProvider(GatedProvider):
    """A gated provider whose second request is answered only once ``late`` is set."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock, gated=True)
        self.late = asyncio.Event()
        self.sent = 0

    async def submit(self, batch: Batch) -> Submission:
        """The second request waits for ``late`` before it is answered."""
        self.sent += 1
        if self.sent == 2:
            await self.late.wait()
        return await super().submit(batch)


async def test_a_late_refusal_of_a_request_sent_before_the_pause_does_not_grow_it(
        clock: ManualClock) -> None:
    """Two requests out at once, both refused; the second answer comes after the first pause
    began (and, on this manual clock, after it ended): still one episode, no doubled pause."""
    provider = LateProvider(clock)
    provider.refuse.extend(RateLimitedError("gated", "HTTP 429") for _ in range(2))
    queue = dispatcher(provider, Outcomes(), max_in_flight=2)
    queue.enqueue(key(content="0"), [item("a0")])
    queue.enqueue(key(content="1"), [item("a1")])
    await settle(lambda: provider.sent == 2)
    provider.gate.set()
    await settle(lambda: bool(clock.slept))  # the first pause began
    provider.late.set()
    await queue.drain()
    assert len(clock.slept) == 2
    assert all(10.0 <= pause <= 12.0 + 1e-9 for pause in clock.slept), clock.slept


async def test_a_503_pauses_like_a_rate_limit(clock: ManualClock) -> None:
    provider = GatedProvider(clock)
    provider.refuse.append(TransientError("gated", "HTTP 503", status=503))
    provider.refuse.append(TransientError("gated", "HTTP 500", status=500))
    outcomes = Outcomes()
    queue = dispatcher(provider, outcomes)
    queue.enqueue(key(), [item("a")])
    await queue.drain()
    assert len(outcomes.refused) == 1 and 10.0 <= clock.slept[0] <= 12.0
    # a 500 is no load refusal: it goes to the engine (which fails over)
    assert [type(error) for _, error in outcomes.finished] == [TransientError]


async def test_items_the_engine_gives_up_are_not_put_back(clock: ManualClock) -> None:
    provider = GatedProvider(clock)
    provider.refuse.append(RateLimitedError("gated", "HTTP 429", retry_after=5))
    outcomes = Outcomes(keep_refused=False)
    queue = dispatcher(provider, outcomes)
    queue.enqueue(key(), [item("a")])
    await queue.drain()
    assert len(provider.batches) == 1 and queue.queued == 0 and not outcomes.finished


async def test_after_a_refusal_one_request_probes_at_a_time(clock: ManualClock) -> None:
    provider = GatedProvider(clock, gated=True)
    provider.refuse.append(RateLimitedError("gated", "HTTP 429", retry_after=1))
    queue = dispatcher(provider, Outcomes(), max_in_flight=4)
    queue.enqueue(key(content="0"), [item("a0")])
    await entered(provider)
    provider.gate.set()
    await settle(lambda: bool(clock.slept))
    provider.gate.clear()
    for n in range(1, 4):
        queue.enqueue(key(content=str(n)), [item(f"a{n}")])
    await settle(lambda: provider.inside == 1)
    assert queue.in_flight == 1 and queue.queued == 3  # not a burst right after the pause
    provider.gate.set()
    await queue.drain()
    assert len(provider.batches) == 5


# -- client-side pacing ------------------------------------------------------------------------

async def test_pacing_keeps_the_limit_and_a_token_for_high_priority() -> None:
    clock = HeldClock()
    provider = GatedProvider(clock, rate_limit=RateLimit(jobs=2, per=10.0))
    queue = dispatcher(provider, Outcomes())
    start = clock.now().timestamp()
    clock.hold()
    for n in range(3):
        queue.enqueue(key(content=str(n)), [item(f"n{n}")])
    await asyncio.wait_for(clock.waiting.wait(), 5)  # n0 went; normal work waits for the window
    assert provider.alert_ids() == [["n0"]]
    provider.entered.clear()
    queue.enqueue(key(Priority.HIGH), [item("h")])  # takes the token normal work leaves
    await entered(provider)
    clock.release()
    await queue.drain()
    sent = [(round(when - start), ids) for when, ids in
            zip([w for w, _ in provider.batches], provider.alert_ids(), strict=True)]
    assert sent == [(0, ["n0"]), (0, ["h"]), (10, ["n1"]), (20, ["n2"])]
    times = [when for when, _ in provider.batches]
    for index, when in enumerate(times):  # never more than 2 in any 10 s
        assert sum(1 for other in times if when <= other < when + 10) <= 2, index
