"""Everything adapters share about HTTP: client, timeouts, retries with backoff, error mapping.

A provider cannot hurt the daemon through this module: an answer is read while streaming and cut
off at :data:`MAX_RESPONSE_BYTES`, every exchange has an overall deadline (a trickling answer
cannot hold a request slot past ``timeout``), and any connection failure (``OSError`` included)
is a :class:`TransientError`. A rate limit (429, and 503 after one quick retry) is raised at once
as a :class:`RateLimitedError` / :class:`TransientError`: pausing the provider is the
dispatcher's job (:mod:`alertline.engine.dispatch`), hammering it from here would only
prolong the limit.

Adapters import everything HTTP from here. Two siblings keep this module to its I/O and are
re-exported: :mod:`._options` (the transport options every adapter takes, described once in
:func:`transport_options`, and the :class:`RetryPolicy`) and :mod:`._answers` (tolerant reading
of JSON and error bodies, ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from alertline.clock import Clock, SystemClock
from alertline.errors import (
    AuthError,
    DuplicateError,
    ProviderAnswerError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from alertline.providers._answers import (
    default_error_message,
    first_present,
    json_object,
    retry_after_seconds,
)
from alertline.providers._options import (
    DEFAULT_TIMEOUT,
    RetryPolicy,
    retry_policy,
    tracking_capabilities,
    tracking_deadline,
    transport_options,
)
from alertline.providers.base import is_throttled
from alertline.redact import MASK, Redactor, redact_text

if TYPE_CHECKING:
    from alertline.providers.base import ProviderContext

__all__ = [
    "DEADLINE_FACTOR",
    "DEFAULT_TIMEOUT",
    "MAX_RESPONSE_BYTES",
    "Classify",
    "ErrorMessage",
    "HttpApi",
    "RetryPolicy",
    "default_error_message",
    "error_for_status",
    "error_text",
    "first_present",
    "is_throttled",
    "json_object",
    "mask_query_params",
    "read_limited",
    "retry_after_seconds",
    "retry_policy",
    "tracking_capabilities",
    "tracking_deadline",
    "transport_error",
    "transport_options",
    "with_retries",
]

_LOGGER = logging.getLogger(__name__)
_T = TypeVar("_T")


class _UrlSecretFilter(logging.Filter):
    """Masks credentials in httpx's own request log lines (query ``pass=``, URL userinfo).

    Adapters whose URLs carry other credentials add their parameter names with
    :func:`mask_query_params`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._names: set[str] = set()
        self._params: re.Pattern[str] | None = None

    def add(self, names: tuple[str, ...]) -> None:
        """Also mask the values of the query parameters ``names``."""
        self._names.update(name.lower() for name in names)
        alternatives = "|".join(sorted(re.escape(name) for name in self._names))
        self._params = re.compile(rf"(?i)\b({alternatives})=([^&\s\"']*)")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets masked; never drops it."""
        message = record.getMessage()
        masked = redact_text(message)
        if self._params is not None:
            masked = self._params.sub(lambda m: f"{m.group(1)}={MASK}", masked)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_URL_FILTER = _UrlSecretFilter()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_URL_FILTER)


def mask_query_params(*names: str) -> None:
    """Mask these query parameters (e.g. a login id sent as ``user=``) in httpx's log lines."""
    _URL_FILTER.add(names)


MAX_RESPONSE_BYTES = 2 * 1024 * 1024
DEADLINE_FACTOR = 2.0
"""The overall deadline of an exchange, in ``timeout`` units: a provider that trickles its answer
a byte at a time (each read within ``timeout``) still frees the request slot."""


ErrorMessage = Callable[[httpx.Response], tuple[str | None, str | None]]
Classify = Callable[[httpx.Response], ProviderError | None]

def error_for_status(provider: str, response: httpx.Response,
                     describe: ErrorMessage = default_error_message,
                     reasons: Mapping[int, str] | None = None,
                     redactor: Redactor | None = None) -> ProviderError:
    """The typed error for a non-success HTTP response (its text scrubbed of secrets)."""
    status = response.status_code
    code, message = describe(response)
    text = message or (reasons or {}).get(status) or response.reason_phrase or f"HTTP {status}"
    text = (redactor or Redactor()).text(f"HTTP {status}: {text}")
    if status in (401, 403):
        return AuthError(provider, text, code=code, status=status)
    if status == 409:
        return DuplicateError(provider, text, code=code, status=status)
    if status == 429:
        return RateLimitedError(provider, text, retry_after=retry_after_seconds(response),
                                code=code, status=status)
    if status >= 500 or status in (408, 425):
        error = TransientError(provider, text, code=code, status=status)
        if status == 503:
            error.retry_after = retry_after_seconds(response)
        return error
    return RejectedError(provider, text, code=code, status=status)


def error_text(err: Exception, redactor: Redactor) -> str:
    """An exception's message (its class name if it has none) with secrets masked."""
    return redactor.text(str(err) or type(err).__name__)


def transport_error(provider: str, err: httpx.HTTPError, redactor: Redactor) -> TransientError:
    """The :class:`TransientError` for an exchange that failed below HTTP.

    Its ``request_sent`` attribute says whether the provider may have received the request: a
    request that may have been acted on is repeated only when it is idempotent.
    """
    text = error_text(err, redactor)
    if isinstance(err, httpx.ConnectError):
        error, sent = TransientError(provider, f"cannot connect: {text}"), False
    elif isinstance(err, httpx.TimeoutException):
        error = TransientError(provider, f"timed out: {text}")
        sent = not isinstance(err, httpx.ConnectTimeout | httpx.PoolTimeout)
    else:
        error, sent = TransientError(provider, f"connection failed: {text}"), True
    error.request_sent = sent  # type: ignore[attr-defined]
    return error


def _may_retry(err: ProviderError, idempotent: bool, number: int) -> bool:
    if not err.retryable or getattr(err, "no_retry", False):
        return False
    if is_throttled(err):
        # no tight loop against a limited provider: a 429 is never repeated here, a 503 once;
        # the provider's dispatcher then pauses it (honouring Retry-After)
        return not isinstance(err, RateLimitedError) and number == 1
    return idempotent or not getattr(err, "request_sent", False)


async def with_retries(provider: str, attempt: Callable[[int], Awaitable[_T]], *,
                       retry: RetryPolicy, clock: Clock, redactor: Redactor,
                       idempotent: bool, what: str | None = None) -> _T:
    """``await attempt(n)`` until it succeeds; 5xx and transport errors are retried.

    The wait follows ``retry`` on ``clock``; an error whose request may have reached the provider
    (a timeout, a connection lost mid-exchange) is repeated only when ``idempotent``. A 5xx is an
    answer saying the provider did not do it, so it is repeated for any method. A rate limit is
    not retried and a 503 only once (:func:`is_throttled`): the caller pauses the provider.
    """
    number = 0
    while True:
        number += 1
        try:
            return await attempt(number)
        except ProviderError as err:
            if number >= retry.attempts or not _may_retry(err, idempotent, number):
                raise
            delay = retry.delay(number)
            _LOGGER.info("%s: %s%s; retry %d/%d in %.2fs", provider,
                         f"{what} failed: " if what else "", redactor.text(str(err)), number,
                         retry.attempts - 1, delay)
            await clock.sleep(delay)


class HttpApi:
    """One provider's HTTP endpoint: the single choke point for requests, retries and errors.

    ``classify`` sees every response first: an error it returns is raised as the attempt's
    outcome (and retried if retryable), None leaves the response to the status check. It is how
    an adapter reads errors a provider reports inside a body (e.g. Fortytwo's ``result_info``).
    """

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        redactor: Redactor | None = None,
        clock: Clock | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        describe_error: ErrorMessage = default_error_message,
        reasons: Mapping[int, str] | None = None,
        classify: Classify | None = None,
    ) -> None:
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout
        self.redactor = redactor or Redactor()
        self._clock = clock or SystemClock()
        self.retry = retry or RetryPolicy()
        self._auth = auth
        self._headers = dict(headers or {})
        self._describe = describe_error
        self._reasons = reasons
        self._classify = classify
        if isinstance(auth, tuple):
            self.redactor.add(auth[1])

    @classmethod
    def for_context(cls, provider: str, base_url: str, context: ProviderContext,
                    options: Mapping[str, Any], **settings: Any) -> HttpApi:
        """An endpoint on the host's client, redactor and clock, with the adapter's ``timeout``
        and ``retry_*`` options; ``settings`` are further constructor arguments."""
        settings.setdefault("client", context.http)
        return cls(provider, base_url, redactor=context.redactor, clock=context.clock,
                   timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
                   retry=retry_policy(options), **settings)

    def url(self, path: str) -> str:
        """The absolute URL of ``path`` (absolute URLs pass through)."""
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool | None = None,
        expected: tuple[int, ...] = (200, 201, 202, 204),
        on_attempt: Callable[[int], Awaitable[None]] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send a request, retrying retryable failures; returns a success response or raises.

        A read timeout is retried only for idempotent requests (GET, or ``idempotent=True``),
        because the provider may already have acted on a POST that timed out.
        """
        safe_to_repeat = method.upper() in ("GET", "HEAD") if idempotent is None else idempotent

        async def attempt(number: int) -> httpx.Response:
            if on_attempt is not None:
                await on_attempt(number)
            return await self._send_once(method, path, expected, **kwargs)

        return await with_retries(self.provider, attempt, retry=self.retry, clock=self._clock,
                                  redactor=self.redactor, idempotent=safe_to_repeat)

    async def _send_once(self, method: str, path: str, expected: tuple[int, ...],
                         **kwargs: Any) -> httpx.Response:
        headers = {**self._headers, **(kwargs.pop("headers", None) or {})}
        try:
            async with asyncio.timeout(self._timeout * DEADLINE_FACTOR):
                response = await self._exchange(method, self.url(path), headers, kwargs)
        except TimeoutError:  # before OSError, of which it is a subclass
            error = TransientError(self.provider, f"timed out: no complete answer within "
                                   f"{self._timeout * DEADLINE_FACTOR:g}s")
            error.request_sent = True  # type: ignore[attr-defined]
            raise error from None
        except httpx.HTTPError as err:
            raise transport_error(self.provider, err, self.redactor) from None
        except OSError as err:  # e.g. a reset below httpx's own mapping
            error = TransientError(self.provider,
                                   f"connection failed: {error_text(err, self.redactor)}")
            error.request_sent = True  # type: ignore[attr-defined]
            raise error from None
        except RuntimeError as err:  # httpx raises this for a closed client
            error = TransientError(self.provider,
                                   f"HTTP client unusable: {error_text(err, self.redactor)}")
            error.no_retry = True  # type: ignore[attr-defined]
            raise error from None
        refused = self._classify(response) if self._classify is not None else None
        if refused is not None:
            raise refused
        if response.status_code in expected:
            return response
        raise error_for_status(self.provider, response, self._describe, self._reasons,
                               self.redactor)

    async def _exchange(self, method: str, url: str, headers: dict[str, str],
                        kwargs: dict[str, Any]) -> httpx.Response:
        """One request whose answer is read while streaming, at most
        :data:`MAX_RESPONSE_BYTES` of it (decoded), so a huge answer never sits in memory."""
        follow = kwargs.pop("follow_redirects", httpx.USE_CLIENT_DEFAULT)
        request = self._client.build_request(method, url, headers=headers,
                                             timeout=self._timeout, **kwargs)
        response = await self._client.send(request, stream=True, follow_redirects=follow,
                                           auth=self._auth or httpx.USE_CLIENT_DEFAULT)
        try:
            body = await read_limited(response, MAX_RESPONSE_BYTES)
        finally:
            await response.aclose()
        if body is None:
            raise ProviderAnswerError(self.provider, "answer larger than the size limit "
                                      f"({MAX_RESPONSE_BYTES} bytes)")
        # the body is already decoded: the new response must not decode it again
        kept = [(k, v) for k, v in response.headers.multi_items()
                if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")]
        return httpx.Response(response.status_code, headers=kept, content=body,
                              request=request, extensions=response.extensions,
                              history=response.history)

    async def aclose(self) -> None:
        """Close the client if this object created it."""
        if self._own_client:
            await self._client.aclose()


async def read_limited(response: httpx.Response, limit: int) -> bytes | None:
    """The (decoded) body of a streamed ``response``, or None once it grows past ``limit``."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
