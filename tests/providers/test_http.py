"""A provider cannot hurt the daemon (#12.11), and a rate limit is not hammered (#11.1): the
shared HTTP layer against real loopback servers that misbehave on purpose.

The first servers are a few lines of asyncio on a free port, speaking just enough HTTP/1.1 to
misbehave below HTTP (trickling, resetting, lying about lengths). The rest answer through aiohttp
(:class:`LoopbackProvider`), like the emulators: timeouts, the retry policy, status -> error
mapping, ``Retry-After``, size limits and secrets kept out of errors and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import logging
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from aiohttp import web
from lxml import etree

from alertline.clock import ManualClock
from alertline.errors import (
    AuthError,
    DuplicateError,
    ProviderAnswerError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from alertline.model import utcnow
from alertline.providers._http import (
    MAX_RESPONSE_BYTES,
    HttpApi,
    RetryPolicy,
    mask_query_params,
)
from alertline.providers.retarus.voice_soap import SoapTransport
from alertline.redact import MASK, Redactor

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


# ---- against an aiohttp provider on a loopback port ---------------------------------------

Answer = Callable[[web.Request, int], Awaitable[web.StreamResponse]]


async def _ok(_: web.Request, __: int) -> web.StreamResponse:
    return web.json_response({"ok": True})


class LoopbackProvider:
    """An aiohttp app on a free loopback port; ``answer(request, n)`` answers the n-th request
    (1-based) of any method and path. Records each request's method and path."""

    def __init__(self, answer: Answer = _ok) -> None:
        self.answer = answer
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.method, request.path_qs))
        await request.read()
        return await self.answer(request, len(self.requests))

    async def __aenter__(self) -> LoopbackProvider:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def api(url: str, *, clock: ManualClock | None = None, timeout: float = 5.0,
        attempts: int = 4, **settings: Any) -> HttpApi:
    """An endpoint whose retry waits pass at once on a manual clock."""
    return HttpApi("provider", url, timeout=timeout, clock=clock or ManualClock(),
                   retry=RetryPolicy(attempts=attempts, base_delay=1.0, jitter=0.2),
                   **settings)


def status(code: int, body: object = None, **headers: str) -> Answer:
    """Every request answered with ``code`` and ``body`` (JSON unless bytes or str);
    ``Retry_After="7"`` sends the header ``Retry-After: 7``."""
    headers = {name.replace("_", "-"): value for name, value in headers.items()}

    async def answer(_: web.Request, __: int) -> web.StreamResponse:
        if isinstance(body, bytes | str):
            return web.Response(status=code, body=body, headers=headers)
        return web.Response(status=code, text=json.dumps(body) if body is not None else "",
                            content_type="application/json", headers=headers)
    return answer


async def test_a_read_timeout_repeats_a_get_but_never_a_post() -> None:
    """The provider may have acted on a POST whose answer timed out: it is not sent twice."""
    async def stall(_: web.Request, __: int) -> web.StreamResponse:
        await asyncio.sleep(2)
        return web.json_response({})

    async with LoopbackProvider(stall) as provider:
        endpoint = api(provider.url, timeout=0.2, attempts=3)
        with pytest.raises(TransientError, match="timed out") as err:
            await endpoint.request("GET", "/jobs")
        assert err.value.retryable and len(provider.requests) == 3
        provider.requests.clear()
        with pytest.raises(TransientError, match="timed out"):
            await endpoint.request("POST", "/jobs", json={"text": "hi"})
        assert len(provider.requests) == 1
        await endpoint.aclose()


async def test_a_refused_connection_is_retried_even_for_a_post() -> None:
    """Nothing reached the provider, so repeating a POST cannot send it twice."""
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    attempts: list[int] = []

    async def count(number: int) -> None:
        attempts.append(number)

    endpoint = api(url, attempts=3)
    with pytest.raises(TransientError, match="cannot connect") as err:
        await endpoint.request("POST", "/jobs", json={}, on_attempt=count)
    assert attempts == [1, 2, 3]
    assert err.value.request_sent is False  # type: ignore[attr-defined]
    await endpoint.aclose()


async def test_server_errors_are_retried_with_doubling_jittered_waits() -> None:
    async def flaky(_: web.Request, number: int) -> web.StreamResponse:
        if number < 3:
            return web.Response(status=502, text="bad gateway")
        return web.json_response({"jobId": "J7"})

    clock = ManualClock()
    started = clock.now()
    async with LoopbackProvider(flaky) as provider:
        endpoint = api(provider.url, clock=clock)
        response = await endpoint.request("GET", "/jobs/J7")
        await endpoint.aclose()
    assert response.json() == {"jobId": "J7"} and len(provider.requests) == 3
    waited = (clock.now() - started).total_seconds()
    assert 0.8 + 1.6 <= waited <= 1.2 + 2.4  # 1 s then 2 s, each +-20 %


async def test_the_last_error_is_raised_once_the_attempts_are_spent() -> None:
    async with LoopbackProvider(status(500, {"message": "database down"})) as provider:
        endpoint = api(provider.url, attempts=3)
        with pytest.raises(TransientError) as err:
            await endpoint.request("GET", "/jobs")
        await endpoint.aclose()
    assert len(provider.requests) == 3
    assert (err.value.status, err.value.message) == (500, "HTTP 500: database down")


async def test_a_server_error_answering_a_post_is_retried() -> None:
    """A 5xx is an answer: the provider says it did not do it, so even a POST is repeated (a
    timed-out POST, which may have been acted on, is not: see the timeout tests)."""
    async def once_down(_: web.Request, number: int) -> web.StreamResponse:
        if number == 1:
            return web.Response(status=500, text="database down")
        return web.json_response({"jobId": "J8"})

    async with LoopbackProvider(once_down) as provider:
        endpoint = api(provider.url, clock=ManualClock())
        response = await endpoint.request("POST", "/jobs", json={})
        await endpoint.aclose()
    assert response.json() == {"jobId": "J8"} and len(provider.requests) == 2


@pytest.mark.parametrize(("code", "error", "retried"), [
    (400, RejectedError, False), (401, AuthError, False), (403, AuthError, False),
    (409, DuplicateError, False), (422, RejectedError, False), (408, TransientError, True),
    (504, TransientError, True),
])
async def test_each_status_becomes_its_typed_error(
        code: int, error: type[ProviderError], retried: bool) -> None:
    body = {"error": {"code": "E42", "message": "number not allowed"}}
    async with LoopbackProvider(status(code, body)) as provider:
        endpoint = api(provider.url, attempts=2)
        with pytest.raises(ProviderError) as err:
            await endpoint.request("GET", "/jobs")
        await endpoint.aclose()
    assert type(err.value) is error
    assert (err.value.status, err.value.code) == (code, "E42")
    assert err.value.message == f"HTTP {code}: number not allowed"
    assert len(provider.requests) == (2 if retried else 1)


async def test_a_429_carries_its_retry_after_in_seconds_and_is_not_repeated() -> None:
    async with LoopbackProvider(status(429, "slow down", Retry_After="7")) as provider:
        endpoint = api(provider.url)
        with pytest.raises(RateLimitedError) as err:
            await endpoint.request("GET", "/jobs")
        assert err.value.retry_after == 7.0 and len(provider.requests) == 1
        provider.answer = status(429, "slow down")
        with pytest.raises(RateLimitedError) as err:
            await endpoint.request("GET", "/jobs")
        assert err.value.retry_after is None  # the dispatcher's own window then applies
        await endpoint.aclose()


async def test_a_503_is_repeated_once_then_raised_as_throttled() -> None:
    async with LoopbackProvider(status(503, "maintenance", Retry_After="30")) as provider:
        endpoint = api(provider.url, attempts=4)
        with pytest.raises(TransientError) as err:
            await endpoint.request("POST", "/jobs", json={})
        await endpoint.aclose()
    assert len(provider.requests) == 2
    assert (err.value.status, err.value.retry_after) == (503, 30.0)


async def test_an_answer_of_exactly_the_limit_is_read_and_one_byte_more_is_refused() -> None:
    async def sized(request: web.Request, _: int) -> web.StreamResponse:
        extra = int(request.query.get("extra", "0"))
        return web.Response(body=b"x" * (MAX_RESPONSE_BYTES + extra))

    async with LoopbackProvider(sized) as provider:
        endpoint = api(provider.url)
        response = await endpoint.request("GET", "/big")
        assert len(response.content) == MAX_RESPONSE_BYTES
        with pytest.raises(ProviderAnswerError, match="size limit"):
            await endpoint.request("GET", "/big?extra=1")
        await endpoint.aclose()


async def test_the_limit_counts_the_decoded_answer_so_a_gzip_bomb_is_refused() -> None:
    bomb = gzip.compress(b"0" * (4 * MAX_RESPONSE_BYTES))
    assert len(bomb) < MAX_RESPONSE_BYTES // 100

    async with LoopbackProvider(status(200, bomb, Content_Encoding="gzip")) as provider:
        endpoint = api(provider.url)
        with pytest.raises(ProviderAnswerError, match="size limit"):
            await endpoint.request("GET", "/jobs")
        await endpoint.aclose()


async def test_a_password_echoed_by_the_provider_is_masked_in_errors_and_retry_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    password = "Tr0ub4dor-3"
    echo = status(500, {"message": f"login acme/{password} refused by backend"})
    caplog.set_level(logging.INFO)
    async with LoopbackProvider(echo) as provider:
        endpoint = api(provider.url, attempts=2, auth=("acme", password))
        with pytest.raises(TransientError) as err:
            await endpoint.request("GET", "/jobs")
        await endpoint.aclose()
    assert password not in str(err.value) and MASK in str(err.value)
    assert "retry 1/1" in caplog.text and password not in caplog.text


async def test_credentials_in_the_query_are_masked_in_httpx_log_lines(
        caplog: pytest.LogCaptureFixture) -> None:
    """Retarus' HTTP SMS API sends its login in the query; httpx logs every request URL."""
    mask_query_params("probe_login")
    caplog.set_level(logging.INFO, logger="httpx")
    async with LoopbackProvider() as provider:
        endpoint = api(provider.url)
        await endpoint.request("GET", "/send?probe_login=acme-id&pass=pw-12345&to=49170")
        await endpoint.aclose()
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines and all("acme-id" not in line and "pw-12345" not in line for line in lines)
    assert "to=49170" in lines[0]  # only the secrets are masked


async def test_an_error_the_provider_reports_inside_a_success_body_is_raised() -> None:
    """``classify`` reads errors that come with HTTP 200, like Fortytwo's ``result_info``."""
    def classify(response: httpx.Response) -> ProviderError | None:
        info = response.json().get("result_info", {})
        if info.get("status_code") == 401:
            return AuthError("provider", info["description"], status=401)
        return None

    async with LoopbackProvider(status(200, {"result_info": {
            "status_code": 401, "description": "Invalid token"}})) as provider:
        endpoint = api(provider.url, classify=classify)
        with pytest.raises(AuthError, match="Invalid token"):
            await endpoint.request("POST", "/im/send", json={})
        await endpoint.aclose()
    assert len(provider.requests) == 1
