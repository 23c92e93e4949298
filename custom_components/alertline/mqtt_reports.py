"""Delivery reports to MQTT through Home Assistant's MQTT integration, from the store's outbox.

The library's outbox sinks (the daemon's, so topics and payloads are the same: ``<base>/accepted/
<id>`` once, ``<base>/report/<id>`` on every change) are committed in the same transaction as the
state change; this publisher drains the outbox through Home Assistant's MQTT integration after
every report and whenever the broker connection comes back, so reports produced while MQTT is
down are published later, in order, and once: nothing is handed to the MQTT client while it is
disconnected, because paho queues such a message itself and sends it on reconnect besides the
outbox's copy. (Only a connection lost in the middle of a publish can still cause one repeat;
QoS 1 is "at least once".)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from alertline.engine.core import Engine
from alertline.mqtt.outbox import accepted_sink, report_sink
from alertline.mqtt.topics import Topics
from alertline.store.sqlite import Store

from .reports import TaskStarter

_LOGGER = logging.getLogger(__name__)

REPORT_QOS = 1
BATCH = 100


class MqttReportPublisher:
    """Publishes queued outbox messages with QoS 1 and removes them once the broker has them."""

    def __init__(self, hass: HomeAssistant, store: Store, base_topic: str,
                 start_task: TaskStarter) -> None:
        self._hass = hass
        self._start_task = start_task
        self._store = store
        self.base_topic = base_topic
        self._task: asyncio.Task[None] | None = None
        self._again = False
        self._unsubscribe: list[Callable[[], None]] = []
        self._stopped = False
        self.published = 0

    def attach(self, engine: Engine) -> None:
        """Add the daemon's outbox sinks to ``engine`` (before it starts)."""
        topics = Topics(base=self.base_topic)
        engine.add_accepted_sink(accepted_sink(topics))
        engine.add_outbox_sink(report_sink(topics))

    @callback
    def async_start(self) -> None:
        """Drain now, after every report, and whenever the broker connection returns."""
        self._unsubscribe.append(mqtt.async_subscribe_connection_status(
            self._hass, self._connection_changed))
        self.trigger()

    @callback
    def _connection_changed(self, connected: bool) -> None:
        if connected:
            self.trigger()

    @callback
    def trigger(self) -> None:
        """Start draining the outbox (or drain once more when a drain is already running)."""
        if self._stopped:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = self._start_task(self._drain(), "alertline mqtt reports")

    async def _drain(self) -> None:
        while True:
            self._again = False
            if not await self._publish_batch() and not self._again:
                return

    async def _publish_batch(self) -> bool:
        """Publish one batch; True if a full batch went out (there may be more)."""
        if not self._connected():
            return False  # the connection callback drains when the broker is back
        rows = await self._store.outbox(BATCH)
        done: list[int] = []
        try:
            for seq, topic, payload, retain in rows:
                if not self._connected():
                    return False
                await mqtt.async_publish(self._hass, topic, payload, REPORT_QOS, retain)
                done.append(seq)
        except HomeAssistantError as err:
            _LOGGER.debug("MQTT is not available (%s); %d report(s) wait in the outbox", err,
                          len(rows) - len(done))
            self._again = False
            return False
        finally:
            if done:
                await self._store.commit([Store.op_outbox_remove(done)])
                self.published += len(done)
        return len(rows) == BATCH

    def _connected(self) -> bool:
        """Whether Home Assistant's MQTT client is connected to the broker now."""
        try:
            return mqtt.is_connected(self._hass)
        except KeyError:  # the MQTT integration was unloaded
            return False

    async def async_stop(self) -> None:
        """Stop publishing; what is still queued stays in the outbox for the next start."""
        self._stopped = True
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
