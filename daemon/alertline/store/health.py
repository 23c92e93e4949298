"""Whether the store can keep what it is given: store faults, backoff and the outage's lifecycle.

A write that fails because of the store's surroundings (disk full, a file system turned read-only,
an I/O error, a lock another process holds too long) is a *fault*: nothing is lost yet, because the
caller has not been told "kept". The store keeps such writes and retries them with backoff;
:class:`StoreHealth` records the outage, tells listeners once when it begins and once when it ends
(the daemon stops acknowledging and reports ``degraded``), and logs one line for each, not one per
message. Which driver errors are faults is each implementation's own
(:func:`alertline.store.sqlite_faults.is_fault`, :func:`alertline.store.postgres_faults.is_fault`);
this module is the same for every store.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from alertline.store.errors import StoreUnavailableError

_LOGGER = logging.getLogger(__name__)

__all__ = ["StoreHealth", "StoreUnavailableError", "describe", "retry_delay"]

T = TypeVar("T")

RETRY_FIRST_SECONDS = 0.1
RETRY_MAX_SECONDS = 5.0
QUIET_SECONDS = 60.0

def retry_delay(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0, 1, 2...): doubling from 0.1 s up to 5 s."""
    return float(min(RETRY_MAX_SECONDS, RETRY_FIRST_SECONDS * 2 ** min(attempt, 16)))


StateListener = Callable[[bool], None]


class StoreHealth:
    """The store's availability: one outage at a time, with its cause and its duration."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.available = True
        self.error = ""
        self.outages = 0
        self.failed_attempts = 0
        self._since = 0.0
        self._cause_is_write = False
        self._recovered_at = float("-inf")
        self._quiet = False
        self._flaps = 0
        self._listeners: list[StateListener] = []
        self._down: asyncio.Event | None = None

    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(available)`` when an outage begins (False) and ends (True)."""
        self._listeners.append(listener)

    @property
    def down_seconds(self) -> float:
        """How long the current outage has lasted (0 while available)."""
        return 0.0 if self.available else time.monotonic() - self._since

    def failed(self, error: BaseException, *, writing: bool) -> None:
        """A store operation failed with a fault: begin (or continue) the outage."""
        self.failed_attempts += 1
        self.error = describe(error)
        if not self.available:
            self._cause_is_write |= writing
            _LOGGER.debug("store %s still unavailable: %s", self.path, self.error)
            return
        self.available = False
        self.outages += 1
        self._since = time.monotonic()
        self._cause_is_write = writing
        # a store that keeps failing and recovering (a disk at its last bytes) gets its pair of
        # lines once a minute, not once per flap
        self._quiet = self._since - self._recovered_at < QUIET_SECONDS
        if self._quiet:
            self._flaps += 1
            _LOGGER.debug("store %s failing again: %s", self.path, self.error)
        else:
            _LOGGER.error("the store %s cannot %s (%s): nothing more is acknowledged (MQTT "
                          "messages stay with the broker, Alertmanager gets 503) until it works "
                          "again; retrying with backoff%s", self.path,
                          "be written" if writing else "be read", self.error,
                          f" (it also failed {self._flaps} times briefly since the last such "
                          "line)" if self._flaps else "")
            self._flaps = 0
        self._down_event().set()
        self._notify(False)

    def succeeded(self, *, writing: bool) -> None:
        """A store operation worked: a write ends any outage, a read ends one a read began."""
        if self.available or (self._cause_is_write and not writing):
            return
        _LOGGER.log(logging.DEBUG if self._quiet else logging.WARNING,
                    "the store %s works again after %.1f s: resuming", self.path,
                    self.down_seconds)
        self._recovered_at = time.monotonic()
        self.available = True
        self.error = ""
        self._down_event().clear()
        self._notify(True)

    def _down_event(self) -> asyncio.Event:
        if self._down is None:
            self._down = asyncio.Event()
            if not self.available:
                self._down.set()
        return self._down

    async def unless_failing(self, work: Awaitable[T]) -> T:
        """``await work``, or raise :class:`StoreUnavailableError` as soon as the store is
        failing; the work itself goes on (so what it commits later is kept, not torn)."""
        task = asyncio.ensure_future(work)
        down = asyncio.ensure_future(self._down_event().wait())
        try:
            await asyncio.wait({task, down}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            down.cancel()
        if task.done():
            return task.result()
        task.add_done_callback(_consume)
        raise StoreUnavailableError(f"the store cannot be written now ({self.error})")

    def _notify(self, available: bool) -> None:
        for listener in list(self._listeners):
            try:
                listener(available)
            except Exception:
                _LOGGER.exception("store health listener failed")


def describe(error: BaseException) -> str:
    """A short, path-free description of a store fault for logs and ``/healthz``."""
    name = getattr(error, "sqlite_errorname", None)
    text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
    return f"{text} ({name})" if name else text


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a background task's outcome (its failure was already reported elsewhere)."""
    if not task.cancelled():
        task.exception()
