"""What keeps a hostile HTTP client from hurting the daemon: connection caps, read deadlines,
and log lines for repeated client errors that are rate-limited.

A slowloris client (many connections, each sending its request a byte at a time) once held 1,100
connections, exhausted the file descriptors so that ``/healthz`` went dark, and made the daemon
write 126 MB of logs in 45 s. Here:

- :class:`ConnectionGuard` admits at most ``max_connections`` connections, and at most
  ``max_connections_per_client`` from one address (so one host cannot take every slot, and
  ``/healthz`` still answers a monitor from elsewhere); a connection over a cap gets a plain
  ``503`` and is closed at once, without reaching aiohttp;
- the request head must arrive within ``header_timeout`` of the connection (or of the previous
  answer on a kept-alive connection): aiohttp closes a connection that is still waiting for a
  complete head when its keep-alive timer fires, so :meth:`ConnectionLimits.handler_args` sets
  that timer to ``header_timeout``;
- :func:`body_deadline` closes a connection whose request body has not fully arrived within
  ``body_timeout``;
- :class:`LogThrottle` and :class:`RepeatFilter` let through a few lines per kind of client
  error and minute, and say how many similar ones they held back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

_LOGGER = logging.getLogger(__name__)

REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
           b"Content-Length: 20\r\nRetry-After: 5\r\nConnection: close\r\n\r\n"
           b"too many connections")
LINGER = 2.0  # seconds a refused connection may take to read its 503 before it is closed
MAX_LINGERING = 1024  # beyond this many refused connections at once, close without a 503
# loggers through which many clients' errors can flood the log (asyncio: accept() failures)
NOISY_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal",
                 "asyncio")


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The HTTP server's caps and deadlines (the ``http`` section)."""

    max_connections: int = 256
    max_connections_per_client: int = 32
    header_timeout: float = 10.0
    body_timeout: float = 30.0

    @classmethod
    def from_config(cls, http: Mapping[str, Any]) -> ConnectionLimits:
        """The limits of a validated ``http`` section (defaults for missing keys)."""
        default = cls()
        return cls(
            max_connections=int(http.get("max_connections", default.max_connections)),
            max_connections_per_client=int(http.get("max_connections_per_client",
                                                    default.max_connections_per_client)),
            header_timeout=float(http.get("header_timeout", default.header_timeout)),
            body_timeout=float(http.get("body_timeout", default.body_timeout)))

    def handler_args(self) -> dict[str, Any]:
        """aiohttp request handler settings: the keep-alive timer doubles as the head deadline."""
        return {"keepalive_timeout": self.header_timeout}


class LogThrottle:
    """At most ``burst`` log lines per key and ``window`` seconds; the next line after a quiet
    spell says how many were held back."""

    def __init__(self, logger: logging.Logger, *, burst: int = 5, window: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.burst = burst
        self.window = window
        self.clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # key: (start, passed, held)

    def allow(self, key: str) -> tuple[bool, int]:
        """Whether a line for ``key`` may pass now, and how many were held back before it."""
        now = self.clock()
        start, passed, held = self._windows.get(key, (now, 0, 0))
        if now - start >= self.window:
            start, passed = now, 0
        if passed >= self.burst:
            self._windows[key] = (start, passed, held + 1)
            return False, 0
        if len(self._windows) > 1000:  # keys come from code, not clients; stay bounded anyway
            self._windows.clear()
        self._windows[key] = (start, passed + 1, 0)
        return True, held

    def warning(self, key: str, message: str, *args: Any) -> None:
        """Log ``message % args`` at WARNING unless ``key`` is over its budget."""
        allowed, held = self.allow(key)
        if allowed:
            suffix = f" ({held} similar lines suppressed)" if held else ""
            self.logger.warning(message + suffix, *args)


class RepeatFilter(logging.Filter):
    """A logging filter that throttles records by logger and message template."""

    def __init__(self, throttle: LogThrottle) -> None:
        super().__init__()
        self.throttle = throttle

    def filter(self, record: logging.LogRecord) -> bool:
        """Let the record pass if its kind is within its budget."""
        allowed, held = self.throttle.allow(f"{record.name}:{record.msg}")
        if allowed and held:
            record.msg = f"{record.msg} ({held} similar lines suppressed)"
        return allowed


_FILTER = RepeatFilter(LogThrottle(_LOGGER))


def throttle_noisy_loggers() -> None:
    """Rate-limit the loggers that repeat one line per misbehaving client (idempotent)."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class ConnectionGuard:
    """A protocol factory around aiohttp's: counts connections and refuses those over a cap."""

    def __init__(self, factory: Callable[[], asyncio.BaseProtocol],
                 limits: ConnectionLimits, throttle: LogThrottle) -> None:
        self.factory = factory
        self.limits = limits
        self.throttle = throttle
        self.by_client: Counter[str] = Counter()
        self.refused = 0
        self.lingering = 0

    @property
    def active(self) -> int:
        """Connections admitted and still open."""
        return sum(self.by_client.values())

    def __call__(self) -> asyncio.Protocol:
        """A protocol for one new connection."""
        return _GuardedConnection(self)

    def admit(self, client: str) -> bool:
        """Count a new connection from ``client``, or say no if a cap is reached."""
        if self.active >= self.limits.max_connections:
            self._refuse("global", "refused HTTP connections: %d open, the cap "
                         "(http.max_connections)", self.limits.max_connections)
            return False
        if self.by_client[client] >= self.limits.max_connections_per_client:
            self._refuse(f"client:{client}", "refused HTTP connections from %s: %d open, the "
                         "cap per client (http.max_connections_per_client)", client,
                         self.limits.max_connections_per_client)
            return False
        self.by_client[client] += 1
        return True

    def release(self, client: str) -> None:
        """A connection from ``client`` closed."""
        self.by_client[client] -= 1
        if self.by_client[client] <= 0:
            del self.by_client[client]

    def _refuse(self, key: str, message: str, *args: Any) -> None:
        self.refused += 1
        self.throttle.warning(key, message, *args)


class _GuardedConnection(asyncio.Protocol):
    """Admits the connection (then hands every event to aiohttp's handler) or refuses it."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard
        self.inner: asyncio.Protocol | None = None
        self.client = ""
        self._linger: asyncio.TimerHandle | None = None
        # the first request head's deadline, kept here: aiohttp before 3.14 does not close a
        # connection whose head trickles in (its keep-alive timer only covers idle connections)
        self._head_deadline: asyncio.TimerHandle | None = None
        self._head_tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        client = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if not self.guard.admit(client):
            self._refuse(transport)
            return
        self.client = client
        inner = self.guard.factory()
        assert isinstance(inner, asyncio.Protocol)
        self.inner = inner
        self._head_deadline = asyncio.get_running_loop().call_later(
            self.guard.limits.header_timeout, self._head_overdue, transport)
        inner.connection_made(transport)

    def _head_overdue(self, transport: asyncio.BaseTransport) -> None:
        self._head_deadline = None
        self.guard.throttle.warning(  # one budget per client with its refusals: a flood
            f"client:{self.client}", "closed an HTTP connection from %s: the request head did "
            "not arrive within %gs (http.header_timeout)", self.client,
            self.guard.limits.header_timeout)
        transport.close()

    def _refuse(self, transport: asyncio.BaseTransport) -> None:
        """Answer 503 and half-close; what the client still sends is read and dropped until it
        closes or :data:`LINGER` passes (closing with unread input would reset the connection
        and lose the answer)."""
        if self.guard.lingering >= MAX_LINGERING or \
                not isinstance(transport, asyncio.WriteTransport):
            transport.close()
            return
        transport.write(REFUSAL)
        if transport.can_write_eof():
            transport.write_eof()
        self.guard.lingering += 1
        self._linger = asyncio.get_running_loop().call_later(LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self._head_deadline is not None:
            seen = self._head_tail + data
            if b"\r\n\r\n" in seen:
                self._head_deadline.cancel()
                self._head_deadline = None
            self._head_tail = seen[-3:]
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.inner is None:
            return False  # a refused client is done: close
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
            self.guard.lingering -= 1
        if self.inner is not None:
            self.guard.release(self.client)
            self.inner.connection_lost(exc)
            self.inner = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def body_deadline(timeout: float, throttle: LogThrottle) -> Any:
    """Middleware: close the connection if a request's body is not complete within ``timeout``
    seconds (the handler is reading it, or about to)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not request.body_exists:
            return await handler(request)
        watchdog = asyncio.create_task(_expect_body(request, timeout, throttle))
        try:
            return await handler(request)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    return middleware


async def _expect_body(request: web.Request, within: float, throttle: LogThrottle) -> None:
    try:
        async with asyncio.timeout(within):
            await request.content.wait_eof()
    except TimeoutError:
        throttle.warning("body", "closed an HTTP connection from %s: the request body did not "
                         "arrive within %gs (http.body_timeout)", request.remote, within)
        if request.transport is not None:
            request.transport.close()
