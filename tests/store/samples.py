"""Sample alerts, deliveries and units of work for the store conformance suite."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alertline.model import Alert, AlertStatus, Channel, Delivery, DeliveryState, Recipient
from alertline.store.intents import InsertAlert, SaveDeliveries, UpdateAlert
from alertline.store.protocol import Store
from alertline.store.stored import Phase

T0 = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
HOUR = T0.replace(minute=0)
NUMBER = "+491701234560"


def alert(alert_id: str = "al-1", *, at: datetime = T0, message: str = "Water leak") -> Alert:
    """An SMS alert to one number."""
    return Alert(id=alert_id, message=message, recipients=(Recipient(NUMBER, contact="alice"),),
                 channels=(Channel.SMS,), created_at=at)


def delivery(alert_id: str = "al-1", index: int = 1, *, provider: str = "sim",
             state: DeliveryState = DeliveryState.PENDING, **changes: object) -> Delivery:
    """Delivery ``index`` of an alert, advanced to ``state`` with ``changes``."""
    pending = Delivery(id=f"{alert_id}-{index}", alert_id=alert_id,
                       recipient=Recipient(NUMBER, contact="alice"), channel=Channel.SMS,
                       provider=provider, state=DeliveryState.PENDING, created_at=T0,
                       updated_at=T0)
    if state is DeliveryState.PENDING:
        return pending
    return pending.advance(state, T0 + timedelta(seconds=index), **changes)


def accepted(alert_id: str, *keys: str, deliveries: int = 1,
             at: datetime = T0) -> tuple[InsertAlert, SaveDeliveries]:
    """What the engine commits when it accepts an alert: the alert, its keys, its deliveries."""
    return (InsertAlert(alert(alert_id, at=at), AlertStatus(), "accepted", False, keys),
            SaveDeliveries(tuple((delivery(alert_id, n), Phase.QUEUED, None)
                                 for n in range(1, deliveries + 1))))


def finished(alert_id: str, at: datetime) -> UpdateAlert:
    """The alert became final at ``at`` (retention counts from then)."""
    return UpdateAlert(alert_id, AlertStatus(), "delivered", True, at)


async def outbox_payloads(store: Store) -> list[bytes]:
    """The payloads queued in the outbox, oldest first."""
    return [payload for *_, payload, _ in await store.outbox()]
