"""Notify: an entity per route (``notify.send_message``), the legacy ``notify.<name>`` service."""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.components.notify import (
    NotifyEntity,
    NotifyEntityDescription,
    NotifyEntityFeature,
)
from homeassistant.components.notify.const import ATTR_DATA, ATTR_TARGET, ATTR_TITLE
from homeassistant.components.notify.legacy import BaseNotificationService
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import CONF_NAME
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import ConfigType, DiscoveryInfoType

from .const import ATTR_CONFIG_ENTRY_ID, DOMAIN
from .entity import AlertlineRouteEntity
from .runtime import AlertlineConfigEntry, AlertlineData, route_subentries
from .sending import async_send

_LOGGER = logging.getLogger(__name__)

PARALLEL_UPDATES = 0

ROUTE_NOTIFY = NotifyEntityDescription(key="notify", translation_key="route", name=None)


async def async_setup_entry(hass: HomeAssistant, entry: AlertlineConfigEntry,
                            async_add_entities: AddConfigEntryEntitiesCallback) -> None:
    """One notify entity per route subentry."""
    for subentry in route_subentries(entry):
        async_add_entities([AlertlineRouteNotify(entry, subentry, ROUTE_NOTIFY)],
                           config_subentry_id=subentry.subentry_id)


class AlertlineRouteNotify(AlertlineRouteEntity, NotifyEntity):
    """Sends the message to the route's recipients on its channels, with its policy."""

    _attr_supported_features = NotifyEntityFeature.TITLE

    async def async_send_message(self, message: str, title: str | None = None) -> None:
        """Send an alert through the route."""
        request: dict[str, Any] = {"message": message, "route": self.route}
        if title:
            request["title"] = title
        await async_send(self.runtime, request, source=f"homeassistant:{self.entity_id}")


async def async_get_service(hass: HomeAssistant, config: ConfigType,
                            discovery_info: DiscoveryInfoType | None = None
                            ) -> AlertlineNotificationService | None:
    """The legacy notify service of one loaded entry (set up through discovery)."""
    if discovery_info is None:
        return None
    entry: AlertlineConfigEntry | None = hass.config_entries.async_get_entry(
        discovery_info[ATTR_CONFIG_ENTRY_ID])
    if entry is None or entry.state not in (ConfigEntryState.LOADED,
                                            ConfigEntryState.SETUP_IN_PROGRESS):
        return None  # unloaded before the discovery arrived (its runtime is stopped)
    runtime = entry.runtime_data
    if runtime.stopped or runtime.legacy_notify is not None:
        return None
    service = AlertlineNotificationService(runtime)
    runtime.legacy_notify = service
    return service


class AlertlineNotificationService(BaseNotificationService):
    """``notify.<name>`` with ``target`` (numbers, contacts, groups) and ``data`` (any alert
    field: channel, provider, sender, locale, priority, audio_url, personalization, escalation,
    quiet_hours, route, id, expires, not_before, options).

    It holds the runtime it was made for, never the entry: a reload replaces the entry's
    runtime, and the service of the old one is unregistered and released."""

    def __init__(self, runtime: AlertlineData) -> None:
        """Serve one loaded entry."""
        self._runtime: AlertlineData | None = runtime

    def release(self) -> None:
        """The entry was unloaded: drop the engine (notify keeps a list of its services)."""
        self._runtime = None

    async def async_register_services(self) -> None:
        """Register ``notify.<name>`` only while the entry is loaded: notify keeps released
        services in its list, and one registering late must not replace the live one."""
        if self._runtime is not None:
            await super().async_register_services()

    @property
    def targets(self) -> dict[str, str]:
        """Contacts and groups: each also gets its own ``notify.<name>_<target>`` service."""
        if self._runtime is None:
            return {}
        config = self._runtime.engine.config
        return {name: name for name in [*config.contacts, *config.groups]}

    async def async_send_message(self, message: str = "", **kwargs: Any) -> None:
        """Send an alert; invalid input raises ServiceValidationError naming the field; a
        service of an unloaded entry refuses."""
        if self._runtime is None:
            raise HomeAssistantError(translation_domain=DOMAIN,
                                     translation_key="no_entry_loaded")
        # notify's schema has made ``data`` a mapping
        request: dict[str, Any] = {**(kwargs.get(ATTR_DATA) or {}), "message": message}
        if kwargs.get(ATTR_TITLE):
            request["title"] = kwargs[ATTR_TITLE]
        if kwargs.get(ATTR_TARGET):
            request["to"] = list(kwargs[ATTR_TARGET])
        await async_send(self._runtime, request,
                         source=f"homeassistant:notify.{self._service_name}")


def legacy_service_name(entry: AlertlineConfigEntry) -> dict[str, str]:
    """Discovery info for the entry's legacy service: ``notify.alertline_<title>``."""
    return {CONF_NAME: f"{DOMAIN} {entry.title}", ATTR_CONFIG_ENTRY_ID: entry.entry_id}
