"""What happens when a provider request fails: fail over to the next provider, or record why."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from alertline.config.sections import Config
from alertline.engine.decisions import Advance, Reroute
from alertline.errors import (
    AuthError,
    ProviderError,
    ProviderRefusedError,
    RateLimitedError,
    RejectedError,
    TransientError,
    ValidationError,
)
from alertline.intake.expand import provider_candidates
from alertline.model import Alert, Delivery, DeliveryState
from alertline.providers.base import Provider
from alertline.redact import Redactor

_LOGGER = logging.getLogger(__name__)


def may_fail_over(error: BaseException | None) -> bool:
    """Whether another provider may well take what ``error`` refused.

    A refusal of this provider's own (:class:`ProviderRefusedError`: funds, coverage, an
    unsupported language) fails over too, and so does an ``OSError`` that escaped an adapter's
    own error mapping (a connection failure)."""
    return isinstance(error, AuthError | TransientError | RateLimitedError
                      | ProviderRefusedError | OSError)


@dataclass(frozen=True, slots=True)
class Failure:
    """What a failed provider request means for its deliveries."""

    state: DeliveryState
    reason: str
    failover: bool

    @classmethod
    def of(cls, error: BaseException | None, redactor: Redactor) -> Failure:
        """The meaning of ``error`` (its reason redacted)."""
        state, reason = _failure(error, redactor)
        return cls(state, reason, may_fail_over(error))


def submission_failed(alert: Alert, delivery: Delivery, failure: Failure, *, config: Config,
                      providers: Mapping[str, Provider], now: datetime) -> Reroute | Advance:
    """What becomes of ``delivery`` after its provider request failed: a failover to the
    route's next provider where the error allows it, else its final state and reason."""
    nxt = next_provider(alert, delivery, config, providers) if failure.failover else None
    if nxt is not None:
        _LOGGER.warning("%s failed for %s (%s); failing over to %s", delivery.provider,
                        delivery.id, failure.reason, nxt)
        return Reroute(delivery.id, nxt, failure.reason, now)
    return Advance(delivery.id, failure.state, now, {"reason": failure.reason})


def next_provider(alert: Alert, delivery: Delivery, config: Config,
                  providers: Mapping[str, Provider]) -> str | None:
    """The next provider of ``alert``'s route that can carry ``delivery`` and was not tried."""
    tried = {delivery.provider, delivery.details.get("failover_from")}
    for name in provider_candidates(alert, delivery.channel, config, providers):
        if name not in tried:
            return name
    return None


def _failure(error: BaseException | None, redactor: Redactor) -> tuple[DeliveryState, str]:
    """The final state and reason for a submission that raised ``error``."""
    if isinstance(error, RateLimitedError):  # only after waiting until the deadline
        return DeliveryState.FAILED, "rate limited"
    if isinstance(error, ValidationError | RejectedError):
        return DeliveryState.REJECTED, redactor.text(str(error))
    if isinstance(error, ProviderError):
        return DeliveryState.FAILED, redactor.text(str(error))
    if isinstance(error, OSError):
        return DeliveryState.FAILED, redactor.text(
            f"connection failed: {error or type(error).__name__}")
    _LOGGER.error("unexpected submission error: %s", redactor.text(repr(error)))
    return DeliveryState.FAILED, f"internal error: {type(error).__name__}"
