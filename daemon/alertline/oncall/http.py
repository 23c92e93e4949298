"""``POST /heartbeat/<NAME>``: a ping over HTTP, for cron jobs (``curl -X POST -H ...``).

The bearer token is the heartbeat's own ``token`` or, without one, ``alertmanager.token``; a
heartbeat with neither cannot be pinged over HTTP (403), so an open port never accepts pings.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any

from aiohttp import web

from alertline.oncall.heartbeats import Heartbeats

_LOGGER = logging.getLogger(__name__)


def _answer(status: int, body: dict[str, Any], **headers: str) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), headers=headers or None,
                        content_type="application/json")


def heartbeat_routes(heartbeats: Heartbeats, default_token: str | None) -> list[web.RouteDef]:
    """The aiohttp route of heartbeat pings."""
    async def ping(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        spec = heartbeats.specs.get(name)
        if spec is None:
            return _answer(404, {"error": "unknown_heartbeat", "field": "name",
                                 "detail": f"unknown heartbeat {name[:64]!r}"})
        token = spec.token or default_token
        if not token:
            return _answer(403, {"error": "disabled", "field": "", "detail":
                                 f"set heartbeats.{name}.token (or alertmanager.token) to accept "
                                 "pings over HTTP"})
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                credentials.strip().encode(), token.encode()):
            _LOGGER.warning("heartbeat %s: HTTP ping without a valid bearer token", name)
            return _answer(401, {"error": "unauthorized", "field": "authorization",
                                 "detail": "expected Authorization: Bearer <token>"},
                           **{"WWW-Authenticate": "Bearer"})
        await heartbeats.ping(name, "http")
        return _answer(200, heartbeats.status(name))

    return [web.post("/heartbeat/{name}", ping)]
