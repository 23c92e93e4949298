"""Diagnostics through Home Assistant's HTTP API: useful, and without a secret or number."""

from __future__ import annotations

import json

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.alertline.const import DOMAIN
from tests.emulators.retarus_sms import RetarusSmsEmulator

from .conftest import (
    CONTACTS,
    RETARUS_PASSWORD,
    RETARUS_USER,
    WEBHOOK_ID,
    Reports,
    make_entry,
    retarus_options,
    route,
    setup_entry,
)


async def test_diagnostics_redact_every_secret(
        hass: HomeAssistant, hass_client: ClientSessionGenerator,
        retarus: RetarusSmsEmulator, reports: Reports) -> None:
    entry = make_entry(
        hass, provider_type="retarus_sms", title=f"retarus_sms ({RETARUS_USER})",
        provider_options=retarus_options(retarus, customer_ref=f"ref {RETARUS_PASSWORD}"),
        options={"contacts": CONTACTS, "allow": ["+4917012345", "+43"]},
        routes=[route("leak", ["alice", "+491701234567"])])
    await setup_entry(hass, entry)
    response = await hass.services.async_call(DOMAIN, "send", {
        "message": "Leak", "route": "leak", "wait": True, "timeout": 10},
        blocking=True, return_response=True)
    assert response is not None

    diagnostics = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    text = json.dumps(diagnostics)
    for secret in (RETARUS_PASSWORD, WEBHOOK_ID, RETARUS_USER, "+491701234567",
                   CONTACTS["alice"]["phone"], "+4917012345", "+43"):
        assert secret not in text, secret
    assert diagnostics["entry"]["data"]["provider_options"]["password"] == "**REDACTED**"
    assert diagnostics["entry"]["data"]["provider_options"]["customer_ref"] == \
        "ref **REDACTED**"
    assert diagnostics["entry"]["options"]["contacts"]["alice"]["phone"] == "**REDACTED**"
    assert diagnostics["entry"]["title"] == "**REDACTED**"
    assert diagnostics["entry"]["options"]["allow"] == "**REDACTED**"
    assert diagnostics["provider"]["type"] == "retarus_sms"
    assert diagnostics["provider"]["capabilities"]["channels"] == ["sms"]
    assert diagnostics["engine"]["metrics"]["alerts_received"] == 1
    assert sum(diagnostics["store"]["deliveries"].values()) == 2
    assert await hass.config_entries.async_unload(entry.entry_id)
