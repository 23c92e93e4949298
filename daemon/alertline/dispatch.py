"""Per-provider submission queue: send at once when idle, gather while requests are in flight.

Items that share job settings (a :class:`BatchKey`) are coalesced into as few provider requests as
the provider allows (``capabilities.max_recipients``), across alerts. A lone alert never waits: it
is submitted as soon as a request slot is free.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .model import Alert, Channel, Priority
from .providers.base import Batch, BatchItem, Provider, Submission

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


class Dispatcher:
    """Queues one provider's work and runs at most ``max_in_flight`` requests at a time."""

    def __init__(self, provider: Provider, prepare: Prepare, finish: Finish,
                 *, max_in_flight: int = 4) -> None:
        self.provider = provider
        self._prepare = prepare
        self._finish = finish
        self.max_in_flight = max_in_flight
        self._queue: OrderedDict[BatchKey, list[BatchItem]] = OrderedDict()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._idle.set()
        self.requests = 0

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

    def enqueue(self, key: BatchKey, items: list[BatchItem]) -> None:
        """Add items; they go out at once if a request slot is free."""
        if not items:
            return
        self._queue.setdefault(key, []).extend(items)
        self._idle.clear()
        self._pump()

    def _pump(self) -> None:
        limit = max(1, self.provider.capabilities.max_recipients)
        while self._queue and len(self._in_flight) < self.max_in_flight:
            key, items = next(iter(self._queue.items()))
            taken, rest = items[:limit], items[limit:]
            if rest:
                self._queue[key] = rest
                self._queue.move_to_end(key)
            else:
                del self._queue[key]
            task = asyncio.create_task(self._submit(key.batch(tuple(taken))))
            self._in_flight.add(task)
            task.add_done_callback(self._done)
        if not self._queue and not self._in_flight:
            self._idle.set()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("%s: submission task failed: %s", self.provider.name, task.exception())
        self._pump()

    async def _submit(self, batch: Batch) -> None:
        prepared = await self._prepare(batch)
        if prepared is None or not prepared.items:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        self.requests += 1
        try:
            submission = await self.provider.submit(prepared)
        except Exception as err:  # handed to the engine, which records it
            await self._finish(prepared, None, err, loop.time() - started)
            return
        await self._finish(prepared, submission, None, loop.time() - started)

    async def drain(self) -> None:
        """Wait until nothing is queued or in flight."""
        await self._idle.wait()
