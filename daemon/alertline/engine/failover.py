"""What happens when a provider request fails: fail over to the next provider, or record why."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

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
from alertline.providers.base import Batch
from alertline.redact import Redactor
from alertline.store.sqlite import Phase

if TYPE_CHECKING:
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)


async def submission_failed(engine: Engine, batch: Batch, error: BaseException | None) -> None:
    """Fail over to the route's next provider where the error allows it, else fail or reject.

    A refusal of this provider's own (:class:`ProviderRefusedError`: funds, coverage, an
    unsupported language) fails over too: another provider may well accept the same request,
    and so does an ``OSError`` that escaped an adapter's own error mapping (a connection failure).
    """
    now = engine.clock.now()
    state, reason = _failure(error, engine.redactor)
    failover = isinstance(error, AuthError | TransientError | RateLimitedError
                          | ProviderRefusedError | OSError)
    touched: set[str] = set()
    requeue: dict[str, list[Delivery]] = {}
    for item in batch.items:
        record = engine._open.get(item.alert_id)
        delivery = record.deliveries.get(item.delivery_id) if record else None
        if record is None or delivery is None:
            continue
        touched.add(record.alert.id)
        nxt = next_provider(engine, record.alert, delivery) if failover else None
        if nxt is not None:
            record.deliveries[delivery.id] = dataclasses.replace(
                delivery, provider=nxt, updated_at=now,
                details={**delivery.details, "failover_from": delivery.provider,
                         "failover_reason": reason})
            record.phases[delivery.id] = (Phase.QUEUED, None)
            requeue.setdefault(record.alert.id, []).append(record.deliveries[delivery.id])
            _LOGGER.warning("%s failed for %s (%s); failing over to %s", delivery.provider,
                            delivery.id, reason, nxt)
            continue
        engine._set_state(record, delivery, state, now, reason=reason)
    await engine._save(touched)
    for alert_id, deliveries in requeue.items():
        engine._queue(engine._open[alert_id], deliveries)
    await engine._emit_many(touched)

def next_provider(engine: Engine, alert: Alert, delivery: Delivery) -> str | None:
    """The next provider of ``alert``'s route that can carry ``delivery`` and was not tried."""
    tried = {delivery.provider, delivery.details.get("failover_from")}
    for name in provider_candidates(alert, delivery.channel, engine.config, engine.providers):
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
