"""Setting up, unloading and reloading entries; credentials rejected at setup and later;
state that survives a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from alertline import DeliveryState, NotFoundError, SqliteStore
from alertline.model import AlertStatus
from alertline.store.intents import InsertAlert, SaveDeliveries
from alertline.store.stored import Phase
from custom_components.alertline.const import (
    CONF_PROVIDER_OPTIONS,
    CONF_PROVIDER_TYPE,
    CONF_WEBHOOK_ID,
    DOMAIN,
)
from custom_components.alertline.runtime import store_path
from tests.emulators.retarus_sms import RetarusSmsEmulator
from tests.mosquitto import free_port
from tests.store.samples import alert, delivery, finished

from .conftest import (
    RETARUS_PASSWORD,
    WEBHOOK_ID,
    Reports,
    call_action,
    make_entry,
    retarus_options,
    route,
    setup_entry,
    state_of,
)


def _reauth_flows(hass: HomeAssistant, entry_id: str) -> list[object]:
    return [flow for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
            if flow["context"]["source"] == SOURCE_REAUTH
            and flow["context"].get("entry_id") == entry_id]


def _issues(hass: HomeAssistant) -> list[tuple[str, str]]:
    """Every repair issue raised (one authentication failure must raise exactly one)."""
    return sorted(ir.async_get(hass).issues)


async def test_unload_and_reload_leave_nothing_behind(hass: HomeAssistant) -> None:
    entry = make_entry(hass, routes=[route("leak", ["oncall"])])
    await setup_entry(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("notify.leak") is not None
    assert hass.services.has_service("notify", "alertline_sim")
    assert hass.services.has_service("notify", "alertline_sim_oncall")

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()

    assert state_of(entry) is ConfigEntryState.NOT_LOADED
    assert not hass.services.has_service("notify", "alertline_sim")
    assert not hass.services.has_service("notify", "alertline_sim_oncall")
    assert hass.services.has_service(DOMAIN, "send")  # actions stay: registered in async_setup
    store = SqliteStore(store_path(hass, entry.entry_id), exclusive=True)
    await store.open()  # the lock file was released
    await store.close()

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert state_of(entry) is ConfigEntryState.LOADED
    assert hass.services.has_service("notify", "alertline_sim")
    await hass.services.async_call("notify", "alertline_sim", {"message": "Leak",
                                   "target": ["alice"]}, blocking=True)
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_rejected_credentials_at_setup_start_reauth_with_a_repair_issue(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus",
                       unique_id="retarus_sms:acme-sms",
                       provider_options=retarus_options(retarus, password="outdated"))

    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert _issues(hass) == [("homeassistant", f"config_entry_reauth_{DOMAIN}_{entry.entry_id}")]
    flows = _reauth_flows(hass, entry.entry_id)
    assert len(flows) == 1

    result = await hass.config_entries.flow.async_configure(
        flows[0]["flow_id"], {"password": RETARUS_PASSWORD})  # type: ignore[index]
    await hass.async_block_till_done()
    assert result["reason"] == "reauth_successful"
    assert state_of(entry) is ConfigEntryState.LOADED
    assert _issues(hass) == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_unreachable_provider_retries_setup(hass: HomeAssistant,
                                                  socket_enabled: None) -> None:
    closed = f"http://127.0.0.1:{free_port()}/rest/v1"
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus", provider_options={
        "username": "u", "password": "p4ssword", "base_url": closed, "status_urls": [closed],
        "retry_attempts": 1})

    await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert "p4ssword" not in (entry.reason or "")


async def test_credentials_rejected_later_raise_and_start_reauth(
        hass: HomeAssistant, retarus: RetarusSmsEmulator, reports: Reports) -> None:
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus",
                       unique_id="retarus_sms:acme-sms",
                       provider_options=retarus_options(retarus))
    await setup_entry(hass, entry)
    retarus.fail_next(401, method="POST", path="/jobs")

    with pytest.raises(HomeAssistantError) as raised:
        await hass.services.async_call(DOMAIN, "send", {
            "message": "Water leak", "target": ["+491701234560"]}, blocking=True)

    assert raised.value.translation_key == "not_sent"
    assert set(raised.value.translation_placeholders or {}) == {"alert_id"}
    assert "Authentication failed" in str(raised.value)
    assert RETARUS_PASSWORD not in str(raised.value)
    await hass.async_block_till_done()
    assert len(_reauth_flows(hass, entry.entry_id)) == 1
    assert _issues(hass) == [("homeassistant", f"config_entry_reauth_{DOMAIN}_{entry.entry_id}")]
    alert_id = reports.events[-1]["id"]
    final = await reports.wait(alert_id)
    assert final["state"] == "failed"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_open_deliveries_resume_after_a_restart(hass: HomeAssistant,
                                                      reports: Reports) -> None:
    entry = make_entry(hass, provider_options={"poll_interval": 0.05, "deadline": 1.0})
    await setup_entry(hass, entry)
    response = await call_action(hass, "send", {"message": "Door open",
                                                "target": ["+491701234569"]})
    alert_id = response["alert_id"]
    assert response["report"]["state"] == "in_progress"

    assert await hass.config_entries.async_unload(entry.entry_id)  # "Home Assistant stops"
    assert not reports.of(alert_id)[-1]["final"]
    await setup_entry(hass, entry)  # ... and starts again: tracking resumes from the store

    final = await reports.wait(alert_id)
    assert final["state"] == "failed"
    assert final["deliveries"][0]["state"] == "expired"
    assert final["deliveries"][0]["provider_ref"] == \
        response["report"]["deliveries"][0]["provider_ref"]
    acked = await call_action(hass, "ack", {"alert_id": alert_id})
    assert acked["report"]["state"] == "acknowledged"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_alerts_finished_more_than_30_days_ago_leave_the_store(
        hass: HomeAssistant, reports: Reports) -> None:
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    recent = (await call_action(hass, "send", {"message": "Leak",
                                               "target": ["+491701234560"]}))["alert_id"]
    await reports.wait(recent)
    assert await hass.config_entries.async_unload(entry.entry_id)
    store = SqliteStore(store_path(hass, entry.entry_id))
    await store.open()
    for alert_id, days in (("al-31-days", 31), ("al-29-days", 29)):
        at = datetime.now(UTC) - timedelta(days=days)
        sent = delivery(alert_id, state=DeliveryState.DELIVERED)
        await store.commit([InsertAlert(alert(alert_id, at=at), AlertStatus(), "accepted", False,
                                        ()),
                            SaveDeliveries(((sent, Phase.DONE, None),)), finished(alert_id, at)])
    await store.close()

    await setup_entry(hass, entry)  # pruned at the start, before anything counts them
    engine = entry.runtime_data.engine
    with pytest.raises(NotFoundError):
        await engine.report("al-31-days")
    assert (await engine.report("al-29-days")).state == "delivered"
    assert (await engine.report(recent)).state == "delivered"
    pruning = entry.runtime_data.pruning
    assert pruning is not None and not pruning.done()
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert pruning.done()  # nothing outlives the entry


async def test_old_unique_ids_migrate_to_the_account(hass: HomeAssistant,
                                                     retarus: RetarusSmsEmulator) -> None:
    entry = MockConfigEntry(
        domain=DOMAIN, title="Retarus", unique_id="retarus_sms:acme-sms:127.0.0.1",
        version=1, minor_version=1,
        data={CONF_PROVIDER_TYPE: "retarus_sms", CONF_PROVIDER_OPTIONS: retarus_options(retarus),
              CONF_WEBHOOK_ID: WEBHOOK_ID})
    entry.add_to_hass(hass)

    await setup_entry(hass, entry)

    assert state_of(entry) is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (1, 2)
    assert entry.unique_id == "retarus_sms:acme-sms"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_an_entry_from_a_newer_version_is_not_loaded(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, title="Sim", version=2,
                            data={CONF_PROVIDER_TYPE: "simulator", CONF_PROVIDER_OPTIONS: {},
                                  CONF_WEBHOOK_ID: WEBHOOK_ID})
    entry.add_to_hass(hass)

    assert not await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_an_entry_whose_account_has_an_entry_keeps_its_old_id(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    make_entry(hass, provider_type="retarus_sms", title="First",
               unique_id="retarus_sms:acme-sms", provider_options=retarus_options(retarus))
    second = MockConfigEntry(
        domain=DOMAIN, title="Second", unique_id="retarus_sms:acme-sms:localhost",
        version=1, minor_version=1,
        data={CONF_PROVIDER_TYPE: "retarus_sms", CONF_PROVIDER_OPTIONS: retarus_options(retarus),
              CONF_WEBHOOK_ID: WEBHOOK_ID})
    second.add_to_hass(hass)

    await setup_entry(hass, second)

    assert (second.minor_version, second.unique_id) == (2, "retarus_sms:acme-sms:localhost")
    assert await hass.config_entries.async_unload(second.entry_id)


async def test_a_store_in_use_retries_setup(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    Path(store_path(hass, entry.entry_id)).parent.mkdir(parents=True, exist_ok=True)
    other = SqliteStore(store_path(hass, entry.entry_id), exclusive=True)
    await other.open()  # another process holds the store
    try:
        await hass.config_entries.async_setup(entry.entry_id)
        assert entry.state is ConfigEntryState.SETUP_RETRY
    finally:
        await other.close()


async def test_an_invalid_configuration_names_where(hass: HomeAssistant) -> None:
    entry = make_entry(hass, options={"contacts": {"carol": {"phone": "12"}}})

    await hass.config_entries.async_setup(entry.entry_id)

    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None
    assert "contacts.carol.phone" in entry.reason


async def test_home_assistant_stopping_stops_the_engine(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    runtime = entry.runtime_data

    hass.bus.async_fire(EVENT_HOMEASSISTANT_STOP)
    await hass.async_block_till_done()

    assert runtime.stopped
    assert await hass.config_entries.async_unload(entry.entry_id)  # nothing left to stop


async def test_removing_the_entry_deletes_its_store(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    path = Path(store_path(hass, entry.entry_id))
    assert await hass.async_add_executor_job(path.exists)

    await hass.config_entries.async_remove(entry.entry_id)

    assert not await hass.async_add_executor_job(path.exists)


async def test_the_legacy_service_of_an_unloaded_entry_refuses(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    service = entry.runtime_data.legacy_notify
    assert service is not None and set(service.targets) == {"alice", "bob", "busy", "oncall"}

    assert await hass.config_entries.async_unload(entry.entry_id)

    assert service.targets == {}
    await service.async_register_services()  # as notify would, late or on its own reload
    assert not hass.services.has_service("notify", "alertline_sim")
    with pytest.raises(HomeAssistantError) as raised:
        await service.async_send_message("Leak", target=["alice"])
    assert raised.value.translation_key == "no_entry_loaded"


async def test_the_legacy_service_is_not_configured_in_yaml(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, "notify",
                                       {"notify": [{"platform": DOMAIN, "name": "yaml"}]})
    await hass.async_block_till_done()

    assert not hass.services.has_service("notify", "yaml")
