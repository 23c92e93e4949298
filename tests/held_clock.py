"""A manual clock whose sleepers wait until the test lets time pass."""

from __future__ import annotations

import asyncio
from datetime import datetime

from alertline.clock import ManualClock


class HeldClock(ManualClock):
    """A :class:`ManualClock` whose :meth:`sleep` can be held: a dispatcher's pause then lasts
    until the test has done what must happen meanwhile (:meth:`release`)."""

    def __init__(self, start: datetime | None = None) -> None:
        super().__init__(start)
        self._running = asyncio.Event()
        self._running.set()
        self.waiting = asyncio.Event()  # set when a sleep is held

    def hold(self) -> None:
        """From now on, a sleep waits for :meth:`release`."""
        self._running.clear()

    def release(self) -> None:
        """Let held and later sleeps pass."""
        self._running.set()

    async def sleep(self, seconds: float) -> None:
        """Wait for :meth:`release`, then advance time by ``seconds``."""
        if not self._running.is_set():
            self.waiting.set()
            await self._running.wait()
        await super().sleep(seconds)
