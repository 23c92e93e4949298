"""Diagnostics: configuration, provider capabilities, engine metrics and store counts, redacted."""

from __future__ import annotations

from typing import Any

from homeassistant.components.diagnostics import REDACTED, async_redact_data
from homeassistant.core import HomeAssistant

from alertline import SECRET_KEYS

from .const import CONF_ALLOW, CONF_TO, CONF_WEBHOOK_ID
from .runtime import AlertlineConfigEntry

# secret-named keys, the webhook id and personal data (numbers, the allowlist of numbers and
# prefixes); plus the provider's own secret options
TO_REDACT = frozenset({*SECRET_KEYS, CONF_WEBHOOK_ID, CONF_TO, CONF_ALLOW, "username", "phone",
                       "unique_id"})


async def async_get_config_entry_diagnostics(hass: HomeAssistant,
                                             entry: AlertlineConfigEntry) -> dict[str, Any]:
    """What support needs, without a secret or a phone number."""
    runtime = entry.runtime_data
    engine = runtime.engine
    provider = engine.providers[runtime.provider_name]
    to_redact = TO_REDACT | provider.secret_options
    data = {
        "entry": {
            "title": REDACTED,  # the default title names the account's user
            "data": async_redact_data(dict(entry.data), to_redact),
            "options": async_redact_data(dict(entry.options), to_redact),
            "routes": [async_redact_data({"title": s.title, **s.data}, to_redact)
                       for s in entry.subentries.values()],
        },
        "provider": {"name": provider.name, "type": provider.type,
                     "capabilities": provider.capabilities.to_json()},
        "engine": {"metrics": dict(engine.metrics), "open_alerts": engine.open_alerts,
                   "queue_depth": engine.queue_depth()},
        "store": await engine.store.stats(),
        "mqtt": {"base_topic": runtime.mqtt.base_topic, "published": runtime.mqtt.published}
        if runtime.mqtt else None,
        "postbacks": {"duplicates": runtime.postbacks.duplicates} if runtime.postbacks else None,
    }
    # a second pass scrubs secret values wherever they appear (e.g. inside a URL)
    redacted: dict[str, Any] = engine.redactor.data(data)
    return redacted
