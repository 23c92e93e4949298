"""Home Assistant MQTT discovery: a notify entity per route, sensors (last alert, statistics, who
is on call per schedule, each heartbeat's state), one device, availability.

Config messages are retained under ``<prefix>/<component>/<node>/<object>/config``. The topics
published last time are remembered in the store, so a route removed from the configuration gets
an empty retained config (Home Assistant then deletes its entities). The sensors read retained
state topics that :class:`StatePublisher` keeps current, coalesced to at most one update per
topic per interval: a sensor needs the latest state, not every step of every alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from alertline import __version__
from alertline.config.sections import Config
from alertline.model import Report
from alertline.mqtt.bridge import MqttBridge
from alertline.mqtt.inbound import encode
from alertline.mqtt.topics import Topics
from alertline.store import intents
from alertline.store.protocol import Store

_LOGGER = logging.getLogger(__name__)

PUBLISHED_KEY = "mqtt.discovery_topics"

# (key in the stats payload, name, state class, icon)
STAT_SENSORS: tuple[tuple[str, str, str, str], ...] = (
    ("alerts_received", "Alerts received", "total_increasing", "mdi:bell-plus"),
    ("alerts_rejected", "Alerts rejected", "total_increasing", "mdi:bell-cancel"),
    ("open_alerts", "Open alerts", "measurement", "mdi:bell-ring"),
    ("deliveries_succeeded", "Deliveries succeeded", "total_increasing", "mdi:phone-check"),
    ("deliveries_failed", "Deliveries failed", "total_increasing", "mdi:phone-remove"),
    ("queue_depth", "Queue depth", "measurement", "mdi:tray-full"),
)


def node_id(client_id: str) -> str:
    """The discovery node id: the MQTT client id with only letters, digits, _ and -."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", client_id)


def discovery_messages(config: Config, topics: Topics, *, node: str) -> dict[str, bytes]:
    """Every discovery config message, by topic."""
    device = {"identifiers": [f"alertline_{node}"],
              "name": "alertline" if node == "alertline" else f"alertline {node}",
              "manufacturer": "alertline", "model": "MQTT daemon", "sw_version": __version__}
    common: dict[str, Any] = {"availability_topic": topics.status, "device": device,
                              "origin": {"name": "alertline", "sw_version": __version__}}
    configs: dict[str, dict[str, Any]] = {}
    for route in sorted(config.routes):
        configs[topics.discovery_config("notify", node, route)] = {
            **common, "name": route, "unique_id": f"{node}_notify_{route}",
            "default_entity_id": f"notify.{node}_{route}",
            "command_topic": topics.send_route(route), "qos": 1, "retain": False,
            "icon": "mdi:phone-alert"}
        configs[topics.discovery_config("sensor", node, f"{route}_last_alert")] = _state_sensor(
            common, f"{route} last alert", f"{node}_{route}_last_alert",
            topics.route_last_report(route))
    for name in sorted(config.schedules.by_name):
        configs[topics.discovery_config("sensor", node, f"oncall_{name}")] = {
            **common, "name": f"On call {name}", "unique_id": f"{node}_oncall_{name}",
            "state_topic": topics.oncall(name), "json_attributes_topic": topics.oncall(name),
            "value_template": "{{ value_json.on_call | join(', ') }}",
            "icon": "mdi:account-clock"}
    for name in sorted(config.raw.get("heartbeats") or {}):
        configs[topics.discovery_config("sensor", node, f"heartbeat_{name}")] = {
            **common, "name": f"Heartbeat {name}", "unique_id": f"{node}_heartbeat_{name}",
            "state_topic": topics.heartbeat_state(name),
            "json_attributes_topic": topics.heartbeat_state(name),
            "value_template": "{{ value_json.state }}", "icon": "mdi:heart-pulse"}
    configs[topics.discovery_config("sensor", node, "last_alert")] = _state_sensor(
        common, "Last alert", f"{node}_last_alert", topics.last_report)
    for key, name, state_class, icon in STAT_SENSORS:
        configs[topics.discovery_config("sensor", node, key)] = {
            **common, "name": name, "unique_id": f"{node}_{key}", "state_topic": topics.stats,
            "value_template": f"{{{{ value_json.{key} }}}}", "state_class": state_class,
            "entity_category": "diagnostic", "icon": icon}
    return {topic: encode(payload) for topic, payload in configs.items()}


def _state_sensor(common: dict[str, Any], name: str, unique_id: str,
                  topic: str) -> dict[str, Any]:
    return {**common, "name": name, "unique_id": unique_id, "state_topic": topic,
            "value_template": "{{ value_json.state }}", "json_attributes_topic": topic,
            "icon": "mdi:bell-ring-outline"}


def report_summary(report: Report) -> dict[str, Any]:
    """What the last-alert sensors show: state, and the rest as attributes."""
    return {"id": report.alert.id, "state": report.state.value, "final": report.final,
            "route": report.alert.route, "title": report.alert.title,
            "message": report.alert.message[:255], "counts": report.counts(),
            "updated_at": report.updated_at.isoformat()}


class Discovery:
    """Publishes the discovery configs and removes those of routes that are gone."""

    def __init__(self, bridge: MqttBridge, store: Store, config: Config, topics: Topics, *,
                 node: str, enabled: bool = True) -> None:
        self._bridge = bridge
        self._store = store
        self._config = config
        self._topics = topics
        self.node = node
        self.enabled = enabled

    async def publish(self) -> None:
        """Publish (or, when disabled, remove) every config; remember what was published."""
        messages = discovery_messages(self._config, self._topics, node=self.node) \
            if self.enabled else {}
        stored = await self._store.meta_get(PUBLISHED_KEY)
        previous = set(json.loads(stored)) if stored else set()
        removed = sorted(previous - set(messages))
        futures = [self._bridge.publish(topic, b"", retain=True) for topic in removed]
        futures += [self._bridge.publish(topic, payload, retain=True)
                    for topic, payload in messages.items()]
        await asyncio.gather(*futures)
        await self._store.commit([intents.meta_set(PUBLISHED_KEY, json.dumps(sorted(messages)))])
        if removed:
            _LOGGER.info("removed %d discovery config(s) of routes that are gone", len(removed))
        _LOGGER.debug("published %d discovery config(s)", len(messages))


class StatePublisher:
    """Keeps the retained state topics current: last report (overall and per route), stats."""

    def __init__(self, bridge: MqttBridge, topics: Topics,
                 stats: Callable[[], Awaitable[dict[str, Any]]], *, interval: float = 1.0,
                 stats_interval: float = 30.0) -> None:
        self._bridge = bridge
        self._topics = topics
        self._stats = stats
        self.interval = interval
        self.stats_interval = stats_interval
        self._latest: dict[str, Report] = {}
        self._dirty: set[str] = set()
        self._changed = asyncio.Event()

    def on_report(self, report: Report) -> None:
        """Remember ``report`` as the latest (an engine report listener; encoded when sent)."""
        self._latest[self._topics.last_report] = report
        self._dirty.add(self._topics.last_report)
        if report.alert.route:
            topic = self._topics.route_last_report(report.alert.route)
            self._latest[topic] = report
            self._dirty.add(topic)
        self._changed.set()

    async def republish(self, _session_present: bool = False) -> None:
        """Publish every known state now (after a connect or Home Assistant's birth)."""
        self._dirty.update(self._latest)
        await self._publish_stats()
        self._changed.set()

    async def run(self) -> None:
        """Publish changes at most once per interval and the stats periodically (cancel to stop)."""
        loop = asyncio.get_running_loop()
        next_stats = loop.time() + self.stats_interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, next_stats - loop.time()))
            if loop.time() >= next_stats:
                next_stats = loop.time() + self.stats_interval
                await self._publish_stats()
            if self._changed.is_set() and self._bridge.connected:
                self._changed.clear()
                dirty, self._dirty = self._dirty, set()
                for topic in sorted(dirty):
                    payload = encode(report_summary(self._latest[topic]))
                    self._bridge.publish(topic, payload, retain=True,
                                         qos=0).add_done_callback(_ignore)
                await asyncio.sleep(self.interval)  # rate limit: coalesce the next changes
            elif self._changed.is_set():
                await self._bridge.wait_connected()

    async def _publish_stats(self) -> None:
        if not self._bridge.connected:
            return
        try:
            stats = await self._stats()
        except Exception as err:
            _LOGGER.warning("collecting stats failed: %s", err)
            return
        self._bridge.publish(self._topics.stats, encode(stats), retain=True,
                             qos=0).add_done_callback(_ignore)


def _ignore(future: asyncio.Future[None]) -> None:
    """State topics are refreshed often: a lost update is replaced by the next one."""
    if not future.cancelled():
        future.exception()
