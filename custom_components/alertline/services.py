"""Service actions: ``alertline.send``, ``ack``, ``cancel`` and ``resolve``, with response data."""

from __future__ import annotations

from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from alertline import NotFoundError, Report

from .const import ATTR_ALERT_ID, ATTR_CONFIG_ENTRY_ID, DEFAULT_WAIT_TIMEOUT, DOMAIN
from .runtime import AlertlineConfigEntry, AlertlineData
from .sending import async_send, unknown_alert

SERVICE_SEND = "send"
SERVICE_ACK = "ack"
SERVICE_CANCEL = "cancel"
SERVICE_RESOLVE = "resolve"
ATTR_TARGET = "target"
ATTR_WAIT = "wait"
ATTR_TIMEOUT = "timeout"
ATTR_BY = "by"

# value checks are the library's (its messages name the field); only shapes are checked here
_TEXT_FIELDS = ("title", "route", "provider", "sender", "locale", "priority", "audio_url",
                "escalation", "expires", "not_before", "id")
_LIST_FIELDS = (ATTR_TARGET, "channel", "quiet_hours")
_SEND_FIELDS: dict[Any, Any] = {
    vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
    vol.Required("message"): cv.string,
    **{vol.Optional(key): cv.string for key in _TEXT_FIELDS},
    **{vol.Optional(key): vol.All(cv.ensure_list, [cv.string]) for key in _LIST_FIELDS},
    vol.Optional("personalization"): dict,
    vol.Optional("options"): dict,
    vol.Optional(ATTR_WAIT, default=False): cv.boolean,
    vol.Optional(ATTR_TIMEOUT, default=DEFAULT_WAIT_TIMEOUT): vol.All(
        vol.Coerce(float), vol.Range(min=1, max=86400)),
}
SEND_SCHEMA = vol.Schema(_SEND_FIELDS)
ALERT_SCHEMA = vol.Schema({
    vol.Optional(ATTR_CONFIG_ENTRY_ID): cv.string,
    vol.Required(ATTR_ALERT_ID): cv.string,
    vol.Optional(ATTR_BY): cv.string,
})


def _loaded(hass: HomeAssistant) -> list[AlertlineConfigEntry]:
    return [e for e in hass.config_entries.async_entries(DOMAIN)
            if e.state is ConfigEntryState.LOADED]


def _entry(hass: HomeAssistant, entry_id: str | None) -> AlertlineConfigEntry:
    """The entry a call names, or the only loaded one."""
    loaded = _loaded(hass)
    if entry_id is not None:
        for entry in loaded:
            if entry.entry_id == entry_id:
                return entry
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="entry_not_loaded",
                                     translation_placeholders={"entry_id": entry_id})
    if len(loaded) == 1:
        return loaded[0]
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="entry_required" if loaded else "no_entry_loaded")


async def _entry_with_alert(hass: HomeAssistant, entry_id: str | None,
                            alert_id: str) -> AlertlineData:
    """The runtime of the entry that knows ``alert_id``."""
    candidates = [_entry(hass, entry_id)] if entry_id is not None else _loaded(hass)
    for entry in candidates:
        try:
            await entry.runtime_data.engine.report(alert_id)
        except NotFoundError:
            continue
        return entry.runtime_data
    raise unknown_alert(alert_id)


def _response(report: Report, **extra: Any) -> ServiceResponse:
    return {ATTR_ALERT_ID: report.alert.id, **extra, "report": report.to_json()}


async def _async_send(call: ServiceCall) -> ServiceResponse:
    data = dict(call.data)
    runtime = _entry(call.hass, data.pop(ATTR_CONFIG_ENTRY_ID, None)).runtime_data
    wait = data.pop(ATTR_WAIT)
    timeout = data.pop(ATTR_TIMEOUT)
    if ATTR_TARGET in data:
        data["to"] = data.pop(ATTR_TARGET)
    report, duplicate = await async_send(runtime, data, source="homeassistant:send",
                                         wait=wait, wait_seconds=timeout)
    return _response(report, duplicate=duplicate)


async def _async_alert_action(call: ServiceCall) -> ServiceResponse:
    alert_id = call.data[ATTR_ALERT_ID]
    runtime = await _entry_with_alert(call.hass, call.data.get(ATTR_CONFIG_ENTRY_ID), alert_id)
    by = call.data.get(ATTR_BY)
    engine = runtime.engine
    try:
        if call.service == SERVICE_ACK:
            report = await engine.ack(alert_id, by=by, via="homeassistant")
        elif call.service == SERVICE_CANCEL:
            report = await engine.cancel(alert_id, by=by)
        else:
            report = await engine.resolve(alert_id, by=by)
    except NotFoundError:
        raise unknown_alert(alert_id) from None
    return _response(report)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the integration's service actions (once, for every entry)."""
    hass.services.async_register(DOMAIN, SERVICE_SEND, _async_send, schema=SEND_SCHEMA,
                                 supports_response=SupportsResponse.OPTIONAL)
    for service in (SERVICE_ACK, SERVICE_CANCEL, SERVICE_RESOLVE):
        hass.services.async_register(DOMAIN, service, _async_alert_action, schema=ALERT_SCHEMA,
                                     supports_response=SupportsResponse.OPTIONAL)
