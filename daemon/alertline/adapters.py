"""What a host needs to know about the adapter types: their options (for forms and listings)
and a one-off credential check (for a config flow), from each adapter's own description.

The CLI's ``providers`` listing and Home Assistant's config flow both read an adapter's options
here, so neither walks the adapter's voluptuous schema by itself.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import voluptuous as vol

from alertline.model import Channel
from alertline.providers.base import Provider, ProviderContext, ProviderInfo, StatusMode
from alertline.redact import Redactor

__all__ = ["AdapterOption", "adapter_channels", "adapter_options", "check_provider",
           "default_channel", "pushes_status"]


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


def adapter_channels(adapter: type[Provider]) -> list[str]:
    """The channels ``adapter`` can deliver on (``sms`` first)."""
    return sorted(c.value for c in adapter.default_capabilities.channels)


def default_channel(channels: Collection[str]) -> str:
    """The channel used when neither a request nor its route names one: SMS if the provider
    sends SMS, else what it can do (a voice-only provider calls)."""
    return Channel.SMS.value if Channel.SMS.value in channels else sorted(channels)[0]


def pushes_status(adapter: type[Provider]) -> bool:
    """Whether ``adapter`` reports status by push (it then needs a callback URL)."""
    return adapter.default_capabilities.status is not StatusMode.POLL


async def check_provider(adapter: type[Provider], name: str, options: dict[str, Any], *,
                         http: httpx.AsyncClient | None = None,
                         callback_base_url: str | None = None,
                         redactor: Redactor | None = None) -> ProviderInfo:
    """Build a provider from validated ``options`` and run its credential check, once for every
    server the options name (the provider's errors propagate: ``AuthError``, ``TransientError``,
    ...; ``ConfigError`` if the options do not make a provider); each is closed again. The
    ``redactor`` learns the provider's secrets, for the caller's own messages."""
    context = ProviderContext(http=http, redactor=redactor if redactor is not None else Redactor(),
                              callback_base_url=callback_base_url)
    info = None
    for variant in _server_variants(options):
        provider = adapter(name, variant, context)
        try:
            info = await provider.check()
        finally:
            await provider.aclose()
    assert info is not None
    return info


def _server_variants(options: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The options as given and, when the adapter reads from ``status_urls`` but sends to
    another ``base_url``, the options reading from ``base_url`` too: its check asks only the
    status servers, so a wrong send URL would pass (Retarus SMS)."""
    yield options
    base_url, status_urls = options.get("base_url"), options.get("status_urls")
    if base_url and isinstance(status_urls, list) and base_url not in status_urls:
        yield {**options, "status_urls": [base_url]}
