"""Retarus SMS ProcessStatus/Status vocabulary, mapped to alertline's delivery states.

Shared by the REST (``retarus_sms``) and HTTP Simple (``retarus_sms_http``) adapters: both APIs
report the same pair of values (seed retarus-sms-http.txt; docs.retarus.com/sms/paths).

Mapping choices where the provider's outcome is uncertain (documented in docs/providers/):
``DONE/SEND_ERR`` counts as failed (an alert must rather be escalated than silently lost),
``DONE/STATUS_ERR`` as sent (it left Retarus; only the delivery notification is missing),
``DONE/TIMEOUT`` as expired (validity period exceeded). ``KILL`` is sent, not cancelled: the seed
says "SMS was sent, but cancelled and no delivery notification has been received" (it left
Retarus; only the notification is missing). ``RUNNING`` ("SMS was sent, but no delivery
notification was received") is open while tracked, and sent at the tracking deadline
(:func:`state_at_deadline`), not expired.
"""

from __future__ import annotations

from alertline.model import DeliveryState

OPEN = "OPEN"
RUNNING = "RUNNING"
DONE = "DONE"
CANCELED = "CANCELED"
KILL = "KILL"

KILL_MEANING = "sent, but cancelled and no delivery notification has been received"
RUNNING_AT_DEADLINE = ("sent, but no delivery notification was received before the tracking "
                       "deadline")

PROCESS_STATUSES: frozenset[str] = frozenset({OPEN, RUNNING, DONE, CANCELED, KILL})

# DONE/<status>: final outcomes, with the seed's meaning as the reason
_DONE: dict[str, tuple[DeliveryState, str]] = {
    "SUC_ACC": (DeliveryState.SENT, "sent; no delivery notification requested"),
    "SUC_FIN": (DeliveryState.DELIVERED, "delivered; confirmed by delivery notification"),
    "INVALID_DST": (DeliveryState.FAILED, "invalid destination number"),
    "BLOCKED": (DeliveryState.FAILED, "number is on the blocklist"),
    "TIMEOUT": (DeliveryState.EXPIRED, "sent, but the validity period was exceeded"),
    "CON_ERR": (DeliveryState.FAILED, "all retry attempts failed (connection error)"),
    "FAILED_FIN": (DeliveryState.FAILED, "delivery notification reports failure"),
    "NOT_ACC_FIN": (DeliveryState.FAILED, "delivery to the carrier was not possible"),
    "SEND_ERR": (DeliveryState.FAILED,
                 "internal error while sending (the SMS may have arrived anyway)"),
    "STATUS_ERR": (DeliveryState.SENT,
                   "sent; internal error while querying the delivery notification"),
}

CANCELED_STATUSES: dict[str, str] = {
    "": "cancelled before the first delivery attempt",
    "NOT_ACC_REC": "cancelled after the first delivery attempt",
}

STATUSES: frozenset[str] = frozenset({*_DONE, "NOT_ACC_REC"})

# spelling variants seen in the wild or plausible from other Retarus interfaces
_PROCESS_ALIASES = {"CANCELLED": CANCELED, "KILLED": KILL}


def _clean(value: str | None) -> str:
    return (value or "").strip().upper()


def normalise(process_status: str | None,
              status: str | None) -> tuple[DeliveryState, str | None]:
    """The delivery state and a plain-language reason for a Retarus (processStatus, status) pair.

    Unknown values are tolerated: an unknown processStatus stays submitted (not final), an
    unknown status under ``DONE`` is a final failure naming the unknown value.
    """
    process = _clean(process_status)
    process = _PROCESS_ALIASES.get(process, process)
    code = _clean(status)
    if process == OPEN:
        if not code:
            return DeliveryState.SUBMITTED, "pending, not yet scheduled"
        if code == "SUC_ACC":
            # the seed's own example: OPEN + SUC_ACC, reason "Accepted.", sentTs set
            return DeliveryState.SUBMITTED, "accepted by the carrier; waiting for the final status"
        return DeliveryState.SUBMITTED, f"retrying ({code})"
    if process == RUNNING:
        return DeliveryState.SUBMITTED, "sent; waiting for the delivery notification"
    if process == DONE:
        if code in _DONE:
            return _DONE[code]
        if not code:
            return DeliveryState.FAILED, "finished without a status"
        return DeliveryState.FAILED, f"finished with unknown status {code}"
    if process == CANCELED:
        return DeliveryState.CANCELLED, CANCELED_STATUSES.get(code, f"cancelled ({code})")
    if process == KILL:
        return DeliveryState.SENT, KILL_MEANING
    if not process and code in _DONE:
        # a status without processStatus: the status alone is final
        return _DONE[code]
    if not process:
        return DeliveryState.SUBMITTED, None
    return DeliveryState.SUBMITTED, f"unknown process status {process}"


def is_final(process_status: str | None, status: str | None) -> bool:
    """Whether the pair is a final state."""
    return normalise(process_status, status)[0].final


def state_at_deadline(provider_status: str | None) -> tuple[DeliveryState, str] | None:
    """The final state of a delivery still open at the tracking deadline, by its last
    ``"<processStatus> <status>"``: RUNNING means the SMS was sent (seed: "SMS was sent, but no
    delivery notification was received"); anything else is left to expire (None)."""
    process = _clean((provider_status or "").split(" ", 1)[0])
    if _PROCESS_ALIASES.get(process, process) == RUNNING:
        return DeliveryState.SENT, RUNNING_AT_DEADLINE
    return None
