"""Fortytwo postbacks through Home Assistant's webhook component, over real HTTP both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from aiohttp.web import Application, Request
from homeassistant.components.http import ApiConfig
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alertline.const import DOMAIN
from tests.emulators.fortytwo import FortytwoVoiceEmulator

from .conftest import WEBHOOK_ID, Reports, make_entry, setup_entry

WebClient = TestClient[Request, Application]
TOKEN = "0b9f6c3e-2f4e-4b1e-9a7c-5d8e1f2a3b4c"


@pytest.fixture
async def fortytwo(socket_enabled: None) -> AsyncIterator[FortytwoVoiceEmulator]:
    """The Fortytwo voice emulator; it posts call status to the job's callback URL."""
    async with FortytwoVoiceEmulator(token=TOKEN) as emulator:
        yield emulator


@pytest.fixture
async def web(hass: HomeAssistant, hass_client_no_auth: ClientSessionGenerator) -> WebClient:
    """Home Assistant's HTTP server with the webhook component, reachable on loopback."""
    assert await async_setup_component(hass, "webhook", {})
    client: WebClient = await hass_client_no_auth()
    await hass.config.async_update(internal_url=str(client.make_url("/")).rstrip("/"))
    return client


@pytest.fixture
async def loaded(hass: HomeAssistant, web: WebClient,
                 fortytwo: FortytwoVoiceEmulator) -> AsyncIterator[Any]:
    entry = make_entry(hass, provider_type="fortytwo_voice", title="Fortytwo",
                       provider_options={"token": TOKEN, "base_url": fortytwo.base_url,
                                         "retry_attempts": 1}, options={})
    await setup_entry(hass, entry)
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_call_status_arrives_by_webhook(hass: HomeAssistant, web: WebClient,
                                              fortytwo: FortytwoVoiceEmulator, loaded: Any,
                                              reports: Reports) -> None:
    response = await hass.services.async_call(DOMAIN, "send", {
        "message": "Smoke alarm in the kitchen", "target": ["+491701234560", "+491701234566"],
        "channel": "voice"}, blocking=True, return_response=True)
    assert response is not None
    alert_id = str(response["alert_id"])
    job = next(iter(fortytwo.jobs.values()))
    assert job.callback_url == f"{web.make_url('/api/webhook/' + WEBHOOK_ID)}" \
        "?provider=fortytwo_voice"

    ringing = await fortytwo.advance()
    final_posts = await fortytwo.advance()
    final = await reports.wait(alert_id)

    assert {status for _, _, status in ringing + final_posts} == {200}
    outcome = {d["to"]: (d["state"], d["provider_status"]) for d in final["deliveries"]}
    assert outcome["+491701234560"][0] == "delivered"
    assert outcome["+491701234566"][0] == "failed"
    assert final["state"] == "partially_delivered"
    assert loaded.runtime_data.postbacks.duplicates >= 1  # the emulator repeats a final status


async def test_forged_or_malformed_postbacks_change_nothing(
        hass: HomeAssistant, web: WebClient, loaded: Any, reports: Reports) -> None:
    url = f"/api/webhook/{WEBHOOK_ID}"

    malformed = await web.post(f"{url}?provider=fortytwo_voice", data=b"{not json")
    unknown = await web.post(f"{url}?provider=simulator", json={"data": []})
    too_large = await web.post(f"{url}?provider=fortytwo_voice", data=b"x" * (70 * 1024))

    assert malformed.status == 400
    assert (await malformed.json())["error"] == "malformed"
    assert unknown.status == 404
    assert too_large.status == 413
    assert reports.events == []


async def test_without_a_url_for_postbacks_a_repair_issue_says_so(
        hass: HomeAssistant, fortytwo: FortytwoVoiceEmulator) -> None:
    entry = make_entry(hass, provider_type="fortytwo_voice", title="Fortytwo",
                       provider_options={"token": TOKEN, "base_url": fortytwo.base_url,
                                         "retry_attempts": 1}, options={})
    await setup_entry(hass, entry)

    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"callback_url_missing_{entry.entry_id}")
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.WARNING
    assert entry.runtime_data.engine.context.callback_base_url is None
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_voice_only_provider_calls_when_no_channel_is_named(
        hass: HomeAssistant, web: WebClient, fortytwo: FortytwoVoiceEmulator, loaded: Any,
        reports: Reports) -> None:
    response: Any = await hass.services.async_call(DOMAIN, "send", {
        "message": "Smoke alarm", "target": ["+491701234560"]},
        blocking=True, return_response=True)

    assert [d["channel"] for d in response["report"]["deliveries"]] == ["voice"]
    assert len(fortytwo.jobs) == 1


async def test_the_callback_url_is_only_a_url_home_assistant_is_configured_with(
        hass: HomeAssistant, fortytwo: FortytwoVoiceEmulator) -> None:
    # Home Assistant detected a local address, but neither an internal nor an external URL is
    # configured: the server may not listen there (server_host), so it is not a callback URL
    hass.config.api = ApiConfig(local_ip="192.0.2.10", host="127.0.0.1", port=8123,
                                use_ssl=False)
    entry = make_entry(hass, provider_type="fortytwo_voice", title="Fortytwo",
                       provider_options={"token": TOKEN, "base_url": fortytwo.base_url,
                                         "retry_attempts": 1}, options={})
    await setup_entry(hass, entry)

    assert entry.runtime_data.engine.context.callback_base_url is None
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"callback_url_missing_{entry.entry_id}")
    assert await hass.config_entries.async_unload(entry.entry_id)

    await hass.config.async_update(external_url="https://ha.example.net")
    await setup_entry(hass, entry)

    assert entry.runtime_data.engine.context.callback_base_url == \
        f"https://ha.example.net/api/webhook/{WEBHOOK_ID}?provider={{provider}}"
    assert not ir.async_get(hass).async_get_issue(DOMAIN,
                                                  f"callback_url_missing_{entry.entry_id}")
    assert await hass.config_entries.async_unload(entry.entry_id)
