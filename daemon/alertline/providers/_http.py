"""Everything adapters share about HTTP: client, timeouts, retries with backoff, error mapping.

A provider cannot hurt the daemon through this module: an answer is read while streaming and cut
off at :data:`MAX_RESPONSE_BYTES`, every exchange has an overall deadline (a trickling answer
cannot hold a request slot past ``timeout``), and any connection failure (``OSError`` included)
is a :class:`TransientError`. A rate limit (429, and 503 after one quick retry) is raised at once
as a :class:`RateLimitedError` / :class:`TransientError`: pausing the provider is the
dispatcher's job (:mod:`alertline.engine.dispatch`), hammering it from here would only
prolong the limit.

Also the transport options every adapter takes (``timeout``, ``retry_*``, ``poll_interval``,
``tracking_deadline``), described once in :func:`transport_options`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import voluptuous as vol

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
from alertline.model import utcnow
from alertline.providers.base import RateLimit
from alertline.redact import MASK, Redactor, redact_text

if TYPE_CHECKING:
    from alertline.providers.base import Capabilities, ProviderContext

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
DEFAULT_TIMEOUT = 15.0
DEADLINE_FACTOR = 2.0
"""The overall deadline of an exchange, in ``timeout`` units: a provider that trickles its answer
a byte at a time (each read within ``timeout``) still frees the request slot."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a request is retried after a retryable error."""

    attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, hint: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if hint is not None:
            return min(max(hint, 0.0), self.max_delay)
        raw = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return float(raw * (1 + random.uniform(-self.jitter, self.jitter)))


_DEFAULT_RETRY = RetryPolicy()
_WEEK = 7 * 86400.0


def transport_options(*, timeout: float = DEFAULT_TIMEOUT, poll_interval: float | None = None,
                      deadline: float | None = None, rate_window: float = 10.0,
                      retried: str = "5xx and connection errors") -> dict[Any, Any]:
    """The option markers every adapter shares, with the adapter's defaults.

    ``poll_interval`` and ``deadline`` are left out when None (a push-only adapter does not poll).
    The deadline is spelt ``tracking_deadline``; ``deadline`` stays accepted as an alias.
    """
    delay = vol.All(vol.Coerce(float), vol.Range(min=0, max=3600))
    options: dict[Any, Any] = {
        vol.Optional("timeout", default=timeout,
                     description="seconds per HTTP step (connect, send, each read); the whole "
                     "exchange, complete answer included, ends after twice this"):
            vol.All(vol.Coerce(float), vol.Range(min=0.01, max=3600)),
        vol.Optional("retry_attempts", default=_DEFAULT_RETRY.attempts,
                     description=f"attempts per request after {retried}"):
            vol.All(vol.Coerce(int), vol.Range(min=1, max=20)),
        vol.Optional("retry_base_delay", default=_DEFAULT_RETRY.base_delay,
                     description="first retry wait in seconds; each further one doubles, "
                     "with ±20 % jitter"): delay,
        vol.Optional("retry_max_delay", default=_DEFAULT_RETRY.max_delay,
                     description="longest retry wait in seconds (also caps a Retry-After)"):
            delay,
    }
    options[vol.Optional("rate_limit_window", default=rate_window,
                         description="seconds a provider that refused for load (429, 503) is "
                         "left alone when it names no Retry-After; doubles with each further "
                         "refusal")] = vol.All(_seconds, vol.Range(min=0.1, max=3600))
    options[vol.Optional("rate_limit", description="client-side pacing: at most `jobs` "
                         "requests per `per` seconds, e.g. {jobs: 1, per: 10s}; the last one "
                         "of each window is kept for high priority")] = {
        vol.Required("jobs"): vol.All(vol.Coerce(int), vol.Range(min=1, max=100_000)),
        vol.Optional("per", default=10.0): vol.All(_seconds, vol.Range(min=0.01, max=86400)),
    }
    if poll_interval is not None:
        options[vol.Optional("poll_interval", default=poll_interval,
                             description="seconds between status polls")] = \
            vol.All(vol.Coerce(float), vol.Range(min=0.01, max=_WEEK))
    if deadline is not None:
        seconds = vol.All(vol.Coerce(float), vol.Range(min=1, max=_WEEK))
        options[vol.Optional("tracking_deadline", default=deadline,
                             description="seconds after which a delivery that is still not "
                             "final counts as expired")] = seconds
        options[vol.Optional("deadline", description="alias of tracking_deadline (wins when "
                             "both are set)")] = seconds
    return options


def _seconds(value: Any) -> float:
    """Seconds from ``10``, ``"10s"``, ``"2m"`` or ``"1h"``."""
    if isinstance(value, bool):
        raise vol.Invalid("expected seconds such as 10 or 10s")
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", str(value))
    if not match:
        raise vol.Invalid("expected seconds such as 10 or 10s")
    return float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def retry_policy(options: Mapping[str, Any]) -> RetryPolicy:
    """The :class:`RetryPolicy` of an adapter's options (a missing one keeps its default)."""
    return RetryPolicy(
        attempts=int(options.get("retry_attempts", _DEFAULT_RETRY.attempts)),
        base_delay=float(options.get("retry_base_delay", _DEFAULT_RETRY.base_delay)),
        max_delay=float(options.get("retry_max_delay", _DEFAULT_RETRY.max_delay)))


def tracking_deadline(options: Mapping[str, Any], default: float) -> float:
    """The configured tracking deadline in seconds: ``deadline`` or ``tracking_deadline``."""
    return float(options.get("deadline", options.get("tracking_deadline", default)))


def tracking_capabilities(capabilities: Capabilities,
                          options: Mapping[str, Any]) -> Capabilities:
    """``capabilities`` with the configured ``poll_interval``, tracking deadline and rate limit
    (``rate_limit_window``, ``rate_limit``)."""
    poll = float(options.get("poll_interval", capabilities.poll_interval))
    pacing = options.get("rate_limit")
    return dataclasses.replace(
        capabilities, poll_interval=poll,
        max_poll_interval=max(capabilities.max_poll_interval, poll),
        tracking_deadline=tracking_deadline(options, capabilities.tracking_deadline),
        rate_window=float(options.get("rate_limit_window", capabilities.rate_window)),
        rate_limit=RateLimit(int(pacing["jobs"]), float(pacing.get("per", 10.0)))
        if isinstance(pacing, Mapping) else capabilities.rate_limit)


ErrorMessage = Callable[[httpx.Response], tuple[str | None, str | None]]
Classify = Callable[[httpx.Response], ProviderError | None]

_CODE_KEYS = ("code", "error_code", "errorCode", "status_code", "status")
_MESSAGE_KEYS = ("message", "error", "description", "reason", "details")


def default_error_message(response: httpx.Response) -> tuple[str | None, str | None]:
    """``(code, message)`` from an error body: JSON in its common shapes, else the plain text.

    Read: ``{"code": 422, "message": "..."}`` and its spelling variants (``errorCode``,
    ``error``, ``description``, ``reason``, ...), ``{"error": {"code", "message"}}``, plain text.
    """
    body = response.text.strip()[:500]
    if not body:
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, body
    if not isinstance(data, Mapping):
        return None, body
    inner = data.get("error")
    source: Mapping[str, Any] = inner if isinstance(inner, Mapping) else data
    code = first_present(source, *_CODE_KEYS)
    message = first_present(source, *_MESSAGE_KEYS)
    return (str(code) if code is not None else None,
            str(message) if isinstance(message, str | int | float) else body)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """The ``Retry-After`` hint in seconds, if the response carries one."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - utcnow()).total_seconds())


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


def is_throttled(err: BaseException | None) -> bool:
    """Whether ``err`` says "not now" for the whole provider: a rate limit (429, Fortytwo's
    "Server too busy") or a 503. Such a refusal pauses the provider instead of failing alerts."""
    if isinstance(err, RateLimitedError):
        return True
    return isinstance(err, TransientError) and err.status == 503


async def with_retries(provider: str, attempt: Callable[[int], Awaitable[_T]], *,
                       retry: RetryPolicy, clock: Clock, redactor: Redactor,
                       idempotent: bool, what: str | None = None) -> _T:
    """``await attempt(n)`` until it succeeds; 5xx and transport errors are retried.

    The wait follows ``retry`` on ``clock``; an error whose request may have reached the provider
    is repeated only when ``idempotent``. A rate limit is not retried and a 503 only once
    (:func:`is_throttled`): the caller pauses the provider instead.
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


def json_object(provider: str, response: httpx.Response) -> dict[str, Any]:
    """The response body as a JSON object, or :class:`ProviderAnswerError`."""
    try:
        data = response.json()
    except ValueError:
        raise ProviderAnswerError(
            provider, f"answer is not JSON (HTTP {response.status_code})") from None
    if not isinstance(data, dict):
        raise ProviderAnswerError(provider, "answer is not a JSON object")
    return data


def first_present(data: Mapping[str, Any], *keys: str) -> Any:
    """The value of the first of ``keys`` present in ``data`` (tolerant of spelling variants)."""
    for key in keys:
        if key in data and data[key] is not None:
            return data[key]
    lowered = {k.lower(): v for k, v in data.items() if isinstance(k, str)}
    for key in keys:
        value = lowered.get(key.lower())
        if value is not None:
            return value
    return None
