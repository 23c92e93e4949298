"""Config flow, reauth, reconfigure, options and route subentries, against real providers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_RECONFIGURE, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType

from alertline import adapter_class
from custom_components.alertline.const import (
    CONF_PROVIDER_OPTIONS,
    CONF_PROVIDER_TYPE,
    CONF_WEBHOOK_ID,
    DOMAIN,
    SUBENTRY_ROUTE,
)
from custom_components.alertline.provider_form import account_id
from tests.emulators.fortytwo import FortytwoVoiceEmulator
from tests.emulators.retarus_sms import RetarusSmsEmulator
from tests.mosquitto import free_port

from .conftest import (
    RETARUS_PASSWORD,
    RETARUS_USER,
    make_entry,
    placeholders,
    retarus_options,
    route,
    setup_entry,
    state_of,
)

FORTYTWO_TOKEN = "0b9f6c3e-2f4e-4b1e-9a7c-5d8e1f2a3b4c"


async def _provider_form(hass: HomeAssistant, provider_type: str, name: str = "") -> Any:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    user_input = {"provider_type": provider_type, **({"name": name} if name else {})}
    result = await hass.config_entries.flow.async_configure(result["flow_id"], user_input)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "provider"
    return result


def _retarus_input(emu: RetarusSmsEmulator, **changes: Any) -> dict[str, Any]:
    return {"username": RETARUS_USER, "password": RETARUS_PASSWORD, "base_url": emu.base_url,
            "advanced_options": {"status_urls": [emu.base_url], "retry_attempts": 1},
            **changes}


async def test_simulator_needs_no_account(hass: HomeAssistant) -> None:
    result = await _provider_form(hass, "simulator", name="Try it")
    fields = [str(key) for key in result["data_schema"].schema]
    assert fields == ["advanced_options"]
    assert "sms_delay" in placeholders(result)["options"]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"advanced_options": {"sms_delay": 0.05}})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Try it"
    assert result["data"][CONF_PROVIDER_TYPE] == "simulator"
    assert result["data"][CONF_PROVIDER_OPTIONS] == {"sms_delay": 0.05}
    assert len(result["data"][CONF_WEBHOOK_ID]) >= 16
    entry = hass.config_entries.async_entries(DOMAIN)[0]
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_retarus_form_is_generated_and_credentials_checked(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    result = await _provider_form(hass, "retarus_sms")
    fields = [str(key) for key in result["data_schema"].schema]
    assert fields == ["username", "password", "base_url", "sender", "advanced_options"]
    assert "SMS for Applications user" in placeholders(result)["options"]

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _retarus_input(retarus, sender="ACME"))

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "retarus_sms (acme-sms)"
    assert result["result"].unique_id == "retarus_sms:acme-sms"  # the account, not the URL
    options = result["data"][CONF_PROVIDER_OPTIONS]
    assert options["password"] == RETARUS_PASSWORD
    assert options["sender"] == "ACME"
    await hass.async_block_till_done()
    assert retarus.count("GET", "/version") == 2  # the flow's check, then the setup's
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_wrong_password_is_invalid_auth_then_recovers(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    result = await _provider_form(hass, "retarus_sms")

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _retarus_input(retarus, password="wrong-password"))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _retarus_input(retarus))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(result["result"].entry_id)


async def test_unreachable_service_is_cannot_connect(hass: HomeAssistant,
                                                     socket_enabled: None) -> None:
    closed = f"http://127.0.0.1:{free_port()}/rest/v1"
    result = await _provider_form(hass, "retarus_sms")

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {
        "username": RETARUS_USER, "password": RETARUS_PASSWORD, "base_url": closed,
        "advanced_options": {"status_urls": [closed], "retry_attempts": 1}})

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    assert RETARUS_PASSWORD not in str(placeholders(result))


async def test_invalid_sender_is_named(hass: HomeAssistant,
                                       retarus: RetarusSmsEmulator) -> None:
    result = await _provider_form(hass, "retarus_sms")

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _retarus_input(retarus, sender="Sender id far too long"))

    assert result["errors"] == {"sender": "invalid_sender"}
    assert placeholders(result)["problem"].startswith("sender:")
    assert retarus.count("GET", "/version") == 0  # nothing is sent before the input is valid


async def test_advanced_options_are_validated_by_the_adapter(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    result = await _provider_form(hass, "retarus_sms")

    result = await hass.config_entries.flow.async_configure(result["flow_id"], _retarus_input(
        retarus, advanced_options={"status_urls": [retarus.base_url], "qos": "TURBO",
                                   "no_such_option": 1}))

    assert result["errors"] == {"advanced_options": "invalid_option"}
    problem = placeholders(result)["problem"]
    assert "qos" in problem
    assert "no_such_option: not an option of retarus_sms" in problem


async def test_same_account_twice_is_refused(hass: HomeAssistant,
                                             retarus: RetarusSmsEmulator) -> None:
    make_entry(hass, provider_type="retarus_sms", provider_options=retarus_options(retarus),
               unique_id="retarus_sms:acme-sms", title="Retarus")
    result = await _provider_form(hass, "retarus_sms")

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _retarus_input(retarus))

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reauth_replaces_the_secret(hass: HomeAssistant,
                                          retarus: RetarusSmsEmulator) -> None:
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus",
                       unique_id="retarus_sms:acme-sms",
                       provider_options=retarus_options(retarus, password="outdated"))
    result = await entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    assert [str(key) for key in result["data_schema"].schema] == ["password"]

    result = await hass.config_entries.flow.async_configure(result["flow_id"],
                                                            {"password": "still-wrong"})
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(result["flow_id"],
                                                            {"password": RETARUS_PASSWORD})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_PROVIDER_OPTIONS]["password"] == RETARUS_PASSWORD
    assert entry.data[CONF_PROVIDER_OPTIONS]["username"] == RETARUS_USER
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_keeps_the_secret_and_refuses_another_account(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus",
                       unique_id="retarus_sms:acme-sms",
                       provider_options=retarus_options(retarus))
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    schema = result["data_schema"]
    assert schema is not None
    suggested: dict[str, Any] = {str(k): (k.description or {}).get("suggested_value")
                                 for k in schema.schema}
    assert suggested["username"] == RETARUS_USER
    assert suggested["password"] is None  # a secret is never shown again
    assert suggested["advanced_options"]["status_urls"] == [retarus.base_url]

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {
        "username": RETARUS_USER, "base_url": retarus.base_url, "sender": "ACME",
        "advanced_options": suggested["advanced_options"]})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_PROVIDER_OPTIONS]["sender"] == "ACME"
    assert entry.data[CONF_PROVIDER_OPTIONS]["password"] == RETARUS_PASSWORD

    async with RetarusSmsEmulator(user="another-user", password=RETARUS_PASSWORD) as other:
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {
            "username": "another-user", "base_url": other.base_url,
            "advanced_options": {"status_urls": [other.base_url], "retry_attempts": 1}})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "account_mismatch"
    assert entry.data[CONF_PROVIDER_OPTIONS]["username"] == RETARUS_USER
    await hass.async_block_till_done()
    for loaded in hass.config_entries.async_entries(DOMAIN):
        await hass.config_entries.async_unload(loaded.entry_id)


async def test_reconfigure_moves_the_account_to_another_url(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus",
                       unique_id="retarus_sms:acme-sms",
                       provider_options=retarus_options(retarus))
    await setup_entry(hass, entry)
    async with RetarusSmsEmulator(user=RETARUS_USER, password=RETARUS_PASSWORD) as moved:
        # another server: another host name (and port) for the same account
        new_url = moved.base_url.replace("127.0.0.1", "localhost")
        result = await entry.start_reconfigure_flow(hass)
        result = await hass.config_entries.flow.async_configure(result["flow_id"], {
            "username": RETARUS_USER, "base_url": new_url,
            "advanced_options": {"status_urls": [new_url], "retry_attempts": 1}})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "reconfigure_successful"
        await hass.async_block_till_done()

        assert entry.unique_id == "retarus_sms:acme-sms"
        assert entry.data[CONF_PROVIDER_OPTIONS]["base_url"] == new_url
        assert state_of(entry) is ConfigEntryState.LOADED
        assert moved.count("GET", "/version") >= 2  # the flow's check, then the setup's
        assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reconfigure_reloads_the_entry_once_without_errors(
        hass: HomeAssistant, caplog: pytest.LogCaptureFixture) -> None:
    entry = make_entry(hass, provider_options={"sms_delay": 0.05},
                       routes=[route("leak", ["alice"])])
    await setup_entry(hass, entry)
    loads: list[ConfigEntryState] = []
    entry.async_on_state_change(lambda: loads.append(entry.state))

    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"advanced_options": {"sms_delay": 0.06}})
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()

    assert loads.count(ConfigEntryState.LOADED) == 1
    assert state_of(entry) is ConfigEntryState.LOADED
    assert entry.runtime_data.engine.config.providers["simulator"].options["sms_delay"] == 0.06
    assert hass.services.has_service("notify", "alertline_sim")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or (
        r.levelno >= logging.WARNING and r.name.startswith(("alertline", "custom_comp")))] == []
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_retarus_check_asks_the_configured_send_url(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    closed = f"http://127.0.0.1:{free_port()}/rest/v1"
    result = await _provider_form(hass, "retarus_sms")

    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _retarus_input(retarus, base_url=closed))

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "cannot_connect"}
    assert retarus.count("GET", "/version") == 1  # the status URL answered; the send URL not


async def test_options_are_checked_by_the_library(hass: HomeAssistant) -> None:
    entry = make_entry(hass, options={}, routes=[route("leak", ["+491701234567"])])
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["step_id"] == "init"

    result = await hass.config_entries.options.async_configure(result["flow_id"], {
        "contacts": {"carol": {"phone": "12"}}, "mqtt_base_topic": "home/#"})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"contacts": "invalid_config", "mqtt_base_topic": "invalid_topic"}
    assert "contacts.carol.phone" in placeholders(result)["problem"]

    result = await hass.config_entries.options.async_configure(result["flow_id"], {
        "contacts": {"carol": {"phone": "+491701234562", "quiet_hours": ["22:00/07:00"]}},
        "groups": {"night": ["carol"]}, "default_channel": "voice",
        "quiet_hours": ["23:00/06:00"], "allow": ["+49"], "per_hour_sms": 100.0,
        "escalations": {"page": {"repeat": 1, "steps": [{"to": ["carol"], "wait": "5m"}]}},
        "mqtt_base_topic": "home/alerts/"})

    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {
        "contacts": {"carol": {"phone": "+491701234562", "quiet_hours": ["22:00/07:00"]}},
        "groups": {"night": ["carol"]}, "default_channel": "voice",
        "quiet_hours": ["23:00/06:00"], "allow": ["+49"], "per_hour_sms": 100,
        "escalations": {"page": {"repeat": 1, "steps": [{"to": ["carol"], "wait": "5m"}]}},
        "mqtt_base_topic": "home/alerts"}


async def test_changed_options_reload_the_entry_once(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    states: list[ConfigEntryState] = []
    entry.async_on_state_change(lambda: states.append(entry.state))
    result = await hass.config_entries.options.async_init(entry.entry_id)

    result = await hass.config_entries.options.async_configure(result["flow_id"], {
        "contacts": {"carol": {"phone": "+491701234562"}}})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    assert states.count(ConfigEntryState.LOADED) == 1
    assert list(entry.runtime_data.engine.config.contacts) == ["carol"]
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_options_refuse_removing_a_contact_a_route_uses(hass: HomeAssistant) -> None:
    entry = make_entry(hass, routes=[route("leak", ["alice"])])
    result = await hass.config_entries.options.async_init(entry.entry_id)

    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"contacts": {"bob": {"phone": "+491701234561"}}})

    assert result["errors"] == {"base": "invalid_config"}
    assert "unknown contact or group 'alice'" in placeholders(result)["problem"]


async def test_route_subentry_adds_a_notify_entity(hass: HomeAssistant) -> None:
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    assert hass.states.get("notify.door") is None
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_ROUTE), context={"source": SOURCE_USER})
    assert result["step_id"] == "user"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "door", "to": ["carol"], "channel": ["sms"]})
    assert result["errors"] == {"to": "invalid_route"}
    assert "unknown contact or group 'carol'" in placeholders(result)["problem"]

    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {
        "name": "door", "to": ["oncall", "+491701234567"], "channel": ["sms", "voice"],
        "priority": "high", "quiet_hours": ["22:00/07:00"]})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()

    subentry = next(iter(entry.subentries.values()))
    assert subentry.unique_id == "door"
    assert dict(subentry.data) == {"name": "door", "to": ["oncall", "+491701234567"],
                                   "channel": ["sms", "voice"], "priority": "high",
                                   "quiet_hours": ["22:00/07:00"]}
    assert hass.states.get("notify.door") is not None
    assert hass.states.get("sensor.door_last_alert") is not None

    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_ROUTE), context={"source": SOURCE_USER})
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"name": "door", "to": ["alice"], "channel": ["sms"]})
    assert result["errors"] == {"name": "route_exists"}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_route_subentry_reconfigure(hass: HomeAssistant) -> None:
    entry = make_entry(hass, routes=[route("leak", ["alice"])])
    subentry_id = next(iter(entry.subentries))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_ROUTE),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id})
    assert result["step_id"] == "reconfigure"

    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"to": ["oncall"], "channel": ["voice"], "escalation": "nope"})
    assert result["errors"] == {"escalation": "invalid_route"}
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {"to": ["oncall"], "channel": ["voice"], "title": "Leak"})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert dict(entry.subentries[subentry_id].data) == {
        "name": "leak", "to": ["oncall"], "channel": ["voice"], "title": "Leak"}


async def test_reconfigure_shows_what_the_check_found(
        hass: HomeAssistant, retarus: RetarusSmsEmulator) -> None:
    entry = make_entry(hass, provider_type="retarus_sms", title="Retarus",
                       unique_id="retarus_sms:acme-sms", provider_options=retarus_options(retarus))
    result = await entry.start_reconfigure_flow(hass)

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {
        "username": RETARUS_USER, "base_url": retarus.base_url,
        "advanced_options": ["not", "a", "mapping"]})

    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"advanced_options": "invalid_option"}
    assert "mapping" in placeholders(result)["problem"]


@pytest.fixture
async def fortytwo(socket_enabled: None) -> AsyncIterator[FortytwoVoiceEmulator]:
    """The Fortytwo voice emulator: an account known only by its secret token."""
    async with FortytwoVoiceEmulator(token=FORTYTWO_TOKEN) as emulator:
        yield emulator


async def test_a_secret_identity_cannot_take_another_entrys_account(
        hass: HomeAssistant, fortytwo: FortytwoVoiceEmulator) -> None:
    options = {"token": FORTYTWO_TOKEN, "base_url": fortytwo.base_url, "retry_attempts": 1}
    taken = account_id(adapter_class("fortytwo_voice"), options)
    make_entry(hass, provider_type="fortytwo_voice", title="First", unique_id=taken,
               provider_options=options, options={})
    second = make_entry(hass, provider_type="fortytwo_voice", title="Second",
                        unique_id="fortytwo_voice:0123456789abcdef",
                        provider_options={**options, "token": "an-older-token"}, options={})
    result = await second.start_reconfigure_flow(hass)

    result = await hass.config_entries.flow.async_configure(result["flow_id"], {
        "token": FORTYTWO_TOKEN, "base_url": fortytwo.base_url,
        "advanced_options": {"retry_attempts": 1}})

    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert second.data[CONF_PROVIDER_OPTIONS]["token"] == "an-older-token"
