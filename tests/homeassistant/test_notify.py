"""Notify entities per route and the legacy ``notify.<name>`` service with target and data."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import entity_registry as er

from .conftest import Reports, make_entry, route, setup_entry


@pytest.fixture
async def loaded(hass: HomeAssistant) -> Any:
    entry = make_entry(hass, routes=[route("leak", ["oncall"], title="Leak")])
    await setup_entry(hass, entry)
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)


async def _latest_alert(reports: Reports) -> str:
    assert reports.events, "no report event"
    return str(reports.events[-1]["id"])


async def test_route_entity_sends_through_its_route(hass: HomeAssistant, loaded: Any,
                                                    reports: Reports) -> None:
    entity = er.async_get(hass).async_get("notify.leak")
    assert entity is not None
    assert entity.unique_id.endswith("_notify")
    assert entity.config_subentry_id in loaded.subentries

    await hass.services.async_call("notify", "send_message", {
        "entity_id": "notify.leak", "message": "Water in the basement", "title": "Leak!"},
        blocking=True)

    final = await reports.wait(await _latest_alert(reports))
    assert final["route"] == "leak"
    assert final["title"] == "Leak!"
    assert final["state"] == "delivered"
    assert sorted(d["contact"] for d in final["deliveries"]) == ["alice", "bob"]
    state = hass.states.get("notify.leak")
    assert state is not None
    assert state.state not in ("unknown", "unavailable")  # the time it last notified


async def test_legacy_service_takes_target_and_data(hass: HomeAssistant, loaded: Any,
                                                    reports: Reports) -> None:
    await hass.services.async_call("notify", "alertline_sim", {
        "message": "Hello ${firstname}", "title": "Door",
        "target": ["alice", "+491701234567"],
        "data": {"channel": ["sms", "voice"], "priority": "high", "sender": "ACME",
                 "locale": "de_DE", "quiet_hours": [],
                 "personalization": {"alice": {"firstname": "Alice"},
                                     "+491701234567": {"firstname": "Max"}}}},
        blocking=True)

    final = await reports.wait(await _latest_alert(reports))
    assert final["priority"] == "high"
    assert final["state"] == "delivered"
    deliveries = {(d["to"], d["channel"]) for d in final["deliveries"]}
    assert deliveries == {("+491701234560", "sms"), ("+491701234560", "voice"),
                          ("+491701234567", "sms"), ("+491701234567", "voice")}
    values = {d["to"]: d["recipient"]["personalization"]["firstname"]
              for d in final["deliveries"]}
    assert values == {"+491701234560": "Alice", "+491701234567": "Max"}


async def test_each_contact_and_group_has_its_own_service(hass: HomeAssistant, loaded: Any,
                                                          reports: Reports) -> None:
    await hass.services.async_call("notify", "alertline_sim_oncall",
                                   {"message": "On call, please"}, blocking=True)

    final = await reports.wait(await _latest_alert(reports))
    assert sorted(d["contact"] for d in final["deliveries"]) == ["alice", "bob"]


@pytest.mark.parametrize(("data", "target", "field", "key", "reason"), [
    ({"channel": "fax"}, ["alice"], "channel", "invalid_request",
     "unknown channel 'fax' (use sms or voice)"),
    ({"colour": "red"}, ["alice"], "colour", "invalid_request_unknown_field", "unknown field"),
    ({}, ["carol"], "to[0]", "invalid_request_unknown_contact",
     "unknown contact or group 'carol'"),
    ({"quiet_hours": ["25:00/07:00"]}, ["alice"], "quiet_hours", "invalid_request",
     "'25:00/07:00' is not HH:MM/HH:MM or an ISO interval"),
    ({"escalation": "page"}, ["alice"], "escalation", "invalid_request",
     "unknown escalation policy 'page'"),
    ({}, [], "to", "invalid_request_missing",
     "no recipients: give 'to' or a route with recipients"),
])
async def test_invalid_input_names_the_field(hass: HomeAssistant, loaded: Any,
                                             reports: Reports, data: dict[str, Any],
                                             target: list[str], field: str, key: str,
                                             reason: str) -> None:
    call: dict[str, Any] = {"message": "Test", "data": data}
    if target:
        call["target"] = target
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call("notify", "alertline_sim", call, blocking=True)

    # translated by the library's code; the library's English reason stays the plain message
    assert raised.value.translation_key == key
    assert raised.value.translation_placeholders == {"field": field}
    assert str(raised.value) == reason
    assert reports.events == []  # nothing was accepted
