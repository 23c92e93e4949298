"""Which adapter types exist, and how to build a configured provider instance."""

from __future__ import annotations

import importlib
from typing import Any

from .base import Provider, ProviderContext

# adapter type -> module; imported lazily so an unused adapter costs nothing (zeep is heavy)
BUILTIN_ADAPTERS: dict[str, str] = {
    "simulator": "alertline.providers.simulator",
    "retarus_sms": "alertline.providers.retarus_sms",
    "retarus_sms_http": "alertline.providers.retarus_sms_http",
    "retarus_voice": "alertline.providers.retarus_voice",
    "exolve_voice": "alertline.providers.exolve_voice",
    "fortytwo_voice": "alertline.providers.fortytwo_voice",
}


def adapter_types() -> list[str]:
    """Every adapter type name."""
    return sorted(BUILTIN_ADAPTERS)


def adapter_class(adapter_type: str) -> type[Provider]:
    """The class implementing ``adapter_type``; KeyError if there is none."""
    module_name = BUILTIN_ADAPTERS[adapter_type]
    module = importlib.import_module(module_name)
    cls: type[Provider] = module.ADAPTER
    return cls


def create_provider(name: str, adapter_type: str, options: dict[str, Any],
                    context: ProviderContext) -> Provider:
    """A provider instance ``name`` of ``adapter_type``, with already validated ``options``."""
    return adapter_class(adapter_type)(name, options, context)
