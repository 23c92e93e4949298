"""Fixtures for the Home Assistant integration tests: a real ``hass``, real providers (the
simulator with short delays, the Retarus REST emulator over loopback HTTP) and a report listener
that tests await instead of sleeping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryData
from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.alertline.const import (
    CONF_PROVIDER_OPTIONS,
    CONF_PROVIDER_TYPE,
    CONF_WEBHOOK_ID,
    DOMAIN,
    EVENT_REPORT,
    SUBENTRY_ROUTE,
)
from tests.emulators.retarus_sms import RetarusSmsEmulator

SIM_OPTIONS = {"sms_delay": 0.05, "voice_delay": 0.05, "poll_interval": 0.05, "deadline": 3}
WEBHOOK_ID = "f3c1e2d4b5a69788a0b1c2d3e4f5a6b7"
RETARUS_USER = "acme-sms"
RETARUS_PASSWORD = "Retarus-S3cret-pa55"
CONTACTS = {
    "alice": {"phone": "+491701234560", "locale": "de_DE"},
    "bob": {"phone": "+491701234561"},
    "busy": {"phone": "+491701234568"},
}
GROUPS = {"oncall": ["alice", "bob"]}


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Load ``custom_components/alertline`` from this repository."""


@pytest.fixture(autouse=True)
def config_dir(hass: HomeAssistant, tmp_path: Any) -> None:
    """Each test's stores live in its own temporary config directory."""
    hass.config.config_dir = str(tmp_path)


def route(name: str, to: Iterable[str], **extra: Any) -> ConfigSubentryData:
    """A route subentry as Home Assistant stores it."""
    data = {"name": name, "to": list(to), "channel": ["sms"], **extra}
    return ConfigSubentryData(data=data, subentry_type=SUBENTRY_ROUTE, title=name, unique_id=name)


def make_entry(hass: HomeAssistant, *, provider_type: str = "simulator",
               provider_options: Mapping[str, Any] | None = None,
               options: Mapping[str, Any] | None = None,
               routes: Iterable[ConfigSubentryData] = (), title: str = "Sim",
               unique_id: str | None = None) -> MockConfigEntry:
    """A config entry added to ``hass`` (not set up yet)."""
    entry = MockConfigEntry(
        domain=DOMAIN, title=title, unique_id=unique_id or f"{provider_type}:{title}",
        version=1, minor_version=2,
        data={CONF_PROVIDER_TYPE: provider_type,
              CONF_PROVIDER_OPTIONS: dict(SIM_OPTIONS if provider_options is None
                                          else provider_options),
              CONF_WEBHOOK_ID: WEBHOOK_ID},
        options=dict({"contacts": CONTACTS, "groups": GROUPS} if options is None else options),
        subentries_data=list(routes))
    entry.add_to_hass(hass)
    return entry


async def call_action(hass: HomeAssistant, service: str, data: dict[str, Any]) -> dict[str, Any]:
    """Call an ``alertline`` action and return its response data."""
    response = await hass.services.async_call(DOMAIN, service, data, blocking=True,
                                              return_response=True)
    assert response is not None
    return dict(response)


def placeholders(result: Mapping[str, Any]) -> dict[str, str]:
    """A flow result's description placeholders."""
    found = result.get("description_placeholders")
    assert found is not None
    return dict(found)


def state_of(entry: MockConfigEntry) -> ConfigEntryState:
    """An entry's state, read afresh (not narrowed by earlier assertions)."""
    state: ConfigEntryState = entry.state
    return state


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Set the entry up and wait until Home Assistant is idle."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


class Reports:
    """Collects ``alertline_report`` events; tests await the report they expect."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.events: list[dict[str, Any]] = []
        self._waiters: list[tuple[str, bool, asyncio.Future[dict[str, Any]]]] = []
        self._unsub = hass.bus.async_listen(EVENT_REPORT, self._on_event)

    @callback
    def _on_event(self, event: Event[dict[str, Any]]) -> None:
        data = dict(event.data)
        self.events.append(data)
        for alert_id, final, future in self._waiters:
            if data["id"] == alert_id and (data["final"] or not final) and not future.done():
                future.set_result(data)

    def of(self, alert_id: str) -> list[dict[str, Any]]:
        """Every report event of one alert, in order."""
        return [e for e in self.events if e["id"] == alert_id]

    async def wait(self, alert_id: str, *, final: bool = True,
                   within: float = 10.0) -> dict[str, Any]:
        """The first (final, unless ``final=False``) report event of ``alert_id``."""
        for event in self.of(alert_id):
            if event["final"] or not final:
                return event
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiter = (alert_id, final, future)
        self._waiters.append(waiter)
        try:
            return await asyncio.wait_for(future, within)
        finally:
            self._waiters.remove(waiter)

    def close(self) -> None:
        """Stop listening."""
        self._unsub()


@pytest.fixture
async def reports(hass: HomeAssistant) -> AsyncIterator[Reports]:
    """The report events of this test."""
    collector = Reports(hass)
    yield collector
    collector.close()


@pytest.fixture
async def retarus(socket_enabled: None) -> AsyncIterator[RetarusSmsEmulator]:
    """The Retarus SMS REST emulator on a loopback port: one status step per 50 ms."""
    async with RetarusSmsEmulator(user=RETARUS_USER, password=RETARUS_PASSWORD,
                                  step_seconds=0.05) as emulator:
        yield emulator


def retarus_options(emulator: RetarusSmsEmulator, **extra: Any) -> dict[str, Any]:
    """Provider options that point the Retarus adapter at the emulator, with quick polling."""
    return {"username": RETARUS_USER, "password": RETARUS_PASSWORD,
            "base_url": emulator.base_url, "status_urls": [emulator.base_url],
            "poll_interval": 0.05, "retry_attempts": 1, **extra}
