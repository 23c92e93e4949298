"""The alertline error hierarchy: every failure a caller can tell apart."""

from __future__ import annotations


class AlertlineError(Exception):
    """Base of every error alertline raises on purpose."""


class ConfigError(AlertlineError):
    """The configuration is invalid; ``problems`` lists ``(path, reason)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{path}: {reason}" if path else reason
                                   for path, reason in problems))


class ValidationError(AlertlineError):
    """An alert request or value is invalid: names the field and the reason."""

    def __init__(self, field: str, reason: str, code: str = "invalid") -> None:
        self.field = field
        self.reason = reason
        self.code = code
        super().__init__(f"{field}: {reason}" if field else reason)


class NotFoundError(AlertlineError):
    """A referenced alert, route, contact or provider does not exist."""


class ProviderError(AlertlineError):
    """A provider refused or failed a request; ``code`` is the provider's own code, if any."""

    retryable = False

    def __init__(self, provider: str, message: str, code: str | None = None,
                 status: int | None = None) -> None:
        self.provider = provider
        self.message = message
        self.code = code
        self.status = status
        detail = f" [{code}]" if code else ""
        super().__init__(f"{provider}: {message}{detail}")


class AuthError(ProviderError):
    """The provider rejected the credentials; never retried."""


class RejectedError(ProviderError):
    """The provider rejected the request as invalid for it; never retried."""


class ProviderRefusedError(RejectedError):
    """Refused for a reason of this provider's own (funds, coverage, an unsupported language):
    not retried here, but another provider of the route may well accept it, so it fails over."""


class DuplicateError(RejectedError):
    """The provider recognised the request as a duplicate of one it already accepted."""


class RateLimitedError(ProviderError):
    """The provider throttled us; retry after ``retry_after`` seconds."""

    retryable = True

    def __init__(self, provider: str, message: str, retry_after: float | None = None,
                 code: str | None = None, status: int | None = 429) -> None:
        super().__init__(provider, message, code, status)
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A temporary failure (5xx, timeout, connection): retried with backoff, then failover.

    A 503 pauses the provider like a rate limit; ``retry_after`` is its ``Retry-After`` hint.
    """

    retryable = True
    retry_after: float | None = None


class ProviderAnswerError(ProviderError):
    """The provider answered something we cannot read; not retried (it may have acted)."""
