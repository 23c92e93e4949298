"""The daemon's HTTP server (aiohttp): health, Prometheus metrics, Alertmanager, provider postbacks.

``POST /alertmanager/<route>`` takes Alertmanager's webhook exactly like the MQTT topic
``<base>/alertmanager/<route>``, authenticated with the bearer token of ``alertmanager.token``
(Alertmanager's ``http_config.authorization``). Every body is read up to a size limit. There is no
access log: provider postback URLs carry a secret token. Connections are capped and must deliver
their request in time (:mod:`.http_guard`), so a slow or hostile client cannot take the server
(and ``/healthz``) down.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiohttp import web

from alertline.errors import ValidationError
from alertline.http.guard import (
    ConnectionGuard,
    ConnectionLimits,
    LogThrottle,
    body_deadline,
    throttle_noisy_loggers,
)
from alertline.http.postbacks import PostbackReceiver, aiohttp_routes, read_limited
from alertline.intake.alertmanager import HeartbeatPinger, apply_notification, parse_notification
from alertline.mqtt.inbound import encode
from alertline.store.health import StoreUnavailableError

if TYPE_CHECKING:
    from alertline.engine.core import Engine
    from alertline.http.metrics import DaemonMetrics

_LOGGER = logging.getLogger(__name__)

BACKLOG = 1024  # pending connections the kernel may queue (it caps this at somaxconn)
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STORE_RETRY_AFTER = "30"  # seconds; Alertmanager retries by itself anyway
HealthSource = Callable[[], dict[str, Any]]


class HttpServer:
    """One aiohttp site serving the daemon's HTTP endpoints."""

    def __init__(self, engine: Engine, metrics: DaemonMetrics, *, host: str = "127.0.0.1",
                 port: int = 8787, max_body_bytes: int = 256 * 1024,
                 alertmanager_token: str | None = None,
                 health: HealthSource | None = None,
                 postbacks: PostbackReceiver | None = None,
                 limits: ConnectionLimits | None = None,
                 heartbeats: HeartbeatPinger | None = None,
                 routes: Sequence[web.AbstractRouteDef] = ()) -> None:
        self.engine = engine
        self.metrics = metrics
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self._token = alertmanager_token.encode() if alertmanager_token else None
        self._health = health or (lambda: {"status": "ok"})
        self._postbacks = postbacks
        self.limits = limits or ConnectionLimits()
        self._client_errors = LogThrottle(_LOGGER)
        self._heartbeats = heartbeats
        self._routes = routes
        self._runner: web.AppRunner | None = None
        self._listener: asyncio.Server | None = None
        self.guard: ConnectionGuard | None = None
        self.stopping = False

    def application(self) -> web.Application:
        """The aiohttp application with every route."""
        app = web.Application(client_max_size=self.max_body_bytes + 1, middlewares=[
            body_deadline(self.limits.body_timeout, self._client_errors)])
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/alertmanager/{route}", self._alertmanager)
        if self._postbacks is not None:
            app.add_routes(aiohttp_routes(self._postbacks))
        app.add_routes(self._routes)
        return app

    async def start(self) -> None:
        """Listen; raises OSError when the address is taken."""
        throttle_noisy_loggers()
        runner = web.AppRunner(self.application(), access_log=None, shutdown_timeout=5.0,
                               **self.limits.handler_args())
        await runner.setup()
        assert runner.server is not None
        self.guard = ConnectionGuard(runner.server, self.limits, self._client_errors)
        try:
            self._listener = await asyncio.get_running_loop().create_server(
                self.guard, self.host, self.port, reuse_address=True, backlog=BACKLOG)
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(self._listener.sockets[0].getsockname()[1])
        _LOGGER.info("HTTP server on http://%s:%d (/healthz, /metrics, /alertmanager/<route>%s)",
                     self.host, self.port, ", /postbacks" if self._postbacks else "")

    async def stop(self) -> None:
        """Stop listening; requests under way are finished first."""
        self.stopping = True
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _healthz(self, _request: web.Request) -> web.Response:
        body = {"status": "stopping"} if self.stopping else self._health()
        failing = self.stopping or body.get("status") == "failing"
        return web.json_response(body, status=503 if failing else 200)

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=(await self.metrics.text()).encode(),
                            headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _alertmanager(self, request: web.Request) -> web.Response:
        route = request.match_info["route"]
        if self._token is None:
            return _error(403, "disabled", "", "set alertmanager.token in the configuration to "
                          "accept Alertmanager webhooks")
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credentials.strip().encode(),
                                                                 self._token):
            self._client_errors.warning("unauthorized", "Alertmanager webhook for %r without a "
                                        "valid bearer token", route[:64])
            return _error(401, "unauthorized", "authorization",
                          "expected Authorization: Bearer <alertmanager.token>",
                          headers={"WWW-Authenticate": "Bearer"})
        body = await read_limited(request, self.max_body_bytes)
        store = self.engine.store.health
        try:
            if not store.available:
                raise StoreUnavailableError(f"the store cannot be written ({store.error})")
            notification = parse_notification(body, route=route, max_bytes=self.max_body_bytes)
            # answered 503 as soon as the store fails: what is under way is kept later (and a
            # retry is recognised by its idempotency keys), but was not kept yet
            result = await store.unless_failing(apply_notification(
                self.engine, notification, source=f"http:/alertmanager/{route}",
                heartbeats=self._heartbeats))
        except StoreUnavailableError as err:
            return _error(503, "store_unavailable", "", f"{err}; Alertmanager will retry",
                          headers={"Retry-After": STORE_RETRY_AFTER})
        except ValidationError as err:
            detail = self.engine.redactor.text(str(err))
            self._client_errors.warning("rejected", "rejected an Alertmanager webhook for %r: %s",
                                        route[:64], detail)
            return _error(413 if err.code == "too_large" else 400, err.code, err.field, detail)
        except Exception as err:
            _LOGGER.exception("handling an Alertmanager webhook for %r failed", route[:64])
            return _error(500, "internal", "", f"internal error ({type(err).__name__}); "
                          "Alertmanager will retry")
        refused = result.errors and not (result.accepted or result.duplicates or result.resolved)
        return web.Response(status=400 if refused else 200, body=encode(result.to_json()),
                            content_type="application/json")


def _error(status: int, code: str, field: str, detail: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers, content_type="application/json",
                        body=encode({"error": code, "field": field, "detail": detail}))
