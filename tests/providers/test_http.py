"""A provider cannot hurt the daemon (#12.11), and a rate limit is not hammered (#11.1): the
shared HTTP layer against real loopback servers that misbehave on purpose.

Each server is a few lines of asyncio on a free port, speaking just enough HTTP/1.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime

import httpx
import pytest
from lxml import etree

from alertline.clock import ManualClock
from alertline.errors import ProviderAnswerError, RateLimitedError, TransientError
from alertline.model import utcnow
from alertline.providers._http import MAX_RESPONSE_BYTES, HttpApi, RetryPolicy
from alertline.providers.retarus.voice_soap import SoapTransport
from alertline.redact import Redactor

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A loopback TCP server running ``handler`` per connection; counts requests and bytes."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests = 0
        self.sent = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await read_request(reader)
            self.requests += 1
            await self.handler(reader, writer)
        with contextlib.suppress(Exception):
            writer.close()

    async def write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
        self.sent += len(data)


async def read_request(reader: asyncio.StreamReader) -> None:
    """Read one request's head and body (Content-Length only)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)


def answer(status: int, body: bytes = b"", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}",
             *(f"{k.replace('_', '-')}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.fixture
async def api_factory() -> AsyncIterator[Callable[..., HttpApi]]:
    apis: list[HttpApi] = []

    def make(url: str, timeout: float = 5.0) -> HttpApi:
        api = HttpApi("hostile", url, timeout=timeout, clock=ManualClock(),
                      retry=RetryPolicy(attempts=4, base_delay=0.01))
        apis.append(api)
        return api

    yield make
    for api in apis:
        await api.aclose()


async def test_a_huge_answer_is_cut_off_while_streaming(
        api_factory: Callable[..., HttpApi]) -> None:
    chunk = b"x" * 65536

    async def endless(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\n\r\n")
        for _chunk in range(100 * 1024 * 1024 // len(chunk)):
            await server.write(writer, chunk)

    async with Server(endless) as server:
        with pytest.raises(ProviderAnswerError, match="size limit"):
            await asyncio.wait_for(api_factory(server.url).request("GET", "/jobs"), 10)
        # the client stopped reading at the limit: far less than the 100 MB was ever sent
        assert server.sent < 20 * MAX_RESPONSE_BYTES


async def test_a_trickling_answer_meets_the_overall_deadline(
        api_factory: Callable[..., HttpApi]) -> None:
    async def trickle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _byte in range(100000):  # each byte well within the per-read timeout
            await server.write(writer, b"x")
            await asyncio.sleep(0.02)

    async with Server(trickle) as server:
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out") as err:
            await api_factory(server.url, timeout=0.3).request("POST", "/jobs", json={})
        assert time.monotonic() - started < 3.0  # 2 x timeout, not 100000 x 0.02 s
        assert server.requests == 1  # a POST the provider may have acted on is not repeated
        assert err.value.retryable


async def test_a_reset_connection_is_transient(api_factory: Callable[..., HttpApi]) -> None:
    async def reset(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST instead of an answer

    async with Server(reset) as server:
        with pytest.raises(TransientError, match="connection failed"):
            await api_factory(server.url).request("GET", "/jobs")
        assert server.requests == 4  # a GET is safe to repeat


async def test_an_oserror_below_httpx_is_transient() -> None:
    class Broken(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            raise ConnectionResetError(104, "Connection reset by peer")

    async with httpx.AsyncClient(transport=Broken()) as client:
        api = HttpApi("hostile", "http://provider.invalid", client=client, clock=ManualClock(),
                      retry=RetryPolicy(attempts=2))
        with pytest.raises(TransientError, match=r"connection failed: .*reset"):
            await api.request("POST", "/jobs", json={})


async def test_a_429_is_raised_at_once_with_an_http_date_retry_after(
        api_factory: Callable[..., HttpApi]) -> None:
    when = format_datetime(utcnow() + timedelta(seconds=90), usegmt=True)

    async def limited(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer(429, Retry_After=when))

    async with Server(limited) as server:
        with pytest.raises(RateLimitedError) as err:
            await api_factory(server.url).request("GET", "/jobs")
        assert server.requests == 1  # no tight retry loop against a limited provider
        assert err.value.retry_after is not None and 85 <= err.value.retry_after <= 90


async def test_a_503_is_retried_once_then_raised_with_its_retry_after(
        api_factory: Callable[..., HttpApi]) -> None:
    async def unavailable(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer(503, b"busy", Retry_After="12"))

    async with Server(unavailable) as server:
        with pytest.raises(TransientError) as err:
            await api_factory(server.url).request("GET", "/jobs")
        assert server.requests == 2
        assert (err.value.status, err.value.retry_after) == (503, 12.0)


async def test_a_gzip_answer_is_decoded_once(api_factory: Callable[..., HttpApi]) -> None:
    body = gzip.compress(b'{"jobId": "J1"}')

    async def gzipped(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, answer(200, body, Content_Encoding="gzip"))

    async with Server(gzipped) as server:
        response = await api_factory(server.url).request("GET", "/jobs")
        assert response.json() == {"jobId": "J1"}


async def test_the_soap_transport_has_the_same_deadline_and_connection_rules() -> None:
    """Retarus Voice posts through zeep's transport, not HttpApi: the same protections hold."""
    async def trickle(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.write(writer, b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
        for _byte in range(100000):
            await server.write(writer, b"<")
            await asyncio.sleep(0.02)

    async def reset(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async with httpx.AsyncClient() as client:
        transport = SoapTransport("voice", client, timeout=0.3, max_bytes=MAX_RESPONSE_BYTES,
                                  redactor=Redactor())
        async with Server(trickle) as server:
            started = time.monotonic()
            with pytest.raises(TransientError, match="timed out"):
                await transport.post_xml(server.url, etree.fromstring(b"<x/>"), {})
            assert time.monotonic() - started < 3.0
        async with Server(reset) as server:
            with pytest.raises(TransientError):
                await transport.post_xml(server.url, etree.fromstring(b"<x/>"), {})
