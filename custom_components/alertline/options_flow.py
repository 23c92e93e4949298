"""Options (contacts, groups, defaults, limits, escalations, MQTT topic) and route subentries.

Both forms are checked by building the whole library configuration with the change applied, so
the library's own validation (numbers, quiet-hour windows, references between routes, groups and
contacts) decides, and its message is shown next to the field it concerns.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    ObjectSelector,
    SelectSelector,
    SelectSelectorConfig,
    TextSelector,
    TextSelectorConfig,
)

from alertline import ConfigError, adapter_channels, default_channel

from .const import (
    CONF_ALLOW,
    CONF_CHANNEL,
    CONF_CONTACTS,
    CONF_DEFAULT_CHANNEL,
    CONF_ESCALATION,
    CONF_ESCALATIONS,
    CONF_GROUPS,
    CONF_MQTT_BASE_TOPIC,
    CONF_PER_HOUR_SMS,
    CONF_PER_HOUR_VOICE,
    CONF_PRIORITY,
    CONF_PROVIDER_OPTIONS,
    CONF_PROVIDER_TYPE,
    CONF_QUIET_HOURS,
    CONF_ROUTE_NAME,
    CONF_SENDER,
    CONF_TITLE,
    CONF_TO,
    DEFAULT_MQTT_BASE_TOPIC,
)
from .provider_form import async_adapter
from .runtime import (
    AlertlineConfigEntry,
    entry_config,
    route_subentries,
)

_TOPIC = re.compile(r"^[^#+\s]+$")
_OPTION_FIELDS = {"contacts": CONF_CONTACTS, "groups": CONF_GROUPS,
                  "escalations": CONF_ESCALATIONS, "limits": CONF_ALLOW,
                  "defaults": CONF_DEFAULT_CHANNEL}
_ROUTE_FIELDS = {CONF_TO, CONF_CHANNEL, CONF_PRIORITY, CONF_ESCALATION, CONF_SENDER,
                 CONF_TITLE, CONF_QUIET_HOURS}
_MULTI_TEXT = TextSelector(TextSelectorConfig(multiple=True))
_COUNT = NumberSelector(NumberSelectorConfig(min=0, max=1_000_000, step=1,
                                             mode=NumberSelectorMode.BOX))


async def _async_channels(flow: OptionsFlow | ConfigSubentryFlow,
                          entry: AlertlineConfigEntry) -> list[str]:
    """The channels the entry's provider can deliver on."""
    return adapter_channels(await async_adapter(flow.hass, entry.data[CONF_PROVIDER_TYPE]))


def _check(entry: AlertlineConfigEntry, options: Mapping[str, Any],
           routes: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The library's problems with ``entry`` given new ``options`` and ``routes``."""
    try:
        entry_config(entry.data[CONF_PROVIDER_TYPE], entry.data[CONF_PROVIDER_OPTIONS], options,
                     routes, store="validation.db", region=None)
    except ConfigError as err:
        return err.problems
    return []


def _problem_text(problems: list[tuple[str, str]]) -> str:
    return "; ".join(f"{path}: {reason}" if path else reason for path, reason in problems)


class AlertlineOptionsFlow(OptionsFlow):
    """Who can be alerted and the guard rails around it."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None
                              ) -> ConfigFlowResult:
        """One form; the library checks it as a whole."""
        errors: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        entry: AlertlineConfigEntry = self.config_entry
        channels = await _async_channels(self, entry)
        if user_input is not None:
            options = _clean_options(user_input, channels)
            if not _TOPIC.match(options[CONF_MQTT_BASE_TOPIC]):
                errors[CONF_MQTT_BASE_TOPIC] = "invalid_topic"
            routes = [s.data for s in route_subentries(entry)]
            problems = _check(entry, options, routes)
            for path, _reason in problems:
                errors[_options_field(path)] = "invalid_config"
            if not errors:
                return self.async_create_entry(data=options)
        schema = vol.Schema({
            vol.Optional(CONF_DEFAULT_CHANNEL, default=default_channel(channels)): SelectSelector(
                SelectSelectorConfig(options=channels, translation_key="channel")),
            vol.Optional(CONF_QUIET_HOURS): _MULTI_TEXT,
            vol.Optional(CONF_ALLOW): _MULTI_TEXT,
            vol.Optional(CONF_PER_HOUR_SMS): _COUNT,
            vol.Optional(CONF_PER_HOUR_VOICE): _COUNT,
            vol.Optional(CONF_MQTT_BASE_TOPIC, default=DEFAULT_MQTT_BASE_TOPIC): TextSelector(),
            vol.Optional(CONF_CONTACTS): ObjectSelector(),
            vol.Optional(CONF_GROUPS): ObjectSelector(),
            vol.Optional(CONF_ESCALATIONS): ObjectSelector(),
        })
        suggested = user_input if user_input is not None else entry.options
        return self.async_show_form(
            step_id="init", data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors, description_placeholders={"problem": _problem_text(problems)})


def _clean_options(user_input: Mapping[str, Any], channels: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {
        CONF_DEFAULT_CHANNEL: user_input.get(CONF_DEFAULT_CHANNEL) or default_channel(channels),
        CONF_MQTT_BASE_TOPIC: str(user_input.get(CONF_MQTT_BASE_TOPIC)
                                  or DEFAULT_MQTT_BASE_TOPIC).strip().rstrip("/"),
    }
    for key in (CONF_QUIET_HOURS, CONF_ALLOW):
        values = [str(v).strip() for v in user_input.get(key) or [] if str(v).strip()]
        if values:
            options[key] = values
    for key in (CONF_PER_HOUR_SMS, CONF_PER_HOUR_VOICE):
        if user_input.get(key) is not None:
            options[key] = int(user_input[key])
    for key in (CONF_CONTACTS, CONF_GROUPS, CONF_ESCALATIONS):
        if user_input.get(key):
            options[key] = user_input[key]
    return options


def _options_field(path: str) -> str:
    head = path.split(".", 1)[0]
    if head == "routes":
        return CONF_QUIET_HOURS if ".quiet_hours" in path else "base"
    return _OPTION_FIELDS.get(head, "base")


class RouteSubentryFlow(ConfigSubentryFlow):
    """A route: a named set of recipients, channels and policy; it becomes a notify entity."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None
                              ) -> SubentryFlowResult:
        """Add a route."""
        entry: AlertlineConfigEntry = self._get_entry()
        channels = await _async_channels(self, entry)
        errors: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        if user_input is not None:
            route = _clean_route(user_input)
            name = route[CONF_ROUTE_NAME]
            others = [s.data for s in route_subentries(entry)]
            if any(r[CONF_ROUTE_NAME] == name for r in others):
                errors[CONF_ROUTE_NAME] = "route_exists"
            else:
                problems = _check(entry, entry.options, [*others, route])
                errors = _route_errors(problems, name)
            if not errors:
                return self.async_create_entry(title=name, data=route, unique_id=name)
        schema = vol.Schema({vol.Required(CONF_ROUTE_NAME): TextSelector(),
                             **_route_fields(channels)})
        suggested = {CONF_CHANNEL: [default_channel(channels)], CONF_PRIORITY: "normal"}
        return self.async_show_form(
            step_id="user", data_schema=self.add_suggested_values_to_schema(
                schema, user_input or suggested),
            errors=errors, description_placeholders={"problem": _problem_text(problems)})

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None
                                     ) -> SubentryFlowResult:
        """Change a route's recipients, channels or policy."""
        entry: AlertlineConfigEntry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        name = subentry.data[CONF_ROUTE_NAME]
        channels = await _async_channels(self, entry)
        errors: dict[str, str] = {}
        problems: list[tuple[str, str]] = []
        if user_input is not None:
            route = _clean_route({**user_input, CONF_ROUTE_NAME: name})
            others = [s.data for s in route_subentries(entry)
                      if s.subentry_id != subentry.subentry_id]
            problems = _check(entry, entry.options, [*others, route])
            errors = _route_errors(problems, name)
            if not errors:
                return self.async_update_and_abort(entry, subentry, data=route)
        return self.async_show_form(
            step_id="reconfigure", data_schema=self.add_suggested_values_to_schema(
                vol.Schema(_route_fields(channels)), user_input or dict(subentry.data)),
            errors=errors, description_placeholders={"name": name,
                                                     "problem": _problem_text(problems)})


def _route_fields(channels: list[str]) -> dict[Any, Any]:
    return {
        vol.Required(CONF_TO): _MULTI_TEXT,
        vol.Required(CONF_CHANNEL): SelectSelector(SelectSelectorConfig(
            options=channels, multiple=True, translation_key="channel")),
        vol.Optional(CONF_PRIORITY): SelectSelector(SelectSelectorConfig(
            options=["normal", "high"], translation_key="priority")),
        vol.Optional(CONF_ESCALATION): TextSelector(),
        vol.Optional(CONF_SENDER): TextSelector(),
        vol.Optional(CONF_TITLE): TextSelector(),
        vol.Optional(CONF_QUIET_HOURS): _MULTI_TEXT,
    }


def _clean_route(user_input: Mapping[str, Any]) -> dict[str, Any]:
    route: dict[str, Any] = {CONF_ROUTE_NAME: str(user_input.get(CONF_ROUTE_NAME, "")).strip()}
    for key in (CONF_TO, CONF_CHANNEL, CONF_QUIET_HOURS):
        values = [str(v).strip() for v in user_input.get(key) or [] if str(v).strip()]
        if values:
            route[key] = values
    for key in (CONF_PRIORITY, CONF_ESCALATION, CONF_SENDER, CONF_TITLE):
        value = str(user_input.get(key) or "").strip()
        if value:
            route[key] = value
    return route


def _route_errors(problems: list[tuple[str, str]], name: str) -> dict[str, str]:
    errors: dict[str, str] = {}
    prefix = f"routes.{name}"
    for path, _reason in problems:
        if path in (prefix, "routes"):
            errors[CONF_ROUTE_NAME] = "invalid_route"
        elif path.startswith(prefix + "."):
            key = path[len(prefix) + 1:].split(".", 1)[0]
            errors[key if key in _ROUTE_FIELDS else "base"] = "invalid_route"
        else:
            errors["base"] = "invalid_route"
    return errors
