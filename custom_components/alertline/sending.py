"""Sending an alert from Home Assistant: library errors become Home Assistant errors.

Invalid input raises ``ServiceValidationError`` naming the field, translated by the library's
error code (the library's own reason is English, so it is not put into a translated message). An
alert of which nothing could be sent (the provider refused the request: bad credentials,
unreachable, rejected; or a guard rail rejected every recipient) raises ``HomeAssistantError``,
so an automation can react; the reason of each delivery is in the alert's report (event, sensors,
MQTT, the action's response), as are later delivery outcomes.
"""

from __future__ import annotations

from typing import Any

from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from alertline import (
    AlertlineError,
    Report,
    ValidationError,
    nothing_sent,
    parse_request,
    provider_answered,
)

from .const import DOMAIN, SUBMIT_TIMEOUT
from .runtime import AlertlineData

# the library's ValidationError codes that have a message of their own; others are "invalid"
_CODES = frozenset({"empty", "json", "missing", "too_long", "type", "unknown_contact",
                    "unknown_field", "unknown_route"})


def invalid_request(err: ValidationError) -> ServiceValidationError:
    """The Home Assistant error for a request the library refused: the field and, by the
    library's error code, what is wrong with it."""
    key = f"invalid_request_{err.code}" if err.code in _CODES else "invalid_request"
    return ServiceValidationError(
        err.reason, translation_domain=DOMAIN, translation_key=key,
        translation_placeholders={"field": err.field or "request"})


def unknown_alert(alert_id: str) -> ServiceValidationError:
    """The Home Assistant error for an alert id no loaded entry knows."""
    return ServiceValidationError(translation_domain=DOMAIN, translation_key="unknown_alert",
                                  translation_placeholders={"alert_id": alert_id})


async def async_send(runtime: AlertlineData, request: dict[str, Any], *, source: str,
                     wait: bool = False, wait_seconds: float = 300.0
                     ) -> tuple[Report, bool]:
    """Accept ``request``, wait for the provider's answer, optionally for the final report.

    Returns the report and whether the request was a duplicate of an earlier alert id.
    """
    try:
        alert_request = parse_request(request)
        accepted = await runtime.engine.accept(alert_request, source=source)
    except ValidationError as err:
        raise invalid_request(err) from None
    except AlertlineError as err:
        raise HomeAssistantError(  # the untranslated message: the library's, redacted
            runtime.engine.redactor.text(str(err)),
            translation_domain=DOMAIN, translation_key="send_failed") from None
    alert_id = accepted.alert_id
    report = accepted.report
    if not accepted.duplicate and not _held(report):
        report = await runtime.reports.waiters.wait(alert_id, provider_answered, SUBMIT_TIMEOUT,
                                                    latest_on_timeout=True)
        if nothing_sent(report):
            reason = next((d.reason for d in report.deliveries if d.reason), "") or ""
            raise HomeAssistantError(  # the untranslated message: the library's reason
                f"Alert {alert_id} was not sent: {reason}",
                translation_domain=DOMAIN, translation_key="not_sent",
                translation_placeholders={"alert_id": alert_id})
    if wait:
        report = await runtime.reports.waiters.wait(alert_id, lambda r: r.final, wait_seconds,
                                                    latest_on_timeout=True)
    return report, accepted.duplicate


def _held(report: Report) -> bool:
    """Whether the alert waits for ``not_before`` (the provider is asked later)."""
    not_before = report.alert.not_before
    return not_before is not None and not_before > report.updated_at
