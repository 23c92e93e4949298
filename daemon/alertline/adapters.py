"""What a host needs to know about the adapter types: their options (for forms and listings)
and a one-off credential check (for a config flow), from each adapter's own description.

The CLI's ``providers`` listing and Home Assistant's config flow both read an adapter's options
here, so neither walks the adapter's voluptuous schema by itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import voluptuous as vol

from alertline.providers.base import Provider, ProviderContext, ProviderInfo
from alertline.redact import Redactor

__all__ = ["AdapterOption", "adapter_options", "check_provider"]


@dataclass(frozen=True, slots=True)
class AdapterOption:
    """One option of an adapter type, as its schema declares it."""

    name: str
    required: bool
    default: Any  # None when the option has no default
    secret: bool
    description: str


def adapter_options(adapter: type[Provider]) -> list[AdapterOption]:
    """Every option of ``adapter``, in schema order."""
    options = []
    for marker in adapter.options_schema:
        name = str(marker.schema) if isinstance(marker, vol.Marker) else str(marker)
        factory = marker.default if isinstance(marker, vol.Optional) else vol.UNDEFINED
        options.append(AdapterOption(
            name=name, required=isinstance(marker, vol.Required),
            default=factory() if callable(factory) else None,
            secret=name in adapter.secret_options,
            description=getattr(marker, "description", None) or ""))
    return options


async def check_provider(adapter: type[Provider], name: str, options: dict[str, Any], *,
                         http: httpx.AsyncClient | None = None,
                         callback_base_url: str | None = None,
                         redactor: Redactor | None = None) -> ProviderInfo:
    """Build a provider from validated ``options`` and run its credential check once (the
    provider's errors propagate: ``AuthError``, ``TransientError``, ...; ``ConfigError`` if the
    options do not make a provider); it is closed again either way. ``redactor`` learns the
    provider's secrets, for the caller's own messages."""
    context = ProviderContext(http=http, redactor=redactor if redactor is not None else Redactor(),
                              callback_base_url=callback_base_url)
    provider = adapter(name, options, context)
    try:
        return await provider.check()
    finally:
        await provider.aclose()
