"""Sensors: deliveries by state and open alerts (per account), last alert state (per route)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from alertline import AlertState, DeliveryState, Report

from .const import ATTR_ALERT_ID
from .entity import AlertlineEntity, AlertlineRouteEntity
from .reports import ReportHub, signal_counts, signal_report
from .runtime import AlertlineConfigEntry, route_subentries

PARALLEL_UPDATES = 0

ENABLED_BY_DEFAULT = {DeliveryState.SUBMITTED, DeliveryState.DELIVERED, DeliveryState.FAILED}


@dataclass(frozen=True, kw_only=True)
class AlertlineCountDescription(SensorEntityDescription):
    """A count read from the report hub."""

    value: Callable[[ReportHub], int]


def _deliveries(state: DeliveryState) -> AlertlineCountDescription:
    return AlertlineCountDescription(
        key=f"deliveries_{state.value}", translation_key=f"deliveries_{state.value}",
        state_class=(SensorStateClass.TOTAL_INCREASING if state.final
                     else SensorStateClass.MEASUREMENT),
        entity_registry_enabled_default=state in ENABLED_BY_DEFAULT,
        value=lambda hub: hub.counts.get(state.value, 0))


COUNT_SENSORS: tuple[AlertlineCountDescription, ...] = (
    *(_deliveries(state) for state in DeliveryState),
    AlertlineCountDescription(key="open_alerts", translation_key="open_alerts",
                              state_class=SensorStateClass.MEASUREMENT,
                              value=lambda hub: hub.open_alerts),
)
LAST_ALERT = SensorEntityDescription(
    key="last_alert", translation_key="last_alert", device_class=SensorDeviceClass.ENUM,
    options=[state.value for state in AlertState])


async def async_setup_entry(hass: HomeAssistant, entry: AlertlineConfigEntry,
                            async_add_entities: AddConfigEntryEntitiesCallback) -> None:
    """Account counters, and the last alert state of each route."""
    async_add_entities(AlertlineCountSensor(entry, description) for description in COUNT_SENSORS)
    for subentry in route_subentries(entry):
        async_add_entities([AlertlineLastAlertSensor(entry, subentry, LAST_ALERT)],
                           config_subentry_id=subentry.subentry_id)


class AlertlineCountSensor(AlertlineEntity, SensorEntity):
    """How many deliveries are in one state (from the store, so it survives restarts)."""

    entity_description: AlertlineCountDescription

    @property
    def native_value(self) -> int:
        """The current count."""
        return self.entity_description.value(self.runtime.reports)

    async def async_added_to_hass(self) -> None:
        """Follow count changes."""
        self.async_on_remove(async_dispatcher_connect(
            self.hass, signal_counts(self._entry_id), self.async_write_ha_state))


class AlertlineLastAlertSensor(AlertlineRouteEntity, RestoreSensor):
    """The state of the route's most recent alert, with its id."""

    def __init__(self, *args: Any) -> None:
        """Start without an alert."""
        super().__init__(*args)
        self._attr_native_value = None
        self._attr_extra_state_attributes = {}

    async def async_added_to_hass(self) -> None:
        """Restore the last state, then follow the route's reports."""
        await super().async_added_to_hass()
        report = self.runtime.reports.last_by_route.get(self.route)
        if report is not None:
            self._apply(report)
        elif (last := await self.async_get_last_state()) is not None and \
                last.state in (self.options or []):
            self._attr_native_value = last.state
            if ATTR_ALERT_ID in last.attributes:
                self._attr_extra_state_attributes = {
                    ATTR_ALERT_ID: last.attributes[ATTR_ALERT_ID]}
        self.async_on_remove(async_dispatcher_connect(
            self.hass, signal_report(self._entry_id), self._on_report))

    @callback
    def _on_report(self, report: Report) -> None:
        if report.alert.route == self.route:
            self._apply(report)
            self.async_write_ha_state()

    def _apply(self, report: Report) -> None:
        self._attr_native_value = report.state.value
        self._attr_extra_state_attributes = {ATTR_ALERT_ID: report.alert.id}
