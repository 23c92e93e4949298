"""The queueing half of a group commit, shared by every store implementation.

Callers hand over units of intents; concurrent units wait in one queue and a single flusher
task writes them together (how, and how a refused unit is kept from failing its neighbours, is
each store's own ``_flush``). While the store is failing the flusher retries with backoff,
cut short when the store closes, so nothing unkept is ever confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import datetime

from alertline.store.errors import StoreClosedError, StoreUnavailableError
from alertline.store.health import StoreHealth, retry_delay
from alertline.store.intents import Intent, PruneFinished, UnitOfWork

Results = list[int | None]
"""What a committed unit hands back: one value per intent (a prune's count, else None)."""
Waiting = tuple[list[Intent], asyncio.Future[Results]]
"""A queued unit and the future its caller awaits."""


class GroupCommit:
    """``commit``/``prune`` over a queue drained by the store's ``_flush`` task."""

    path: str
    health: StoreHealth
    _pending: list[Waiting]
    _flusher: asyncio.Task[None] | None
    _closing: asyncio.Event
    _shut: bool

    async def commit(self, work: UnitOfWork | Iterable[Intent]) -> None:
        """Apply ``work`` atomically, in a transaction shared with concurrent callers; return
        once durable.

        While the store is failing this waits (the work is retried with backoff) rather than
        fail: nothing is confirmed before it is kept, and nothing is dropped. A unit the data
        refuses fails alone with :class:`StoreRejectedError`, its neighbours are kept.
        """
        await self._submit(list(UnitOfWork.of(work)))

    async def prune(self, finished_before: datetime, *, limit: int = 5000) -> int:
        """Delete up to ``limit`` alerts final since before ``finished_before`` with all their
        rows (freeing their space); the number deleted."""
        results = await self._submit([PruneFinished(finished_before, limit)])
        return results[0] or 0

    async def _submit(self, intents: list[Intent]) -> Results:
        """Queue ``intents`` for the next group commit; their results once durable."""
        if not intents:
            return []
        if self._shut:
            raise StoreClosedError(f"the store {self.path} is closed")
        if self._closing.is_set() and not self.health.available:
            raise StoreUnavailableError(f"the store cannot be written ({self.health.error})")
        future: asyncio.Future[Results] = asyncio.get_running_loop().create_future()
        self._pending.append((intents, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Write what is queued until the queue is empty (each store's own)."""
        raise NotImplementedError

    async def _pause(self, attempt: int) -> None:
        """Wait before retrying a fault; cut short when the store is closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), retry_delay(attempt))


def settle(future: asyncio.Future[Results], error: BaseException | None,
           results: Results | None = None) -> None:
    """Tell a waiting committer how its write ended."""
    if future.done():
        return
    if error is None:
        future.set_result(results or [])
    else:
        future.set_exception(error)
