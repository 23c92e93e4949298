"""alertline: alerts as SMS and phone calls, with delivery reports, in Home Assistant.

A thin shell over the ``alertline`` library: the library's engine, providers and store do the
work; this integration translates config entries, entities, services, events, webhooks and MQTT.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from homeassistant.components import webhook
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import EVENT_HOMEASSISTANT_STOP, Platform
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import discovery
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.httpx_client import get_async_client
from homeassistant.helpers.typing import ConfigType
from homeassistant.util.hass_dict import HassKey

from alertline import (
    AuthError,
    ConfigError,
    Engine,
    Provider,
    ProviderError,
    StoreBusyError,
    create_engine,
    keep_pruning,
    prune_finished,
    pushes_status,
    remove_store,
)

from .const import (
    CONF_MQTT_BASE_TOPIC,
    CONF_PROVIDER_OPTIONS,
    CONF_PROVIDER_TYPE,
    CONF_WEBHOOK_ID,
    DEFAULT_MQTT_BASE_TOPIC,
    DOMAIN,
)
from .mqtt_reports import MqttReportPublisher
from .notify import legacy_service_name
from .postback_webhook import (
    async_callback_base_url,
    async_register_postbacks,
    wants_postbacks,
)
from .provider_form import account_id, async_adapter
from .reports import ReportHub
from .runtime import (
    AlertlineConfigEntry,
    AlertlineData,
    build_config,
    reload_key,
    store_path,
    task_starter,
)
from .services import async_setup_services

_LOGGER = logging.getLogger(__name__)

PLATFORMS = [Platform.NOTIFY, Platform.SENSOR]
CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)
HASS_CONFIG: HassKey[ConfigType] = HassKey(f"{DOMAIN}_hass_config")


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the service actions once, whatever entries exist."""
    hass.data[HASS_CONFIG] = config
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: AlertlineConfigEntry) -> bool:
    """Build the engine from the entry, check the provider, start, forward the platforms."""
    adapter = await async_adapter(hass, entry.data[CONF_PROVIDER_TYPE])
    engine = _create_engine(hass, entry, adapter)
    provider_name = entry.data[CONF_PROVIDER_TYPE]
    await _async_check_provider(engine, provider_name)
    start_task = task_starter(hass, entry)
    runtime = AlertlineData(engine=engine, provider_name=provider_name,
                            reports=ReportHub(hass, entry.entry_id, engine, start_task),
                            built_from=reload_key(entry))
    if "mqtt" in hass.config.components:
        runtime.mqtt = MqttReportPublisher(
            hass, engine, entry.options.get(CONF_MQTT_BASE_TOPIC, DEFAULT_MQTT_BASE_TOPIC))
    engine.subscribe(runtime.reports.handle)
    engine.on_provider_error(lambda err: _on_provider_error(hass, entry, err))
    try:
        await engine.start()
    except StoreBusyError as err:
        await engine.stop()
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="store_busy") from err
    entry.runtime_data = runtime
    entry.async_on_unload(hass.bus.async_listen(EVENT_HOMEASSISTANT_STOP, _stopper(runtime)))
    if runtime.mqtt is not None:
        runtime.mqtt.async_start(
            lambda target, name: entry.async_create_background_task(hass, target, name))
    retention = engine.config.store_retention  # finished alerts leave first, then are counted
    await prune_finished(engine.store, engine.clock.now, retention)
    runtime.pruning = entry.async_create_background_task(hass, keep_pruning(
        engine.store, engine.clock.now, retention, at_once=False), "alertline pruning")
    if wants_postbacks(engine):
        runtime.postbacks = async_register_postbacks(
            hass, f"alertline {entry.title}", entry.data[CONF_WEBHOOK_ID], engine)
    await runtime.reports.async_refresh_counts()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    entry.async_create_task(hass, discovery.async_load_platform(
        hass, Platform.NOTIFY, DOMAIN, legacy_service_name(entry), hass.data[HASS_CONFIG]),
        "alertline legacy notify service")
    entry.async_on_unload(entry.add_update_listener(_async_entry_updated))
    return True


async def async_migrate_entry(hass: HomeAssistant, entry: AlertlineConfigEntry) -> bool:
    """1.1 → 1.2: the unique id is the account alone (it held the host, so an account could
    not move to another URL)."""
    if entry.version > 1:
        return False  # written by a newer version
    if entry.minor_version < 2:
        adapter = await async_adapter(hass, entry.data[CONF_PROVIDER_TYPE])
        new_id = account_id(adapter, entry.data[CONF_PROVIDER_OPTIONS])
        if any(other.unique_id == new_id for other in hass.config_entries.async_entries(DOMAIN)
               if other.entry_id != entry.entry_id):
            _LOGGER.warning("%s: another entry has the same account; its unique id keeps "
                            "the server's host", entry.title)
            new_id = entry.unique_id or new_id
        hass.config_entries.async_update_entry(entry, unique_id=new_id, minor_version=2)
    return True


def _create_engine(hass: HomeAssistant, entry: AlertlineConfigEntry,
                   adapter: type[Provider]) -> Engine:
    """The library's engine for ``entry``: its config, providers (on Home Assistant's shared
    HTTP client), store in the config directory, and the postback URL for push providers."""
    try:
        config = build_config(hass, entry)
    except ConfigError as err:
        raise ConfigEntryError(translation_domain=DOMAIN, translation_key="invalid_config",
                               translation_placeholders={"paths": ", ".join(  # not the reasons
                                   path or "configuration" for path, _ in err.problems)}) from err
    callback_base_url = None
    if pushes_status(adapter):
        callback_base_url = async_callback_base_url(hass, entry.data[CONF_WEBHOOK_ID])
        _update_callback_issue(hass, entry, missing=callback_base_url is None and not
                               entry.data[CONF_PROVIDER_OPTIONS].get("callback_url"))
    return create_engine(config, http=get_async_client(hass), callback_base_url=callback_base_url,
                         secrets=[entry.data[CONF_WEBHOOK_ID]])


async def _async_check_provider(engine: Engine, provider_name: str) -> None:
    """Verify credentials before anything starts (``test-before-setup``); a rejection starts
    Home Assistant's re-authentication flow, which is also the one repair issue the user sees."""
    try:
        await engine.providers[provider_name].check()
    except Exception as err:
        await engine.stop()
        if isinstance(err, AuthError):
            raise ConfigEntryAuthFailed(translation_domain=DOMAIN,
                                        translation_key="auth_failed") from err
        if isinstance(err, ProviderError):
            raise ConfigEntryNotReady(
                translation_domain=DOMAIN, translation_key="provider_unavailable",
                translation_placeholders={"provider": provider_name}) from err
        raise


def _callback_issue_id(entry: AlertlineConfigEntry) -> str:
    return f"callback_url_missing_{entry.entry_id}"


def _update_callback_issue(hass: HomeAssistant, entry: AlertlineConfigEntry, *,
                           missing: bool) -> None:
    """A push provider needs a URL Home Assistant is reachable at, or no status arrives."""
    issue_id = _callback_issue_id(entry)
    if not missing:
        ir.async_delete_issue(hass, DOMAIN, issue_id)
        return
    _LOGGER.warning("%s: Home Assistant has no URL the provider can post call status to",
                    entry.title)
    ir.async_create_issue(hass, DOMAIN, issue_id, is_fixable=False,
                          severity=ir.IssueSeverity.WARNING,
                          translation_key="callback_url_missing",
                          translation_placeholders={"title": entry.title})


@callback
def _on_provider_error(hass: HomeAssistant, entry: AlertlineConfigEntry,
                       error: ProviderError) -> None:
    """The provider rejected the credentials while running: Home Assistant's re-auth flow."""
    if isinstance(error, AuthError):
        _LOGGER.warning("%s rejected the credentials of %s; re-authentication started",
                        error.provider, entry.title)
        entry.async_start_reauth(hass)


def _stopper(runtime: AlertlineData) -> Callable[[Event], Coroutine[Any, Any, None]]:
    """Home Assistant is stopping: finish in-flight work and close the store."""
    async def stop(_event: Event) -> None:
        await _async_stop_runtime(runtime)
    return stop


async def _async_stop_runtime(runtime: AlertlineData) -> None:
    """Stop publishing and counting, then the engine (it closes the providers and the store)."""
    if runtime.stopped:
        return
    runtime.stopped = True
    if runtime.mqtt is not None:
        await runtime.mqtt.async_stop()
    if runtime.pruning is not None:
        runtime.pruning.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runtime.pruning
    await runtime.reports.async_stop()
    await runtime.engine.stop()


async def _async_entry_updated(hass: HomeAssistant, entry: AlertlineConfigEntry) -> None:
    """Options or routes changed: rebuild everything from the entry. A change of the entry's
    data comes from a flow that reloads the entry itself (one reload, not two)."""
    if entry.state is ConfigEntryState.LOADED and \
            reload_key(entry) != entry.runtime_data.built_from:
        hass.config_entries.async_schedule_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: AlertlineConfigEntry) -> bool:
    """Unload entities, the legacy service and the webhook; stop the engine."""
    unloaded = await hass.config_entries.async_unload_platforms(entry, PLATFORMS)
    if not unloaded:
        return False
    runtime = entry.runtime_data
    if runtime.legacy_notify is not None:
        await runtime.legacy_notify.async_unregister_services()
        runtime.legacy_notify.release()
        runtime.legacy_notify = None
    if runtime.postbacks is not None:
        webhook.async_unregister(hass, entry.data[CONF_WEBHOOK_ID])
    await _async_stop_runtime(runtime)
    return True


async def async_remove_entry(hass: HomeAssistant, entry: AlertlineConfigEntry) -> None:
    """The entry is deleted: delete its store and its repair issue too."""
    ir.async_delete_issue(hass, DOMAIN, _callback_issue_id(entry))
    await hass.async_add_executor_job(remove_store, store_path(hass, entry.entry_id))
