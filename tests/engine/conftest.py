"""Plain values shared by the engine's direct tests."""

from __future__ import annotations

from datetime import UTC, datetime

from alertline.model import Alert, AlertStatus, Channel, Delivery, DeliveryState, Recipient
from alertline.records import AlertRecord
from alertline.states import Phase

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def make_alert(alert_id: str = "al-1", **fields: object) -> Alert:
    """An SMS alert to two numbers."""
    values: dict[str, object] = {
        "id": alert_id, "message": "Water leak",
        "recipients": (Recipient("+491701234560"), Recipient("+491701234561")),
        "channels": (Channel.SMS,), "created_at": T0, **fields}
    return Alert(**values)  # type: ignore[arg-type]


def make_delivery(alert_id: str = "al-1", number: int = 1, *,
                  state: DeliveryState = DeliveryState.PENDING,
                  channel: Channel = Channel.SMS, provider: str = "sim",
                  **fields: object) -> Delivery:
    """The alert's ``number``-th delivery."""
    values: dict[str, object] = {
        "id": f"{alert_id}-{number}", "alert_id": alert_id,
        "recipient": Recipient(f"+49170123456{number - 1}"), "channel": channel,
        "provider": provider, "state": state, "created_at": T0, "updated_at": T0, **fields}
    return Delivery(**values)  # type: ignore[arg-type]


def make_record(*deliveries: Delivery, phase: Phase = Phase.QUEUED,
                alert: Alert | None = None) -> AlertRecord:
    """An open record holding ``deliveries`` (by default two pending SMS), all in ``phase``."""
    chosen = deliveries or (make_delivery(number=1), make_delivery(number=2))
    return AlertRecord(alert=alert or make_alert(), status=AlertStatus(),
                       deliveries={d.id: d for d in chosen},
                       phases={d.id: (phase, None) for d in chosen})

