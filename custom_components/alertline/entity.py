"""Base entities: one device per provider account, one device per route."""

from __future__ import annotations

from homeassistant.config_entries import ConfigSubentry
from homeassistant.helpers.device_registry import DeviceEntryType, DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from alertline import __version__ as library_version

from .const import CONF_PROVIDER_TYPE, CONF_ROUTE_NAME, DOMAIN
from .runtime import AlertlineConfigEntry


def account_device(entry: AlertlineConfigEntry) -> DeviceInfo:
    """The device of the provider account (the config entry)."""
    return DeviceInfo(
        identifiers={(DOMAIN, entry.entry_id)}, entry_type=DeviceEntryType.SERVICE,
        manufacturer="alertline", model=entry.data[CONF_PROVIDER_TYPE], name=entry.title,
        sw_version=library_version)


class AlertlineEntity(Entity):
    """An entity of the provider account."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, entry: AlertlineConfigEntry, description: EntityDescription) -> None:
        """Attach to the account device."""
        self.entity_description = description
        self.runtime = entry.runtime_data
        self._entry_id = entry.entry_id
        self._attr_unique_id = f"{entry.entry_id}_{description.key}"
        self._attr_device_info = account_device(entry)


class AlertlineRouteEntity(AlertlineEntity):
    """An entity of one route (a config subentry)."""

    def __init__(self, entry: AlertlineConfigEntry, subentry: ConfigSubentry,
                 description: EntityDescription) -> None:
        """Attach to the route's device, which hangs off the account device."""
        super().__init__(entry, description)
        self.route = str(subentry.data[CONF_ROUTE_NAME])
        self._attr_unique_id = f"{entry.entry_id}_{subentry.subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, f"{entry.entry_id}_{subentry.subentry_id}")},
            entry_type=DeviceEntryType.SERVICE, manufacturer="alertline", model="route",
            name=subentry.title, via_device=(DOMAIN, entry.entry_id))
