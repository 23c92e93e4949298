"""Everything adapters share about HTTP: client, timeouts, retries with backoff, error mapping."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from ..clock import Clock, SystemClock
from ..errors import (
    AuthError,
    DuplicateError,
    ProviderAnswerError,
    ProviderError,
    RateLimitedError,
    RejectedError,
    TransientError,
)
from ..model import utcnow
from ..redact import Redactor, redact_text

_LOGGER = logging.getLogger(__name__)


class _UrlSecretFilter(logging.Filter):
    """Masks credentials in httpx's own request log lines (query ``pass=``, URL userinfo)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with secrets masked."""
        message = record.getMessage()
        masked = redact_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_UrlSecretFilter())

MAX_RESPONSE_BYTES = 2 * 1024 * 1024


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


ErrorMessage = Callable[[httpx.Response], tuple[str | None, str | None]]


def default_error_message(response: httpx.Response) -> tuple[str | None, str | None]:
    """``(code, message)`` from a JSON error body such as ``{"code": 422, "message": "..."}``."""
    body = response.text.strip()[:500]
    if not body:
        return None, None
    try:
        data = json.loads(body)
    except ValueError:
        return None, body
    if isinstance(data, Mapping):
        code = data.get("code", data.get("error_code", data.get("status_code")))
        message = data.get("message", data.get("error", data.get("description")))
        return (str(code) if code is not None else None,
                str(message) if message is not None else body)
    return None, body


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
        return TransientError(provider, text, code=code, status=status)
    return RejectedError(provider, text, code=code, status=status)


class HttpApi:
    """One provider's HTTP endpoint: the single choke point for requests, retries and errors."""

    def __init__(
        self,
        provider: str,
        base_url: str,
        *,
        client: httpx.AsyncClient | None = None,
        redactor: Redactor | None = None,
        clock: Clock | None = None,
        timeout: float = 15.0,
        retry: RetryPolicy | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        describe_error: ErrorMessage = default_error_message,
        reasons: Mapping[int, str] | None = None,
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
        if isinstance(auth, tuple):
            self.redactor.add(auth[1])

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
        attempt = 0
        while True:
            attempt += 1
            if on_attempt is not None:
                await on_attempt(attempt)
            try:
                return await self._send_once(method, path, expected, safe_to_repeat, **kwargs)
            except (RateLimitedError, TransientError) as err:
                if attempt >= self.retry.attempts or getattr(err, "no_retry", False):
                    raise
                hint = err.retry_after if isinstance(err, RateLimitedError) else None
                delay = self.retry.delay(attempt, hint)
                _LOGGER.info("%s: %s; retry %d/%d in %.2fs", self.provider,
                             self.redactor.text(str(err)), attempt, self.retry.attempts - 1, delay)
                await self._clock.sleep(delay)

    async def _send_once(self, method: str, path: str, expected: tuple[int, ...],
                         safe_to_repeat: bool, **kwargs: Any) -> httpx.Response:
        headers = {**self._headers, **(kwargs.pop("headers", None) or {})}
        url = self.url(path)
        try:
            response = await self._client.request(
                method, url, headers=headers, auth=self._auth or httpx.USE_CLIENT_DEFAULT,
                timeout=self._timeout, **kwargs)
        except httpx.ConnectError as err:
            raise TransientError(self.provider, f"cannot connect: {self._safe(err)}") from None
        except httpx.TimeoutException as err:
            error = TransientError(self.provider, f"timed out: {self._safe(err)}")
            if not safe_to_repeat and not isinstance(err, httpx.ConnectTimeout | httpx.PoolTimeout):
                error.no_retry = True  # type: ignore[attr-defined]
            raise error from None
        except httpx.HTTPError as err:
            error = TransientError(self.provider, f"connection failed: {self._safe(err)}")
            if not safe_to_repeat:
                error.no_retry = True  # type: ignore[attr-defined]
            raise error from None
        except RuntimeError as err:  # httpx raises this for a closed client
            error = TransientError(self.provider, f"HTTP client unusable: {self._safe(err)}")
            error.no_retry = True  # type: ignore[attr-defined]
            raise error from None
        if len(response.content) > MAX_RESPONSE_BYTES:
            raise ProviderAnswerError(self.provider, "answer larger than the size limit")
        if response.status_code in expected:
            return response
        raise error_for_status(self.provider, response, self._describe, self._reasons,
                               self.redactor)

    def _safe(self, err: Exception) -> str:
        return self.redactor.text(str(err) or type(err).__name__)

    async def aclose(self) -> None:
        """Close the client if this object created it."""
        if self._own_client:
            await self._client.aclose()


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
