"""Provider postbacks (Fortytwo call status) through Home Assistant's webhook component.

The webhook id is the secret of the callback URL; the provider's name travels in the query
string (``?provider=<name>``). The library's :class:`PostbackReceiver` checks, parses and
de-duplicates every postback and applies it to the engine.
"""

from __future__ import annotations

import logging

from aiohttp import web
from homeassistant.components import webhook
from homeassistant.const import CONTENT_TYPE_JSON
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.network import NoURLAvailableError, get_url

from alertline import (
    PROVIDER_PLACEHOLDER,
    Engine,
    PostbackReceiver,
    StatusMode,
    read_limited,
)

from .const import DOMAIN

_LOGGER = logging.getLogger(__name__)


def wants_postbacks(engine: Engine) -> bool:
    """Whether any provider of the engine reports status by push."""
    return any(p.capabilities.status is not StatusMode.POLL for p in engine.providers.values())


@callback
def async_callback_base_url(hass: HomeAssistant, webhook_id: str) -> str | None:
    """The provider callback URL with a ``{provider}`` placeholder, on the external or internal
    URL configured in Home Assistant; None without one. A detected local address is not used:
    Home Assistant may not listen there (``server_host``), and the provider's posts would be
    lost."""
    if not (hass.config.external_url or hass.config.internal_url):
        return None
    try:
        base = get_url(hass, allow_cloud=False, allow_ip=True, prefer_external=True)
    except NoURLAvailableError:
        return None
    return f"{base}{webhook.async_generate_path(webhook_id)}?provider={PROVIDER_PLACEHOLDER}"


@callback
def async_register_postbacks(hass: HomeAssistant, name: str, webhook_id: str,
                             engine: Engine) -> PostbackReceiver:
    """Register the webhook that hands postbacks to the library's receiver."""
    receiver = PostbackReceiver(webhook_id, engine, engine.providers.get,
                                redactor=engine.redactor)

    async def handle(hass: HomeAssistant, webhook_id: str, request: web.Request) -> web.Response:
        body = await read_limited(request, receiver.max_body)
        result = await receiver.handle(request.query.get("provider", ""), webhook_id, body,
                                       request.headers.get("Content-Type", CONTENT_TYPE_JSON))
        return web.Response(status=result.status, text=result.text,
                            content_type=result.content_type)

    webhook.async_register(hass, DOMAIN, name, webhook_id, handle,
                           allowed_methods=["POST"], local_only=False)
    return receiver
