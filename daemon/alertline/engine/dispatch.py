"""Per-provider submission queue: send at once when idle, gather while requests are in flight.

Items that share job settings (a :class:`BatchKey`) are coalesced into as few provider requests as
the provider allows (``capabilities.max_recipients``), across alerts. A lone alert never waits: it
is submitted as soon as a request slot is free.

``priority: high`` goes first: its items are taken before any normal ones, one request slot
beyond ``max_in_flight`` is kept for it (a storm of normal batches in flight cannot hold it back),
and client-side pacing keeps the last request of each window for it.

A provider that refuses for load (429, 503, "too busy": :func:`is_throttled`) is paused, not
hammered: nothing goes to it until its ``Retry-After`` (else its documented rate window, doubling
with each further refusal, with jitter) has passed; the refused items go back to the front of the
queue and new ones keep gathering meanwhile, so the next request carries all of them. After a
pause the dispatcher probes with one request and widens again with each admitted one. Whether a
refused item may wait once more (its alert's expiry, the tracking deadline) is the engine's call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from alertline.clock import Clock, SystemClock
from alertline.model import Alert, Channel, Priority
from alertline.providers.base import Batch, BatchItem, Provider, Submission, is_throttled

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchKey:
    """Job settings that must be equal for recipients to share a provider request."""

    channel: Channel
    priority: Priority
    sender: str | None
    locale: str | None
    audio_url: str | None
    not_before: datetime | None
    expires: datetime | None
    blackout_periods: tuple[str, ...]
    options: str
    content: str = ""

    @classmethod
    def for_alert(cls, alert: Alert, channel: Channel,
                  blackout_periods: tuple[str, ...] = (), *, content: str = "") -> BatchKey:
        """The key of ``alert``'s deliveries on ``channel``; ``content`` separates texts that
        may not share a request (providers with one content per request)."""
        return cls(channel=channel, priority=alert.priority, sender=alert.sender,
                   locale=alert.locale, audio_url=alert.audio_url, not_before=alert.not_before,
                   expires=alert.expires, blackout_periods=blackout_periods,
                   options=json.dumps(alert.options, sort_keys=True, default=str),
                   content=content)

    def batch(self, items: tuple[BatchItem, ...]) -> Batch:
        """A :class:`Batch` of ``items`` with these settings."""
        options: dict[str, Any] = json.loads(self.options)
        return Batch(channel=self.channel, items=items, priority=self.priority, sender=self.sender,
                     locale=self.locale, audio_url=self.audio_url, not_before=self.not_before,
                     expires=self.expires, blackout_periods=self.blackout_periods, options=options)


Prepare = Callable[[Batch], Awaitable[Batch | None]]
Finish = Callable[[Batch, Submission | None, BaseException | None, float], Awaitable[None]]
Throttled = Callable[[Batch, BaseException, float], Awaitable[Batch | None]]
"""Told of a batch the provider refused for load; returns the items that may wait for another
try (the rest it has failed over or failed), or None."""


@dataclass(slots=True, eq=False)
class _PacedRequest:
    """A request counted by client-side pacing: in flight until ``done`` (its answer's time)."""

    done: datetime | None = None


_UNTIL_DONE = datetime.max.replace(tzinfo=UTC)
"""Pacing: wait until a request in flight has finished (its completion pumps again)."""

MAX_GROWTH = 6
"""A pause without Retry-After grows to at most this many rate windows."""
PAUSE_JITTER = 0.2
"""Up to this fraction is added to a pause, so that several daemons do not return in step."""


class Dispatcher:
    """Queues one provider's work and runs at most ``max_in_flight`` requests at a time (one more
    for high priority), pausing the provider while it refuses for load."""

    def __init__(self, provider: Provider, prepare: Prepare, finish: Finish,
                 *, max_in_flight: int = 4, throttled: Throttled | None = None,
                 clock: Clock | None = None) -> None:
        self.provider = provider
        self._prepare = prepare
        self._finish = finish
        self._throttled = throttled
        self._clock = clock or SystemClock()
        self.max_in_flight = max_in_flight
        self._queue: OrderedDict[BatchKey, list[BatchItem]] = OrderedDict()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.requests = 0
        self.refusals = 0  # requests the provider refused for load, in all
        self._allowed = max_in_flight  # 1 after a refusal, widening with each admitted request
        self._streak = 0  # refusals since the last admitted request (pause growth)
        self._paused_until: datetime | None = None
        self._paused_since: datetime | None = None  # when the current episode of refusals began
        self._last_refusal: datetime | None = None
        self._paced: list[_PacedRequest] = []  # requests counted in the pacing window
        self._wake: asyncio.Task[None] | None = None
        self._wake_at: datetime | None = None

    @property
    def queued(self) -> int:
        """Items waiting for a request slot."""
        return sum(len(items) for items in self._queue.values())

    @property
    def idle(self) -> bool:
        """Whether nothing is queued or in flight."""
        return self._idle.is_set()

    @property
    def in_flight(self) -> int:
        """Requests under way."""
        return len(self._in_flight)

    @property
    def paused_until(self) -> datetime | None:
        """Until when the provider is left alone after refusing for load (None: not paused)."""
        if self._paused_until is not None and self._paused_until <= self._clock.now():
            return None
        return self._paused_until

    def enqueue(self, key: BatchKey, items: list[BatchItem]) -> None:
        """Add items; they go out at once if a request slot is free."""
        if not items:
            return
        self._queue.setdefault(key, []).extend(items)
        self._idle.clear()
        self._pump()

    def close(self) -> None:
        """Stop the wake-up timer (the queue stays as it is: the store has it durably)."""
        if self._wake is not None:
            self._wake.cancel()
            self._wake = self._wake_at = None

    # -- choosing what goes next -----------------------------------------------------------

    def _next_key(self) -> BatchKey:
        """The oldest high-priority key, else the oldest key."""
        for key in self._queue:
            if key.priority is Priority.HIGH:
                return key
        return next(iter(self._queue))

    def _pacing_wait(self, now: datetime, high: bool) -> datetime | None:
        """When the next request may start under client-side pacing (None: now;
        :data:`_UNTIL_DONE`: when a request in flight has finished).

        A request counts from when its answer came (the provider saw it no later than that;
        counting from its start would let network jitter put two in one window of the
        provider's). Normal priority leaves the last request of each window to high priority.
        """
        limit = self.provider.capabilities.rate_limit
        if limit is None:
            return None
        window = timedelta(seconds=limit.per)
        self._paced = [r for r in self._paced if r.done is None or now - r.done < window]
        allowed = limit.jobs if high or limit.jobs == 1 else limit.jobs - 1
        excess = len(self._paced) - allowed
        if excess < 0:
            return None
        finished = sorted(r.done for r in self._paced if r.done is not None)
        if len(finished) <= excess:
            return _UNTIL_DONE
        return finished[excess] + window

    def _pump(self) -> None:
        limit = max(1, self.provider.capabilities.max_recipients)
        while self._queue:
            now = self._clock.now()
            if self._paused_until is not None and now < self._paused_until:
                self._schedule_wake(self._paused_until)
                break
            key = self._next_key()
            high = key.priority is Priority.HIGH
            if len(self._in_flight) >= self._allowed + (1 if high else 0):
                break
            paced = self._pacing_wait(now, high)
            if paced is not None:
                if paced is not _UNTIL_DONE:
                    self._schedule_wake(paced)
                break
            items = self._queue[key]
            taken, rest = items[:limit], items[limit:]
            if rest:
                self._queue[key] = rest
                self._queue.move_to_end(key)
            else:
                del self._queue[key]
            paced_request = _PacedRequest()
            if self.provider.capabilities.rate_limit is not None:
                self._paced.append(paced_request)
            task = asyncio.create_task(self._submit(key, key.batch(tuple(taken)),
                                                    paced_request))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        if not self._queue and not self._in_flight:
            self._idle.set()

    def _schedule_wake(self, when: datetime) -> None:
        """Pump again at ``when`` (one timer; an earlier need replaces a later one)."""
        if self._wake is not None and not self._wake.done():
            if self._wake_at is not None and self._wake_at <= when:
                return
            self._wake.cancel()
        self._wake_at = when
        self._wake = asyncio.create_task(self._sleep_then_pump(when))

    async def _sleep_then_pump(self, when: datetime) -> None:
        await self._clock.sleep((when - self._clock.now()).total_seconds())
        self._wake = self._wake_at = None
        self._pump()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("%s: submission task failed: %s", self.provider.name, task.exception())
        self._pump()

    # -- one request -----------------------------------------------------------------------

    async def _submit(self, key: BatchKey, batch: Batch, paced: _PacedRequest) -> None:
        prepared = await self._prepare(batch)
        if prepared is None or not prepared.items:
            if paced in self._paced:  # nothing was sent: no token used
                self._paced.remove(paced)
            return
        loop = asyncio.get_running_loop()
        started, sent_at = loop.time(), self._clock.now()
        self.requests += 1
        try:
            submission = await self.provider.submit(prepared)
        except Exception as err:  # handed to the engine, which records it
            paced.done = self._clock.now()
            seconds = loop.time() - started
            if is_throttled(err) and self._throttled is not None:
                self._refused(err, sent_at)
                retry = await self._throttled(prepared, err, seconds)
                if retry is not None and retry.items:
                    self._put_back(key, list(retry.items))
                return
            await self._finish(prepared, None, err, seconds)
            return
        paced.done = self._clock.now()
        self._admitted()
        await self._finish(prepared, submission, None, loop.time() - started)

    def _put_back(self, key: BatchKey, items: list[BatchItem]) -> None:
        """Refused items go to the front of the queue, ahead of what arrived meanwhile."""
        self._queue[key] = items + self._queue.get(key, [])
        self._queue.move_to_end(key, last=False)
        self._idle.clear()

    def _admitted(self) -> None:
        """The provider took a request: widen again, one more slot per admitted request, once
        it has refused nothing for two rate windows (under a tight limit a wider burst would
        only be refused again)."""
        self._streak = 0
        calm = timedelta(seconds=2 * self.provider.capabilities.rate_window)
        if self._last_refusal is None or self._clock.now() - self._last_refusal >= calm:
            self._allowed = min(self.max_in_flight, self._allowed + 1)

    def _refused(self, err: BaseException, sent_at: datetime) -> None:
        """Pause the provider: its ``Retry-After``, else the rate window, growing with jitter.
        A refusal of a request sent before the current pause began belongs to that pause (the
        provider said nothing new), whenever its answer arrives."""
        self.refusals += 1
        self._allowed = 1
        now = self._clock.now()
        self._last_refusal = now
        already = self._paused_since is not None and sent_at <= self._paused_since
        hint = getattr(err, "retry_after", None)
        if hint is not None and hint > 0:
            seconds = float(hint) * (1 + random.uniform(0, PAUSE_JITTER / 4))
        else:
            if not already:  # refusals of requests sent before the pause are the same episode
                self._streak += 1
            window = self.provider.capabilities.rate_window
            growth = min(2 ** max(0, self._streak - 1), MAX_GROWTH)
            seconds = window * growth * (1 + random.uniform(0, PAUSE_JITTER))
        until = now + timedelta(seconds=seconds)
        if already and self._paused_until is not None and self._paused_until >= until:
            return
        self._paused_until = until
        if not already:
            self._paused_since = now
            reason = self.provider.context.redactor.text(str(err) or type(err).__name__)
            _LOGGER.warning("%s refused for load (%s); pausing it for %.1fs", self.provider.name,
                            reason, seconds)

    async def drain(self) -> None:
        """Wait until nothing is queued or in flight."""
        await self._idle.wait()
