"""The daemon's on-call side: schedules published at each handoff, calendars refreshed,
heartbeats pinged over MQTT, and the providers watched."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import httpx

from alertline.errors import ValidationError
from alertline.http.metrics import Family
from alertline.intake.alertmanager import apply_notification, parse_notification
from alertline.mqtt.bridge import InboundMessage, Outgoing
from alertline.mqtt.topics import InboundKind, Topics
from alertline.oncall.heartbeats import Heartbeats
from alertline.oncall.schema import calendar_layers
from alertline.oncall.watch import ProviderWatch

if TYPE_CHECKING:
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)
REPUBLISH_AT_LEAST_EVERY = timedelta(hours=1)

Publish = Callable[[str, bytes], None]


class OnCallService:
    """Schedules, calendars and heartbeats of a running daemon, on the engine's scheduler."""

    def __init__(self, engine: Engine, topics: Topics, publish: Publish | None = None,
                 http: httpx.AsyncClient | None = None) -> None:
        self.engine = engine
        self.topics = topics
        self.publish = publish
        self.http = http
        self.schedules = engine.config.schedules
        self.calendars = calendar_layers(self.schedules)
        self.heartbeats = Heartbeats.from_config(engine, publish=publish, base_topic=topics.base)
        self.watch = ProviderWatch.from_config(engine)

    @property
    def subscriptions(self) -> list[str]:
        """The topic filter of heartbeat pings (none without heartbeats)."""
        return [self.topics.heartbeat("+")] if self.heartbeats.specs else []

    async def start(self) -> None:
        """Read calendars, publish every schedule, load and check every heartbeat."""
        for layer in self.calendars:
            await self._refresh(layer.schedule)
        for name in self.schedules.by_name:
            self.publish_schedule(name)
        await self.heartbeats.start()
        if self.watch is not None:
            self.watch.start()

    async def _refresh(self, schedule: str) -> None:
        """Read the calendars of ``schedule`` again, republish it, and come back later."""
        layers = [layer for layer in self.calendars if layer.schedule == schedule]
        every = min(layer.refresh for layer in layers)
        self.engine.scheduler.call_at(
            f"oncall-calendar:{schedule}", self.engine.clock.now() + timedelta(seconds=every),
            lambda: self._refresh(schedule))
        for layer in layers:
            await layer.refresh_once(self.http, self.engine.clock.now())
        self.publish_schedule(schedule)

    def publish_schedule(self, name: str) -> None:
        """Publish who is on call in ``name`` (retained), and again at its next handoff."""
        now = self.engine.clock.now()
        view = self.schedules.get(name).view(now)
        if self.publish is not None:
            self.publish(self.topics.oncall(name), json.dumps(view.to_json()).encode())
        again = min(view.until or now + REPUBLISH_AT_LEAST_EVERY, now + REPUBLISH_AT_LEAST_EVERY)

        async def republish() -> None:
            self.publish_schedule(name)

        self.engine.scheduler.call_at(f"oncall:{name}", again, republish)

    def republish(self) -> None:
        """Publish every schedule and heartbeat state again (after a reconnect)."""
        for name in self.schedules.by_name:
            self.publish_schedule(name)
        self.heartbeats.republish()

    async def handle(self, message: InboundMessage) -> Sequence[Outgoing] | None:
        """A heartbeat ping (None: not a message of ours)."""
        name = self.topics.heartbeat_name(message.topic)
        if name is None:
            return await self._watchdog(message)
        if name not in self.heartbeats.specs:
            _LOGGER.warning("a ping for the unknown heartbeat %r", name[:64])
            return [Outgoing(self.topics.error, json.dumps({
                "error": "unknown_heartbeat", "field": "topic",
                "detail": f"unknown heartbeat {name[:64]!r}"}).encode())]
        await self.heartbeats.ping(name, "mqtt")
        return []

    async def _watchdog(self, message: InboundMessage) -> Sequence[Outgoing] | None:
        """An Alertmanager notification on ``<base>/alertmanager/<heartbeat>``: a ping."""
        parsed = self.topics.parse(message.topic)
        name = parsed.argument if parsed and parsed.kind is InboundKind.ALERTMANAGER else None
        if name is None or name not in self.heartbeats.specs or \
                name in self.engine.config.routes:
            return None
        try:
            notification = parse_notification(message.payload, route=name,
                                               max_bytes=len(message.payload) + 1)
        except ValidationError as err:
            return [Outgoing(self.topics.error, json.dumps({
                "error": err.code, "field": err.field, "detail": str(err)}).encode())]
        await apply_notification(self.engine, notification, source="mqtt",
                                 heartbeats=self.heartbeats)
        return []

    async def overview(self) -> dict[str, Any]:
        """Who is on call, heartbeats and provider health, for the web dashboard."""
        now = self.engine.clock.now()
        providers = self.watch.to_json() if self.watch is not None else {}
        return {
            "oncall": [{"schedule": name, **self.schedules.get(name).view(now).to_json()}
                       for name in self.schedules.by_name],
            "heartbeats": [{"name": name, "ok": status["state"] == "up",
                            "last": status["last_ping"]}
                           for name, status in ((n, self.heartbeats.status(n))
                                                for n in self.heartbeats.specs)],
            "providers": [{"name": name, "up": providers[name]["up"] if name in providers
                           else None} for name in sorted(self.engine.providers)],
        }

    def families(self) -> list[Family]:
        """Metrics of the heartbeats and the provider watch."""
        families = self.heartbeats.families() if self.heartbeats.specs else []
        return families + (self.watch.families() if self.watch is not None else [])
