"""Events and sensors following deliveries to their final state through real providers."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import mock_restore_cache

from tests.emulators.retarus_sms import RetarusSmsEmulator

from .conftest import Reports, make_entry, retarus_options, route, setup_entry


def _value(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None, entity_id
    return state.state


async def test_simulator_delivery_updates_event_and_sensors(hass: HomeAssistant,
                                                            reports: Reports) -> None:
    entry = make_entry(hass, routes=[route("leak", ["oncall", "busy"])])
    await setup_entry(hass, entry)
    assert _value(hass, "sensor.sim_deliveries_delivered") == "0"
    registry = er.async_get(hass)
    pending = registry.async_get("sensor.sim_deliveries_pending")
    assert pending is not None
    assert pending.disabled_by is er.RegistryEntryDisabler.INTEGRATION

    await hass.services.async_call("notify", "send_message",
                                   {"entity_id": "notify.leak", "message": "Leak"},
                                   blocking=True)
    alert_id = reports.events[0]["id"]
    final = await reports.wait(alert_id)
    await hass.async_block_till_done()

    events = reports.of(alert_id)
    assert events[0]["final"] is False
    assert events[0]["config_entry_id"] == entry.entry_id
    assert final["state"] == "partially_delivered"
    assert final["counts"] == {"delivered": 2, "failed": 1}
    assert _value(hass, "sensor.sim_deliveries_delivered") == "2"
    assert _value(hass, "sensor.sim_deliveries_failed") == "1"
    assert _value(hass, "sensor.sim_deliveries_submitted") == "0"
    assert _value(hass, "sensor.sim_open_alerts") == "0"
    last = hass.states.get("sensor.leak_last_alert")
    assert last is not None
    assert last.state == "partially_delivered"
    assert last.attributes["alert_id"] == alert_id
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_retarus_delivery_through_the_rest_emulator(
        hass: HomeAssistant, retarus: RetarusSmsEmulator, reports: Reports) -> None:
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus",
                       provider_options=retarus_options(retarus, sender="ACME"),
                       options={}, routes=[route("leak", ["+491701234560", "+491701234561"])])
    await setup_entry(hass, entry)

    await hass.services.async_call("notify", "send_message", {
        "entity_id": "notify.leak", "message": "Water leak", "title": "Basement"},
        blocking=True)
    final = await reports.wait(reports.events[0]["id"])
    await hass.async_block_till_done()

    posts = [r for r in retarus.requests if r.method == "POST"]
    assert len(posts) == 1  # both recipients in one job
    assert posts[0].body["options"]["src"] == "ACME"
    assert posts[0].body["messages"][0]["text"] == "Basement: Water leak"
    outcome = {d["to"]: (d["state"], d["provider_status"]) for d in final["deliveries"]}
    assert outcome == {"+491701234560": ("delivered", "DONE SUC_FIN"),
                       "+491701234561": ("failed", "DONE INVALID_DST")}
    assert final["state"] == "partially_delivered"
    assert _value(hass, "sensor.retarus_deliveries_delivered") == "1"
    assert _value(hass, "sensor.retarus_deliveries_failed") == "1"
    assert _value(hass, "sensor.leak_last_alert") == "partially_delivered"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_last_alert_is_restored_after_a_restart(hass: HomeAssistant) -> None:
    mock_restore_cache(hass, [State("sensor.leak_last_alert", "delivered",
                                    {"alert_id": "al-restored"})])
    entry = make_entry(hass, routes=[route("leak", ["alice"])])
    await setup_entry(hass, entry)

    state = hass.states.get("sensor.leak_last_alert")
    assert state is not None
    assert state.state == "delivered"
    assert state.attributes["alert_id"] == "al-restored"
    assert await hass.config_entries.async_unload(entry.entry_id)
