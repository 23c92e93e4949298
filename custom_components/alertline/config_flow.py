"""Config flow: pick a provider, enter its options (form generated from the adapter), verify."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)

from alertline import Provider, adapter_types, pushes_status

from .const import (
    CONF_PROVIDER_OPTIONS,
    CONF_PROVIDER_TYPE,
    CONF_WEBHOOK_ID,
    DOMAIN,
    SUBENTRY_ROUTE,
)
from .options_flow import AlertlineOptionsFlow, RouteSubentryFlow
from .postback_webhook import async_callback_base_url
from .provider_form import (
    ProviderFormError,
    account_id,
    account_title,
    async_adapter,
    async_check,
    form_schema,
    identity_is_secret,
    options_from_input,
    options_help,
    validate_options,
)
from .runtime import AlertlineConfigEntry

CONF_NAME = "name"


class AlertlineConfigFlow(ConfigFlow, domain=DOMAIN):
    """One entry per provider account; routes are its subentries."""

    VERSION = 1
    MINOR_VERSION = 2  # 1.2: the unique id no longer holds the host (async_migrate_entry)

    def __init__(self) -> None:
        """Start with no provider chosen."""
        self._provider_type = ""
        self._name = ""
        self._webhook_id = secrets.token_hex(16)

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: AlertlineConfigEntry) -> OptionsFlow:
        """Contacts, groups, defaults, limits, escalation policies, MQTT report topic."""
        return AlertlineOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
            cls, config_entry: AlertlineConfigEntry) -> dict[str, type[ConfigSubentryFlow]]:
        """Routes: one notify entity each."""
        return {SUBENTRY_ROUTE: RouteSubentryFlow}

    async def async_step_user(self, user_input: dict[str, Any] | None = None
                              ) -> ConfigFlowResult:
        """Choose the provider type (the simulator needs no account)."""
        if user_input is not None:
            self._provider_type = user_input[CONF_PROVIDER_TYPE]
            self._name = (user_input.get(CONF_NAME) or "").strip()
            return await self.async_step_provider()
        schema = vol.Schema({
            vol.Required(CONF_PROVIDER_TYPE, default="simulator"): SelectSelector(
                SelectSelectorConfig(options=adapter_types(), translation_key="provider_type",
                                     mode=SelectSelectorMode.LIST)),
            vol.Optional(CONF_NAME): TextSelector(),
        })
        return self.async_show_form(step_id="user", data_schema=schema)

    async def async_step_provider(self, user_input: dict[str, Any] | None = None
                                  ) -> ConfigFlowResult:
        """The provider's options, generated from the adapter's schema; verified on submit."""
        adapter = await async_adapter(self.hass, self._provider_type)
        errors: dict[str, str] = {}
        problem = ""
        if user_input is not None:
            try:
                options = await self._async_verify(adapter, user_input, {}, self._webhook_id)
            except ProviderFormError as err:
                errors, problem = err.errors, err.problem
            else:
                await self.async_set_unique_id(account_id(adapter, options))
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=self._name or account_title(adapter, options),
                    data={CONF_PROVIDER_TYPE: adapter.type, CONF_PROVIDER_OPTIONS: options,
                          CONF_WEBHOOK_ID: self._webhook_id})
        return self._show_provider_form("provider", adapter, user_input, errors=errors,
                                        problem=problem)

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The provider rejected the credentials: ask for new ones."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(self, user_input: dict[str, Any] | None = None
                                        ) -> ConfigFlowResult:
        """New secrets for the same account, verified with the provider."""
        entry: AlertlineConfigEntry = self._get_reauth_entry()
        adapter = await async_adapter(self.hass, entry.data[CONF_PROVIDER_TYPE])
        current = dict(entry.data[CONF_PROVIDER_OPTIONS])
        errors: dict[str, str] = {}
        problem = ""
        if user_input is not None:
            merged = {**current, **{k: v for k, v in user_input.items() if v}}
            try:
                options = await self._async_verify(adapter, merged, current,
                                                   entry.data[CONF_WEBHOOK_ID], raw=True)
            except ProviderFormError as err:
                errors, problem = err.errors, err.problem
            else:
                return await self._async_update_entry(entry, adapter, options)
        return self.async_show_form(
            step_id="reauth_confirm", data_schema=form_schema(adapter, secrets_only=True),
            errors=errors, description_placeholders={"name": entry.title, "problem": problem})

    async def async_step_reconfigure(self, user_input: dict[str, Any] | None = None
                                     ) -> ConfigFlowResult:
        """Change the provider's options (credentials, sender, URLs, advanced options)."""
        entry: AlertlineConfigEntry = self._get_reconfigure_entry()
        adapter = await async_adapter(self.hass, entry.data[CONF_PROVIDER_TYPE])
        current = dict(entry.data[CONF_PROVIDER_OPTIONS])
        errors: dict[str, str] = {}
        problem = ""
        if user_input is not None:
            try:
                options = await self._async_verify(adapter, user_input, current,
                                                   entry.data[CONF_WEBHOOK_ID])
            except ProviderFormError as err:
                errors, problem = err.errors, err.problem
            else:
                return await self._async_update_entry(entry, adapter, options)
        return self._show_provider_form("reconfigure", adapter, user_input, errors=errors,
                                        problem=problem, current=current)

    async def _async_update_entry(self, entry: AlertlineConfigEntry, adapter: type[Provider],
                                  options: dict[str, Any]) -> ConfigFlowResult:
        new_id = account_id(adapter, options)
        if identity_is_secret(adapter):
            # the account is known only by its secret: a new secret may be a new account id,
            # but never one that another entry already has
            if any(other.unique_id == new_id and other.entry_id != entry.entry_id
                   for other in self._async_current_entries(include_ignore=False)):
                return self.async_abort(reason="already_configured")
        else:
            await self.async_set_unique_id(new_id)
            self._abort_if_unique_id_mismatch(reason="account_mismatch")
        return self.async_update_reload_and_abort(
            entry, unique_id=new_id, data_updates={CONF_PROVIDER_OPTIONS: options})

    async def _async_verify(self, adapter: type[Provider], user_input: Mapping[str, Any],
                            previous: Mapping[str, Any], webhook_id: str, *, raw: bool = False
                            ) -> dict[str, Any]:
        """The provider options from the form, validated and checked with the provider."""
        options = dict(user_input) if raw else options_from_input(adapter, user_input, previous)
        validated = validate_options(adapter, options)
        callback = async_callback_base_url(self.hass, webhook_id) \
            if pushes_status(adapter) else None
        await async_check(self.hass, adapter, adapter.type, validated, callback)
        return options

    def _show_provider_form(self, step_id: str, adapter: type[Provider],
                            user_input: Mapping[str, Any] | None, *, errors: dict[str, str],
                            problem: str, current: Mapping[str, Any] | None = None
                            ) -> ConfigFlowResult:
        schema = form_schema(adapter, current)
        if user_input:
            schema = self.add_suggested_values_to_schema(
                schema, {k: v for k, v in user_input.items() if k not in adapter.secret_options})
        return self.async_show_form(
            step_id=step_id, data_schema=schema, errors=errors,
            description_placeholders={"provider": adapter.description,
                                      "options": options_help(adapter), "problem": problem})
