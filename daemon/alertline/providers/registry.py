"""Which adapter types exist, and how to build a configured provider instance."""

from __future__ import annotations

from typing import Any

from alertline.providers.base import Provider, ProviderContext
from alertline.providers.exolve.voice import ADAPTER as EXOLVE_VOICE
from alertline.providers.fortytwo.voice import ADAPTER as FORTYTWO_VOICE
from alertline.providers.retarus.sms import ADAPTER as RETARUS_SMS
from alertline.providers.retarus.sms_http import ADAPTER as RETARUS_SMS_HTTP
from alertline.providers.retarus.voice import ADAPTER as RETARUS_VOICE
from alertline.providers.simulator import ADAPTER as SIMULATOR

# Imported eagerly: a lazy ``import_module`` runs wherever the first lookup happens, and inside
# Home Assistant that is the event loop (a blocking import it reports). Importing ``alertline``
# once, off the loop, brings every adapter along.
BUILTIN_ADAPTERS: dict[str, type[Provider]] = {
    adapter.type: adapter
    for adapter in (SIMULATOR, RETARUS_SMS, RETARUS_SMS_HTTP, RETARUS_VOICE, EXOLVE_VOICE,
                    FORTYTWO_VOICE)
}


def adapter_types() -> list[str]:
    """Every adapter type name."""
    return sorted(BUILTIN_ADAPTERS)


def adapter_class(adapter_type: str) -> type[Provider]:
    """The class implementing ``adapter_type``; KeyError if there is none."""
    return BUILTIN_ADAPTERS[adapter_type]


def create_provider(name: str, adapter_type: str, options: dict[str, Any],
                    context: ProviderContext) -> Provider:
    """A provider instance ``name`` of ``adapter_type``, with already validated ``options``."""
    return adapter_class(adapter_type)(name, options, context)
