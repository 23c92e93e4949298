"""Delivery reports to MQTT through Home Assistant's MQTT integration: the daemon's outbox sinks
and drainer (the same topics and payloads), publishing one message at a time and only while Home
Assistant's client is connected, so reports made while MQTT is down go out later, in order, once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback

from alertline import Engine, OutboxPublisher, Topics, add_report_sinks

from .reports import TaskStarter

REPORT_QOS = 1


class MqttReportPublisher:
    """The engine's reports queued in its outbox, and the library's drainer publishing them
    through Home Assistant's MQTT client (this is its ``OutboxBroker``)."""

    def __init__(self, hass: HomeAssistant, engine: Engine, base_topic: str) -> None:
        """Queue the daemon's report messages under ``base_topic`` (before the engine starts)."""
        self._hass = hass
        self.base_topic = base_topic
        add_report_sinks(engine, Topics(base=base_topic))
        self.outbox = OutboxPublisher(
            engine.store, self, batch_size=100, window=1, refused=(),
            spawn=lambda job: hass.async_create_task(job, "alertline outbox", eager_start=False))
        engine.subscribe(self.outbox.notify)
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    @property
    def published(self) -> int:
        """Messages the broker has acknowledged since the entry was set up."""
        return self.outbox.published

    @property
    def connected(self) -> bool:
        """Whether Home Assistant's MQTT client is connected to the broker now."""
        try:
            return mqtt.is_connected(self._hass)
        except KeyError:  # the MQTT integration was unloaded
            return False

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> asyncio.Task[None]:
        """Publish at QoS 1, as a task Home Assistant waits for (``async_block_till_done``)."""
        return self._hass.async_create_task(
            mqtt.async_publish(self._hass, topic, payload, REPORT_QOS, retain),
            "alertline mqtt report", eager_start=False)

    @callback
    def async_start(self, start_background: TaskStarter) -> None:
        """Drain now, after every report, and whenever the broker connection returns."""
        self._unsubscribe = mqtt.async_subscribe_connection_status(
            self._hass, self._connection_changed)
        self._task = start_background(self.outbox.run(), "alertline mqtt reports")

    @callback
    def _connection_changed(self, connected: bool) -> None:
        if connected:
            self.outbox.notify()

    async def async_stop(self) -> None:
        """Stop publishing; what is still queued stays in the outbox for the next start."""
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.outbox.close()
