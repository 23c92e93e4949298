"""Provider postbacks (pushed delivery status), independent of any web server.

URL convention. Providers that push status (Fortytwo) are given a callback URL of the form::

    <public root>/postbacks/<provider name>/<token>

built by :func:`callback_url`. ``<public root>`` is how the provider reaches the daemon's HTTP
server (``http(s)://host:port``, or a reverse proxy's URL) and ``<token>`` is a secret that makes
the URL unguessable (providers such as Fortytwo do not sign their callbacks). The host puts
``callback_base_url(root, token)`` — the same URL with a literal ``{provider}`` placeholder — into
``ProviderContext.callback_base_url``; an adapter turns it into its own URL with
:func:`provider_callback_url`, which fills in ``{provider}`` (or, for a base without the
placeholder, appends ``/<provider>``). A ``callback_url`` option of the adapter wins over both.

The daemon mounts :func:`aiohttp_routes`; Home Assistant calls :meth:`PostbackReceiver.handle`
from its own webhook view (its base can carry ``{provider}`` in a query string).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from aiohttp import web

from alertline.errors import ValidationError
from alertline.intake.json_text import load_json
from alertline.providers.base import Provider, StatusMode, StatusUpdate
from alertline.redact import Redactor

_LOGGER = logging.getLogger(__name__)

PROVIDER_PLACEHOLDER = "{provider}"
ROUTE = "/postbacks/{provider}/{token}"
DEFAULT_MAX_BODY = 64 * 1024


def callback_url(base_url: str, provider: str, token: str) -> str:
    """The URL a provider posts to: ``<base_url>/postbacks/<provider>/<token>``."""
    return (f"{base_url.rstrip('/')}/postbacks/{quote(provider, safe='')}/"
            f"{quote(token, safe='')}")


def callback_base_url(base_url: str, token: str) -> str:
    """A host's ``ProviderContext.callback_base_url``: the URL with a ``{provider}`` placeholder."""
    return callback_url(base_url, "PROVIDER", token).replace(
        "/postbacks/PROVIDER/", f"/postbacks/{PROVIDER_PLACEHOLDER}/", 1)


def provider_callback_url(base: str, provider: str) -> str:
    """One provider's callback URL from a host's ``callback_base_url``."""
    name = quote(provider, safe="")
    if PROVIDER_PLACEHOLDER in base:
        return base.replace(PROVIDER_PLACEHOLDER, name)
    return f"{base.rstrip('/')}/{name}"


class PushTarget(Protocol):
    """Whoever applies pushed status updates to deliveries (the engine)."""

    async def apply_push(self, provider: str, updates: list[StatusUpdate]) -> int:
        """Apply ``updates`` from ``provider``; returns how many deliveries they matched."""


ProviderLookup = Callable[[str], Provider | None]


@dataclass(frozen=True, slots=True)
class PostbackResult:
    """What to answer the provider: an HTTP status and a short JSON body."""

    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The body as JSON text."""
        return json.dumps(self.body, separators=(",", ":"))

    content_type = "application/json"


def _not_found() -> PostbackResult:
    return PostbackResult(404, {"error": "not_found"})


class PostbackReceiver:
    """Checks, parses and de-duplicates provider postbacks, then hands them to a ``PushTarget``."""

    def __init__(self, token: str, target: PushTarget, providers: ProviderLookup, *,
                 max_body: int = DEFAULT_MAX_BODY, dedupe_size: int = 4096,
                 redactor: Redactor | None = None) -> None:
        if not token or len(token) < 16:
            raise ValueError("the postback token must have at least 16 characters")
        self._token = token.encode()
        self._target = target
        self._providers = providers
        self.max_body = max_body
        self._dedupe_size = dedupe_size
        self._seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()
        self.redactor = redactor or Redactor()
        self.redactor.add(token)
        self.duplicates = 0

    async def handle(self, provider: str, token: str, body: bytes,
                     content_type: str | None) -> PostbackResult:
        """Answer one postback; a wrong token or unknown provider is a 404 that changes nothing."""
        if not hmac.compare_digest(token.encode(), self._token):
            _LOGGER.warning("postback for %r with a wrong token ignored", provider[:64])
            return _not_found()
        adapter = self._providers(provider)
        if adapter is None or adapter.capabilities.status is StatusMode.POLL:
            _LOGGER.warning("postback for unknown or non-push provider %r ignored", provider[:64])
            return _not_found()
        if len(body) > self.max_body:
            return PostbackResult(413, {"error": "too_large", "limit": self.max_body})
        try:
            payload = load_json(body)
        except ValidationError as err:
            _LOGGER.warning("%s: postback is not JSON (content type %s): %s", provider,
                            content_type, err)
            return PostbackResult(400, {"error": "malformed", "field": "body",
                                        "detail": "body is not valid JSON"})
        try:
            updates = adapter.parse_push(payload)
        except ValidationError as err:
            _LOGGER.warning("%s: postback rejected: %s", provider, self.redactor.text(str(err)))
            return PostbackResult(400, {"error": "invalid", "field": err.field,
                                        "detail": self.redactor.text(err.reason)})
        fresh = [update for update in updates if self._key(provider, update) not in self._seen]
        duplicates = len(updates) - len(fresh)
        self.duplicates += duplicates
        matched = 0
        if fresh:
            try:
                matched = await self._target.apply_push(provider, fresh)
            except Exception as err:
                _LOGGER.error("%s: applying %d pushed update(s) failed: %s", provider,
                              len(fresh), self.redactor.text(f"{type(err).__name__}: {err}"))
                return PostbackResult(500, {"error": "internal"})
            for update in fresh:
                self._remember(self._key(provider, update))
        _LOGGER.debug("%s: postback with %d update(s), %d duplicate(s), %d matched", provider,
                      len(updates), duplicates, matched)
        return PostbackResult(200, {"ok": True, "updates": len(fresh),
                                    "duplicates": duplicates, "matched": matched})

    @staticmethod
    def _key(provider: str, update: StatusUpdate) -> tuple[Any, ...]:
        return (provider, update.provider_ref, update.provider_message_id, update.delivery_id,
                update.provider_status, update.state, update.at)

    def _remember(self, key: tuple[Any, ...]) -> None:
        self._seen[key] = None
        self._seen.move_to_end(key)
        while len(self._seen) > self._dedupe_size:
            self._seen.popitem(last=False)


def aiohttp_routes(receiver: PostbackReceiver) -> list[web.RouteDef]:
    """``POST /postbacks/{provider}/{token}`` for an aiohttp application."""

    async def postback(request: web.Request) -> web.Response:
        body = await read_limited(request, receiver.max_body)
        result = await receiver.handle(request.match_info["provider"],
                                       request.match_info["token"], body,
                                       request.headers.get("Content-Type"))
        return web.Response(status=result.status, text=result.text,
                            content_type=result.content_type)

    return [web.post(ROUTE, postback)]


async def read_limited(request: web.Request, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the body: enough to tell that it is too large."""
    if request.content_length is not None and request.content_length > limit:
        return b"\0" * (limit + 1)  # declared too large: not worth reading; handle() says 413
    chunks: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = await request.content.read(limit + 1 - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)
