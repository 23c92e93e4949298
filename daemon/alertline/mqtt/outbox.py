"""Reports to MQTT through the store's outbox: written with each state change, published later.

The engine's outbox sinks put ``accepted/<id>`` and ``report/<id>`` messages into the ``outbox``
table in the same transaction as the change they describe. :class:`OutboxPublisher` publishes
them at QoS 1 while the broker is connected, many at a time (a window of unacknowledged
messages, never one PUBACK after another), and deletes each row in batches once the broker has
acknowledged it. A broker outage or a daemon crash only delays them: rows stay until acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any

from alertline.engine.core import AcceptedSink, OutboxSink
from alertline.mqtt.bridge import MqttBridge, PublishError
from alertline.mqtt.inbound import encode
from alertline.mqtt.topics import Topics
from alertline.store.sqlite import Store

_LOGGER = logging.getLogger(__name__)

STORE_RETRY_SECONDS = 1.0


def report_sink(topics: Topics) -> OutboxSink:
    """The outbox sink for ``<base>/report/<id>``: the full report on every change."""
    return lambda report: [(topics.report(report.alert.id), encode(report.to_json()), False)]


def accepted_sink(topics: Topics) -> AcceptedSink:
    """The outbox sink for ``<base>/accepted/<id>``, committed with the new alert."""
    return lambda accepted: [(topics.accepted(accepted.alert_id), encode(accepted.to_json()),
                              False)]


class OutboxPublisher:
    """Drains the store's outbox to the broker: nothing lost across outages and restarts."""

    def __init__(self, store: Store, bridge: MqttBridge, *, batch_size: int = 500,
                 window: int = 2000) -> None:
        self._store = store
        self._bridge = bridge
        self.batch_size = batch_size
        self.window = window
        self._last_seq = 0
        self._in_flight: dict[int, asyncio.Future[None]] = {}
        self._acked: list[int] = []
        self._deleting: asyncio.Task[None] | None = None
        self._wakeup = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._caught_up = False
        self.published = 0
        self.refused = 0

    @property
    def in_flight(self) -> int:
        """Messages published and not yet acknowledged."""
        return len(self._in_flight)

    def notify(self, *_: Any) -> None:
        """New rows may be in the outbox (an engine report listener)."""
        self._caught_up = False
        self._idle.clear()
        self._wakeup.set()

    async def run(self) -> None:
        """Publish forever (cancel to stop); store errors are retried."""
        while True:
            try:
                await self._publish_batch()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                _LOGGER.error("reading the outbox failed (%s); retrying", err)
                await asyncio.sleep(STORE_RETRY_SECONDS)

    async def _publish_batch(self) -> None:
        await self._bridge.wait_connected()
        if len(self._in_flight) >= self.window:
            self._room.clear()
            await self._room.wait()
            return
        self._wakeup.clear()
        rows = await self._store.outbox(self.batch_size, after=self._last_seq)
        if not rows:
            self._caught_up = True
            if not self._in_flight:
                self._idle.set()
            await self._wakeup.wait()
            return
        for seq, topic, payload, retain in rows:
            self._last_seq = seq
            future = self._bridge.publish(topic, payload, retain=retain)
            self._in_flight[seq] = future
            future.add_done_callback(partial(self._acknowledged, seq))

    def _acknowledged(self, seq: int, future: asyncio.Future[None]) -> None:
        self._in_flight.pop(seq, None)
        if len(self._in_flight) < self.window:
            self._room.set()
        if future.cancelled():
            return  # stopping: the row stays and is published by the next run
        error = future.exception()
        if isinstance(error, PublishError):
            self.refused += 1
            _LOGGER.error("outbox message %d cannot be published and is dropped: %s", seq, error)
        elif error is not None:
            _LOGGER.error("outbox message %d: %s", seq, error)
            return
        else:
            self.published += 1
        self._acked.append(seq)
        if self._deleting is None or self._deleting.done():
            self._deleting = asyncio.ensure_future(self._delete_acknowledged())
        if self._caught_up and not self._in_flight:
            self._idle.set()

    async def _delete_acknowledged(self) -> None:
        while self._acked:
            seqs, self._acked = self._acked, []
            try:
                await self._store.commit([Store.op_outbox_remove(seqs)])
            except Exception as err:
                # published but still stored: republished (a duplicate) after a restart
                _LOGGER.error("removing %d published outbox rows failed: %s", len(seqs), err)

    async def flush(self, within: float) -> bool:
        """Wait until everything in the outbox is published and removed; False after ``within``."""
        self.notify()
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        if self._deleting is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(self._deleting), within)
        return True
