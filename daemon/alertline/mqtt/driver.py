"""paho-mqtt driven by the asyncio event loop: no network thread, every callback on the loop.

paho offers the hooks an external loop needs (as aiomqtt 2.x and Home Assistant's MQTT client use
them): ``on_socket_open``/``on_socket_close`` say when a socket exists, the loop's reader calls
``loop_read`` when it is readable, ``on_socket_register_write``/``unregister_write`` say when
paho has bytes to send (the loop's writer then calls ``loop_write``), and ``loop_misc`` sends the
keepalive pings and notices a broker that stopped answering. So paho's callbacks (``on_message``,
``on_connect``, ``on_publish``...) run on the loop, in the order paho reads the packets, and the
client's state is only ever touched from the loop's thread.

The one blocking step is opening the connection (name lookup, TCP connect, TLS handshake, each
bounded by paho's connect timeout): :class:`LoopDriver` runs ``reconnect()`` in the loop's default
executor, as Home Assistant does. While it runs, nothing else touches the client: the socket
callbacks it triggers in that thread are ignored (the driver registers the new socket on the loop
once it returns) and :meth:`LoopDriver.call` holds other calls (publishes) back until then.
Connection attempts repeat with exponential backoff until :meth:`LoopDriver.stop_reconnecting`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import ssl
from collections.abc import Callable
from typing import Any, ParamSpec

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

_LOGGER = logging.getLogger(__name__)

RECONNECT_MIN_DELAY = 1.0
RECONNECT_MAX_DELAY = 60.0
# loop_misc only compares clocks with the keepalive (seconds), as paho's own loop does each second
MISC_INTERVAL = 1.0

FailureListener = Callable[[str], None]


_P = ParamSpec("_P")


def logged_callback(callback: Callable[_P, None]) -> Callable[_P, None]:
    """A paho callback whose failure is logged: an exception must not abort paho's reading of
    the packets after it (they are processed in the same ``loop_read``)."""
    @functools.wraps(callback)
    def guarded(*args: _P.args, **kwargs: _P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception:
            _LOGGER.exception("handling an MQTT event failed")
    return guarded


class LoopDriver:
    """Runs one paho client on the running event loop and keeps it connected."""

    def __init__(self, client: paho.Client, *, on_attempt_failed: FailureListener,
                 min_delay: float = RECONNECT_MIN_DELAY,
                 max_delay: float = RECONNECT_MAX_DELAY) -> None:
        self._client = client
        self._on_attempt_failed = on_attempt_failed
        self.min_delay = min_delay
        self.max_delay = max_delay
        self._loop = asyncio.get_running_loop()
        self._sock: Any = None  # the socket registered with the loop
        self._connecting = False
        self._held: list[Callable[[], None]] = []
        self._misc: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # the socket closed, or stop_reconnecting() was called
        self._stopping = False
        self._accepted = False
        self._failure: str | None = None
        client.on_socket_open = self._socket_opened
        client.on_socket_close = self._socket_closed
        client.on_socket_register_write = self._write_wanted
        client.on_socket_unregister_write = self._write_done

    def start(self) -> None:
        """Connect now, and again (with backoff) whenever the connection is lost."""
        if self._supervisor is None:
            self._supervisor = self._loop.create_task(self._keep_connected(),
                                                      name="mqtt-connection")

    def accepted(self) -> None:
        """The broker accepted the connection (CONNACK): the next drop retries at the
        minimum delay again."""
        self._accepted = True

    def attempt_failed(self, reason: str) -> None:
        """Why the connection being opened failed (the broker's CONNACK, or why it closed);
        reported once per attempt, the first reason first."""
        if not self._accepted and self._failure is None:
            self._failure = reason

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function`` (which uses the client) now, or, while a connection is being opened
        in the executor, right after that: paho is never used from two threads at once."""
        if self._connecting:
            self._held.append(function)
        else:
            function()

    async def stop_reconnecting(self) -> None:
        """No further connection attempts; waits for one under way (bounded by paho's connect
        timeout). An open connection stays open for a clean DISCONNECT."""
        self._stopping = True
        self._wake.set()
        if self._supervisor is not None:
            await self._supervisor

    async def closed(self, within: float) -> None:
        """Wait until the connection is closed (after ``disconnect()``); after ``within``
        seconds close it without waiting for the broker."""
        if self._sock is None:
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), within)
        sock = self._sock
        if sock is not None:
            self._detach(sock)
            sock.close()

    # -- the connection supervisor -------------------------------------------------------------

    async def _keep_connected(self) -> None:
        delay = 0.0
        while not self._stopping:
            if delay:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                if self._stopping:
                    break
            self._accepted, self._failure = False, None
            self._wake.clear()
            await self._open()
            if self._sock is not None:
                await self._wake.wait()  # closed, or stopping (then the caller disconnects)
                if self._sock is None and not self._accepted and not self._stopping:
                    self._on_attempt_failed(self._failure or "the connection closed before the "
                                            "broker accepted it")
            if self._accepted:
                delay = self.min_delay
            else:
                delay = min(max(delay * 2, self.min_delay), self.max_delay)

    async def _open(self) -> None:
        """One connection attempt: ``reconnect()`` in the executor, then the socket on the loop."""
        self._connecting = True
        future = self._loop.run_in_executor(None, self._client.reconnect)
        # if this task is cancelled (the loop is closing), the hold stays: the executor may still
        # be inside paho
        await asyncio.wait([future])
        self._connecting = False
        failure: str | None = None
        try:
            future.result()
        except OSError as err:  # refused, unreachable, name lookup, TLS (ssl.SSLError)
            failure = str(err) or type(err).__name__
        except Exception as err:
            _LOGGER.exception("opening the MQTT connection failed")
            failure = f"{type(err).__name__}: {err}"
        sock = self._client.socket()
        if sock is not None:
            self._attach(sock)
        held, self._held = self._held, []
        for function in held:
            function()
        if failure is not None:
            self._on_attempt_failed(failure)

    # -- the socket on the loop ------------------------------------------------------------------

    def _attach(self, sock: Any) -> None:
        self._sock = sock
        self._loop.add_reader(sock, self._readable)
        if self._client.want_write():  # the CONNECT packet, queued in the executor
            self._loop.add_writer(sock, self._writable)
        self._misc = self._loop.create_task(self._keepalive(), name="mqtt-keepalive")

    def _detach(self, sock: Any) -> None:
        self._sock = None
        self._loop.remove_reader(sock)
        self._loop.remove_writer(sock)
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        self._wake.set()

    def _readable(self) -> None:
        # loop_read() takes one packet, or as many as messages are in flight: the rest waits for
        # the next pass of the loop, so a burst of messages does not hold back the handlers
        sock = self._sock
        self._client.loop_read()
        if isinstance(sock, ssl.SSLSocket) and self._sock is sock and sock.pending():
            self._loop.call_soon(self._readable)  # decrypted TLS bytes make no readiness event

    def _writable(self) -> None:
        self._client.loop_write()

    async def _keepalive(self) -> None:
        """paho's timekeeping each second while the socket is open: pings, a silent broker."""
        while True:
            await asyncio.sleep(MISC_INTERVAL)
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                return

    # -- paho's socket callbacks (on the loop, except during a connect in the executor) ----------

    def _socket_opened(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if not self._connecting:
            self._attach(sock)

    def _socket_closed(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if not self._connecting and sock is self._sock:
            self._detach(sock)

    def _write_wanted(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if not self._connecting and sock is self._sock:
            self._loop.add_writer(sock, self._writable)

    def _write_done(self, _client: paho.Client, _userdata: Any, sock: Any) -> None:
        if not self._connecting and sock is self._sock:
            self._loop.remove_writer(sock)
