"""What the API emulators share: the loopback server, recorded requests, injected failures and
slow answers, the burst/window rate limit, and the standalone ``main()`` plumbing.

Each emulator module keeps only what its API does: its routes, validation, answers and state.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, Generic, Self, TypeVar

from aiohttp import web

RequestT = TypeVar("RequestT")


@dataclass(frozen=True, slots=True)
class Failure:
    """An answer a test asked for: HTTP ``status`` (or an API's own error ``code``), once."""

    status: int
    text: str = ""
    retry_after: float | None = None
    method: str | None = None  # None: any method
    path: str | None = None    # None: any path
    code: int | str | None = None  # e.g. a Fortytwo status_code or a SOAP fault kind

    def matches(self, method: str | None, path: str | None) -> bool:
        """Whether this failure answers a request with ``method`` to ``path``."""
        return self.method in (None, method) and self.path in (None, path)


class Failures:
    """The queue of injected failures: each is used by the first request it matches."""

    def __init__(self) -> None:
        self._queue: deque[Failure] = deque()

    def add(self, failure: Failure, count: int = 1) -> None:
        """Answer the next ``count`` matching requests with ``failure``."""
        self._queue.extend([failure] * count)

    def peek(self) -> Failure | None:
        """The next failure in line, without using it."""
        return self._queue[0] if self._queue else None

    def take(self, method: str | None = None, path: str | None = None) -> Failure | None:
        """The first failure matching the request, removed from the queue; None if none does."""
        for failure in self._queue:
            if failure.matches(method, path):
                self._queue.remove(failure)
                return failure
        return None

    def __len__(self) -> int:
        return len(self._queue)


class SlidingWindow:
    """At most ``burst`` requests in any ``window`` seconds: the emulated APIs' 429 rule."""

    def __init__(self) -> None:
        self._times: deque[float] = deque()

    def admit(self, now: float, burst: int | None, window: float) -> float | None:
        """None if a request at ``now`` is admitted (and counted), else seconds until one is."""
        if burst is None:
            return None
        while self._times and now - self._times[0] >= window:
            self._times.popleft()
        if len(self._times) >= burst:
            return self._times[0] + window - now if self._times else window
        self._times.append(now)
        return None


class EmulatorServer(Generic[RequestT]):
    """An emulated API: an aiohttp app on a loopback port (``port=0`` picks a free one).

    Run it with ``async with`` (or :meth:`start` and :meth:`close`); a subclass adds its routes
    in :meth:`add_routes`, keeps what it received in :attr:`requests` (via :meth:`remember`),
    answers what tests injected from ``_failures``, limits bursts with ``_rate`` and makes
    answers slow with :meth:`pause`, which :meth:`close` cuts short.
    """

    prefix: ClassVar[str] = ""  # path of the API below the server's root

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, record: bool = True,
                 max_body: int = 1024 * 1024) -> None:
        self.host, self.port = host, port
        self.record = record  # False: keep no requests (long benchmark runs)
        self.max_body = max_body
        self.requests: list[RequestT] = []
        self._failures = Failures()
        self._rate = SlidingWindow()
        self._slow: deque[float] = deque()
        self._released = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def add_routes(self, router: web.UrlDispatcher) -> None:
        """Register the API's handlers."""
        raise NotImplementedError

    async def start(self) -> None:
        """Start serving; ``port=0`` picks a free port."""
        app = web.Application(client_max_size=self.max_body)
        self.add_routes(app.router)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop serving (slow answers still waiting are released)."""
        self._released.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """The URL adapters are configured with (the server's root plus the API's prefix)."""
        return f"http://{self.host}:{self.port}{self.prefix}"

    def remember(self, request: RequestT) -> None:
        """Keep ``request`` in :attr:`requests` (unless :attr:`record` is off)."""
        if self.record:
            self.requests.append(request)

    def slow_next(self, seconds: float, count: int = 1) -> None:
        """Delay the next ``count`` answers by up to ``seconds`` (released early on close)."""
        self._slow.extend([seconds] * count)

    @staticmethod
    def retry_after_header(seconds: float | None) -> dict[str, str]:
        """The ``Retry-After`` header for ``seconds`` (none when None)."""
        return {} if seconds is None else {"Retry-After": f"{seconds:g}"}

    async def pause(self, seconds: float | None = None) -> None:
        """Wait ``seconds`` (default: the next :meth:`slow_next` delay, if any), or until close."""
        if seconds is None:
            if not self._slow:
                return
            seconds = self._slow.popleft()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._released.wait(), seconds)


    def run_standalone(self, banner: str, *, tick: Callable[[], Awaitable[object]] | None = None,
                       every: float = 1.0) -> None:
        """Serve until interrupted, printing ``banner`` (``{url}``: the base URL).

        ``tick`` is awaited every ``every`` seconds (an emulator that moves on real time).
        """
        async def serve() -> None:
            async with self:
                print(banner.format(url=self.base_url), flush=True)
                if tick is None:
                    await asyncio.Event().wait()
                    return
                while True:
                    await asyncio.sleep(every)
                    await tick()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve())


def standalone_parser(doc: str | None, *, port: int = 8080,
                      login: bool = False) -> argparse.ArgumentParser:
    """The command line of a standalone emulator (described by the first line of ``doc``):
    ``--host``, ``--port`` and, with ``login``, ``--user`` and ``--password``."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=port)
    if login:
        parser.add_argument("--user", default="user")
        parser.add_argument("--password", default="secret")
    return parser
