"""Service actions with response data: send (optionally waiting), ack, cancel, resolve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from custom_components.alertline.const import DOMAIN

from .conftest import CONTACTS, Reports, make_entry, setup_entry


@pytest.fixture
async def loaded(hass: HomeAssistant) -> Any:
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    yield entry
    for loaded_entry in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_unload(loaded_entry.entry_id)


async def _call(hass: HomeAssistant, service: str, data: dict[str, Any]) -> dict[str, Any]:
    response = await hass.services.async_call(DOMAIN, service, data, blocking=True,
                                              return_response=True)
    assert response is not None
    return dict(response)


async def test_send_returns_the_alert_id_and_report(hass: HomeAssistant, loaded: Any,
                                                    reports: Reports) -> None:
    response = await _call(hass, "send", {"message": "Leak", "target": ["alice"],
                                          "id": "leak-1"})

    assert response["alert_id"] == "leak-1"
    assert response["duplicate"] is False
    report = response["report"]
    assert report["id"] == "leak-1"
    assert report["deliveries"][0]["to"] == "+491701234560"
    assert report["deliveries"][0]["state"] in ("submitted", "delivered")
    await reports.wait("leak-1")

    again = await _call(hass, "send", {"message": "Leak", "target": ["alice"], "id": "leak-1"})
    assert again["duplicate"] is True
    assert again["report"]["state"] == "delivered"
    assert len({e["id"] for e in reports.events}) == 1  # the repeat sent nothing


async def test_send_with_wait_returns_the_final_report(hass: HomeAssistant,
                                                       loaded: Any) -> None:
    response = await _call(hass, "send", {"message": "Leak", "target": ["alice", "busy"],
                                          "channel": ["sms"], "wait": True, "timeout": 10})

    report = response["report"]
    assert report["final"] is True
    assert report["state"] == "partially_delivered"
    states = {d["contact"]: (d["state"], d["reason"]) for d in report["deliveries"]}
    assert states == {"alice": ("delivered", None), "busy": ("failed", "busy")}


async def test_ack_and_resolve_answer_with_the_report(hass: HomeAssistant, loaded: Any) -> None:
    ringing = await _call(hass, "send", {"message": "Smoke", "target": ["+491701234569"],
                                         "channel": "voice"})
    alert_id = ringing["alert_id"]

    acked = await _call(hass, "ack", {"alert_id": alert_id, "by": "alice"})
    assert acked["alert_id"] == alert_id
    assert acked["report"]["state"] == "acknowledged"
    assert acked["report"]["acknowledged"]["by"] == "alice"
    assert acked["report"]["acknowledged"]["via"] == "homeassistant"

    resolved = await _call(hass, "resolve", {"alert_id": alert_id, "by": "bob"})
    assert resolved["report"]["state"] == "resolved"
    assert resolved["report"]["resolved"] is True


async def test_cancel_stops_a_held_alert(hass: HomeAssistant, loaded: Any) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    held = await _call(hass, "send", {"message": "Later", "target": ["alice"],
                                      "not_before": later})
    assert held["report"]["state"] == "accepted"

    cancelled = await _call(hass, "cancel", {"alert_id": held["alert_id"]})

    assert cancelled["report"]["state"] == "cancelled"
    assert [d["state"] for d in cancelled["report"]["deliveries"]] == ["cancelled"]


async def test_unknown_alert_is_a_validation_error(hass: HomeAssistant, loaded: Any) -> None:
    for service in ("ack", "cancel", "resolve"):
        with pytest.raises(ServiceValidationError) as raised:
            await _call(hass, service, {"alert_id": "no-such-alert"})
        assert raised.value.translation_key == "unknown_alert"
        assert raised.value.translation_placeholders == {"alert_id": "no-such-alert"}


async def test_invalid_send_names_the_field(hass: HomeAssistant, loaded: Any,
                                            reports: Reports) -> None:
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "send", {"message": "Leak", "target": ["alice"], "priority": "urgent"})

    assert raised.value.translation_key == "invalid_request"
    assert raised.value.translation_placeholders == {"field": "priority"}
    assert str(raised.value) == "expected normal or high"
    assert reports.events == []


async def test_several_entries_need_a_config_entry_id(hass: HomeAssistant, loaded: Any,
                                                      reports: Reports) -> None:
    second = make_entry(hass, title="Second", unique_id="simulator:second")
    await setup_entry(hass, second)

    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "send", {"message": "Leak", "target": ["alice"]})
    assert raised.value.translation_key == "entry_required"

    sent = await _call(hass, "send", {"message": "Leak", "target": ["alice"],
                                      "config_entry_id": second.entry_id})
    event = await reports.wait(sent["alert_id"])
    assert event["config_entry_id"] == second.entry_id
    acked = await _call(hass, "ack", {"alert_id": sent["alert_id"]})  # found in its entry
    assert acked["report"]["state"] == "acknowledged"

    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "send", {"message": "Leak", "config_entry_id": "not-an-entry"})
    assert raised.value.translation_key == "entry_not_loaded"


async def test_nothing_sent_raises_with_the_reason(hass: HomeAssistant) -> None:
    entry = make_entry(hass, options={"allow": ["+43"]})
    await setup_entry(hass, entry)

    with pytest.raises(HomeAssistantError) as raised:
        await _call(hass, "send", {"message": "Leak", "target": ["+491701234560"]})

    assert raised.value.translation_key == "not_sent"
    assert set(raised.value.translation_placeholders or {}) == {"alert_id"}
    assert "allowlist" in str(raised.value)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_escalation_runs_until_acknowledged(hass: HomeAssistant,
                                                  reports: Reports) -> None:
    entry = make_entry(hass, options={
        "contacts": CONTACTS,
        "escalations": {"page": {"steps": [{"to": ["alice"], "channel": "voice", "wait": 30},
                                           {"to": ["bob"], "channel": "voice", "wait": 30}]}}})
    await setup_entry(hass, entry)

    sent = await _call(hass, "send", {"message": "Server down", "escalation": "page"})
    first = await reports.wait(sent["alert_id"], final=False)
    assert first["escalation"]["active"] is True
    acked = await _call(hass, "ack", {"alert_id": sent["alert_id"], "by": "alice"})

    assert acked["report"]["state"] == "acknowledged"
    assert acked["report"]["escalation"]["active"] is False
    assert {d["contact"] for d in acked["report"]["deliveries"]} == {"alice"}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_waiting_ends_at_the_timeout_with_the_current_report(
        hass: HomeAssistant, loaded: Any) -> None:
    response = await _call(hass, "send", {"message": "Leak", "target": ["+491701234569"],
                                          "wait": True, "timeout": 1})

    assert response["report"]["state"] == "in_progress"  # 9: no final status, ever
    assert response["report"]["final"] is False
