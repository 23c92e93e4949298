"""The one place that turns a config entry into the library's configuration and runtime data."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant

from alertline import Config, Engine, PostbackReceiver, account_config

from .const import (
    CONF_ALLOW,
    CONF_CONTACTS,
    CONF_DEFAULT_CHANNEL,
    CONF_ESCALATIONS,
    CONF_GROUPS,
    CONF_PER_HOUR_SMS,
    CONF_PER_HOUR_VOICE,
    CONF_PROVIDER_OPTIONS,
    CONF_PROVIDER_TYPE,
    CONF_QUIET_HOURS,
    CONF_ROUTE_NAME,
    CONF_TO,
    DOMAIN,
    SUBENTRY_ROUTE,
)
from .mqtt_reports import MqttReportPublisher
from .reports import ReportHub, TaskStarter

if TYPE_CHECKING:
    from .notify import AlertlineNotificationService

# what the running engine was built from besides the entry's data (see ``reload_key``)
type ReloadKey = tuple[dict[str, Any], dict[str, dict[str, Any]]]


@dataclass(slots=True)
class AlertlineData:
    """What a loaded alertline entry holds: the library's engine and its Home Assistant glue."""

    engine: Engine
    provider_name: str
    reports: ReportHub
    postbacks: PostbackReceiver | None = None
    mqtt: MqttReportPublisher | None = None
    pruning: asyncio.Task[None] | None = None
    built_from: ReloadKey | None = None
    legacy_notify: AlertlineNotificationService | None = None
    stopped: bool = False


type AlertlineConfigEntry = ConfigEntry[AlertlineData]


def reload_key(entry: AlertlineConfigEntry) -> ReloadKey:
    """The entry's options and routes: when they change, the engine is rebuilt."""
    return (dict(entry.options),
            {sid: dict(sub.data) for sid, sub in entry.subentries.items()})


def task_starter(hass: HomeAssistant, entry: AlertlineConfigEntry) -> TaskStarter:
    """Start tasks tracked by ``entry``: its unload waits for them, nothing outlives it."""
    def start(target: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return entry.async_create_task(hass, target, name)
    return start


def store_path(hass: HomeAssistant, entry_id: str) -> str:
    """Where an entry's SQLite store lives: in the config directory, so state survives restarts."""
    return hass.config.path(DOMAIN, f"{entry_id}.db")


def route_section(data: Mapping[str, Any]) -> dict[str, Any]:
    """The library's ``routes.<name>`` section from a route subentry's data (the form's field
    names are the library's keys; empty fields are left out)."""
    return {CONF_TO: list(data.get(CONF_TO) or []),
            **{key: value for key, value in data.items()
               if value and key not in (CONF_ROUTE_NAME, CONF_TO)}}


def entry_config(provider_type: str, provider_options: Mapping[str, Any],
                 options: Mapping[str, Any], routes: Iterable[Mapping[str, Any]], *,
                 store: str, region: str | None, timezone: str | None = None) -> Config:
    """The library's configuration from an entry's data, options and routes (raises
    ``ConfigError``)."""
    per_hour = {channel: int(options[key]) for channel, key in
                (("sms", CONF_PER_HOUR_SMS), ("voice", CONF_PER_HOUR_VOICE))
                if options.get(key) is not None}
    return account_config(
        provider_type, provider_options, store_path=store,
        default_channel=options.get(CONF_DEFAULT_CHANNEL),
        contacts=options.get(CONF_CONTACTS), groups=options.get(CONF_GROUPS),
        escalations=options.get(CONF_ESCALATIONS),
        routes={str(r[CONF_ROUTE_NAME]): route_section(r) for r in routes},
        quiet_hours=options.get(CONF_QUIET_HOURS) or (), allow=options.get(CONF_ALLOW) or (),
        per_hour=per_hour, region=region, timezone=timezone)


def route_subentries(entry: AlertlineConfigEntry) -> list[ConfigSubentry]:
    """The entry's route subentries."""
    return [s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_ROUTE]


def build_config(hass: HomeAssistant, entry: AlertlineConfigEntry) -> Config:
    """The validated library configuration of ``entry`` (raises ``ConfigError``)."""
    return entry_config(
        entry.data[CONF_PROVIDER_TYPE], entry.data[CONF_PROVIDER_OPTIONS], entry.options,
        [s.data for s in route_subentries(entry)], store=store_path(hass, entry.entry_id),
        region=hass.config.country, timezone=hass.config.time_zone)
