"""Reports to MQTT through the store's outbox: written with each state change, published later.

The engine's outbox sinks put ``accepted/<id>`` and ``report/<id>`` messages into the ``outbox``
table in the same transaction as the change they describe. :class:`OutboxPublisher` publishes
them at QoS 1 while the broker is connected, many at a time (a window of unacknowledged
messages, never one PUBACK after another), and deletes each row in batches once the broker has
acknowledged it. A broker outage or a daemon crash only delays them: rows stay until acknowledged.
Home Assistant drains the same outbox through its own MQTT integration (an :class:`OutboxBroker`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from alertline.engine.ledger import AcceptedSink, OutboxSink
from alertline.mqtt.bridge import PublishError
from alertline.mqtt.inbound import encode
from alertline.mqtt.topics import Topics
from alertline.store import intents
from alertline.store.protocol import Store

if TYPE_CHECKING:  # handed the engine by its host (the daemon, Home Assistant)
    from alertline.engine.core import Engine

_LOGGER = logging.getLogger(__name__)

STORE_RETRY_SECONDS = 1.0

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Future[None]"]


def report_sink(topics: Topics) -> OutboxSink:
    """The outbox sink for ``<base>/report/<id>``: the full report on every change."""
    return lambda report: [(topics.report(report.alert.id), encode(report.to_json()), False)]


def accepted_sink(topics: Topics) -> AcceptedSink:
    """The outbox sink for ``<base>/accepted/<id>``, committed with the new alert."""
    return lambda accepted: [(topics.accepted(accepted.alert_id), encode(accepted.to_json()),
                              False)]


def add_report_sinks(engine: Engine, topics: Topics) -> None:
    """Have ``engine`` queue ``<base>/accepted/<id>`` and ``<base>/report/<id>`` in the outbox
    (the daemon's topics and payloads; Home Assistant publishes the same)."""
    engine.add_accepted_sink(accepted_sink(topics))
    engine.add_outbox_sink(report_sink(topics))


class OutboxBroker(Protocol):
    """Where the outbox goes: the daemon's :class:`MqttBridge`, or a host's own MQTT client
    (Home Assistant's ``mqtt.async_publish`` behind two lines)."""

    @property
    def connected(self) -> bool:
        """Whether a publish now reaches the broker (nothing is handed over while it is not:
        an MQTT client queues such a message itself, and it would go out twice)."""

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> Awaitable[None]:
        """Publish at QoS 1; done when the broker has the message, failed if it has not."""


class OutboxPublisher:
    """Drains the store's outbox to the broker: nothing lost across outages and restarts.

    ``window`` messages may await their acknowledgement at once (the daemon keeps thousands in
    flight; Home Assistant, whose publish waits for each acknowledgement, sends one at a time,
    which also keeps the order when a publish fails). A publish failing with one of ``refused``
    is dropped (the broker will never take it); any other failure leaves the message in the
    outbox and stops the drain until :meth:`notify` (a new report, the connection is back).
    ``spawn`` starts the task that removes acknowledged rows (a host may track its tasks).
    """

    def __init__(self, store: Store, broker: OutboxBroker, *, batch_size: int = 500,
                 window: int = 2000,
                 refused: tuple[type[BaseException], ...] = (PublishError,),
                 spawn: Spawn = asyncio.ensure_future) -> None:
        self._store = store
        self._spawn = spawn
        self._broker = broker
        self.batch_size = batch_size
        self.window = window
        self.refused_errors = refused
        self._last_seq = 0
        # published and not yet removed from the store: a rescan must not publish them again
        self._handled: set[int] = set()
        self._running: asyncio.Future[None] | None = None
        self._in_flight: dict[int, asyncio.Future[None]] = {}
        self._acked: list[int] = []
        self._deleting: asyncio.Future[None] | None = None
        self._wakeup = asyncio.Event()
        self._news = 0  # counts notify(): a failure waits only for news after its publish
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._caught_up = False
        self._failed = False
        self.published = 0
        self.refused = 0

    @property
    def in_flight(self) -> int:
        """Messages published and not yet acknowledged."""
        return len(self._in_flight)

    def notify(self, *_: Any) -> None:
        """New rows may be in the outbox, or the broker is back (an engine report listener and
        a connection hook)."""
        self._caught_up = False
        self._news += 1
        self._idle.clear()
        self._wakeup.set()

    @property
    def publishing(self) -> bool:
        """Whether :meth:`publish_while` has it publishing."""
        return self._running is not None and not self._running.done()

    def publish_while(self, active: bool) -> None:
        """Publish (in a task of its own) while ``active``; in a cluster, while this daemon
        holds the outbox lease (each call rereads the outbox: see :meth:`rescan`)."""
        if not active:
            if self._running is not None:
                self._running.cancel()
            self._running = None
            return
        if not self.publishing:
            self._running = asyncio.ensure_future(self.run())
        self.rescan()

    async def halt(self) -> None:
        """Stop what :meth:`publish_while` started."""
        running, self._running = self._running, None
        if running is not None:
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)

    def rescan(self) -> None:
        """Read the outbox from its start once more: daemons sharing a store commit at once,
        so a row may become visible after rows with higher numbers were published (the
        outbox lease's holder calls this every round)."""
        self._last_seq = 0
        self.notify()

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
        if self._failed:  # a publish failed: wait for news (the flag was cleared with it)
            await self._wakeup.wait()
            self._failed = False
        self._wakeup.clear()
        if not self._broker.connected:
            await self._wakeup.wait()
            return
        rows = await self._store.outbox(self.batch_size, after=self._last_seq)
        if not rows:
            self._caught_up = True
            if not self._in_flight:
                self._idle.set()
            await self._wakeup.wait()
            return
        for seq, topic, payload, retain in rows:
            while len(self._in_flight) >= self.window:
                self._room.clear()
                await self._room.wait()
            if self._failed or not self._broker.connected:
                return  # the next round waits for the broker
            self._last_seq = max(self._last_seq, seq)
            if seq in self._handled:
                continue
            self._handled.add(seq)
            future = asyncio.ensure_future(self._broker.publish(topic, payload, retain=retain))
            self._in_flight[seq] = future
            future.add_done_callback(partial(self._acknowledged, seq, self._news))

    def _acknowledged(self, seq: int, news: int, future: asyncio.Future[None]) -> None:
        """``news`` is the count of :meth:`notify` calls when ``seq`` was handed over."""
        self._in_flight.pop(seq, None)
        if len(self._in_flight) < self.window:
            self._room.set()
        if future.cancelled():
            self._handled.discard(seq)
            return  # stopping: the row stays and is published by the next run
        error = future.exception()
        if isinstance(error, self.refused_errors):
            self.refused += 1
            _LOGGER.error("outbox message %d cannot be published and is dropped: %s", seq, error)
        elif error is not None:
            # not published: read it again once the broker is back (its successors that are
            # still in flight may then go out twice; QoS 1 is "at least once")
            _LOGGER.debug("outbox message %d not published (%s); it stays queued", seq, error)
            self._handled.discard(seq)
            self._last_seq = min(self._last_seq, seq - 1)
            self._failed = True
            if self._news == news:  # else the broker may be back already: retry at once
                self._wakeup.clear()
            return
        else:
            self.published += 1
        self._acked.append(seq)
        if self._deleting is None or self._deleting.done():
            self._deleting = self._spawn(self._delete_acknowledged())
        if self._caught_up and not self._in_flight:
            self._idle.set()

    async def _delete_acknowledged(self) -> None:
        while self._acked:
            seqs, self._acked = self._acked, []
            try:
                await self._store.commit([intents.outbox_remove(seqs)])
            except Exception as err:
                # published but still stored: republished (a duplicate) after a restart
                _LOGGER.error("removing %d published outbox rows failed: %s", len(seqs), err)
            self._handled.difference_update(seqs)

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

    async def close(self) -> None:
        """Forget the publishes awaiting an acknowledgement (their rows stay in the outbox) and
        finish removing the acknowledged ones; call it after cancelling :meth:`run`, before the
        store closes."""
        for future in list(self._in_flight.values()):
            future.cancel()
        self._in_flight.clear()
        if self._deleting is not None:
            with contextlib.suppress(Exception):
                await self._deleting
