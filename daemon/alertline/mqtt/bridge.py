"""The paho-mqtt bridge: one persistent session, manual acks in arrival order, PUBACK futures.

paho runs on the asyncio loop (:mod:`alertline.mqtt.driver` reads and writes its socket there),
so its callbacks and all the state here live on the loop, with no thread or lock. An inbound QoS 1
message is acknowledged only once its handler has finished (for an alert: once it is committed),
and acks leave in the order the messages arrived, as MQTT requires (:mod:`alertline.mqtt.acks`).
While the store cannot be written, handlers wait for it, so nothing is acknowledged and the
broker's flow control stops sending more; a handler that ends with
:class:`~alertline.store.health.StoreUnavailableError` leaves its message unacknowledged. When the
connection drops, unacknowledged messages are left to the broker, which redelivers them on the
resumed session; a redelivery of a message still being handled waits for that handling.

A ``share_group`` shares the inputs (``$share/<group>/<topic>``), not ``retained_subscriptions``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from alertline.errors import AlertlineError
from alertline.mqtt.acks import ArrivalOrder, Unacked
from alertline.mqtt.client import MqttSettings, connect_async, create_client, publish_properties
from alertline.mqtt.driver import LoopDriver, logged_callback
from alertline.mqtt.topics import shared_filter
from alertline.store.health import StoreUnavailableError

_LOGGER = logging.getLogger(__name__)

DEFAULT_INFLIGHT = 20  # until the broker says more (MQTT v5 Receive Maximum)
MAX_INFLIGHT = 1000


class PublishError(AlertlineError):
    """The broker refused a message, or it could not be queued."""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A message received on one of the subscribed topics."""

    topic: str
    payload: bytes
    retain: bool = False
    dup: bool = False
    response_topic: str | None = None
    correlation_data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to publish in answer to an inbound one."""

    topic: str
    payload: bytes
    retain: bool = False
    correlation_data: bytes | None = None


MessageHandler = Callable[[InboundMessage], Awaitable[Sequence[Outgoing]]]
ConnectHook = Callable[[bool], Awaitable[None]]


class MqttBridge:
    """The daemon's MQTT session: subscriptions, ordered manual acks, publishing, availability."""

    def __init__(self, settings: MqttSettings, *, status_topic: str,
                 subscriptions: Sequence[str], handler: MessageHandler,
                 ordered: Callable[[str], bool] = lambda _topic: False,
                 retained_subscriptions: Sequence[str] = (),
                 share_group: str | None = None) -> None:
        self.settings = settings
        self.status_topic = status_topic
        self.subscriptions = list(subscriptions)
        self.retained_subscriptions = set(retained_subscriptions)
        # the filters as subscribed: shared ones in a share group, except the retained ones
        self.filters = [topic if share_group is None or topic in self.retained_subscriptions
                        else shared_filter(share_group, topic) for topic in self.subscriptions]
        self._handler = handler
        self._hooks: list[ConnectHook] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: paho.Client | None = None
        self._driver: LoopDriver | None = None
        self._connected = asyncio.Event()
        self._ready = asyncio.Event()
        self._subscribe_mid: int | None = None
        self._arrivals = ArrivalOrder(ordered)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._accepting = True
        self._failures = 0
        self._session_present = False
        self.availability = b"online"
        self.stats: Counter[str] = Counter()

    # -- lifecycle -------------------------------------------------------------------------

    def add_connect_hook(self, hook: ConnectHook) -> None:
        """Run ``hook(session_present)`` after every (re)connect, once subscribed."""
        self._hooks.append(hook)

    @property
    def connected(self) -> bool:
        """Whether the session is up."""
        return self._connected.is_set()

    async def wait_connected(self) -> None:
        """Wait until the session is up."""
        await self._connected.wait()

    async def wait_ready(self) -> None:
        """Wait until the session is up and subscribed (``online`` is published then)."""
        await self._ready.wait()

    @property
    def pending_publishes(self) -> int:
        """Messages published but not yet acknowledged by the broker."""
        return len(self._pending)

    def set_availability(self, payload: bytes) -> None:
        """Publish ``payload`` (``online``, ``degraded``) on the status topic, now and after
        every reconnect (the last will stays ``offline``)."""
        self.availability = payload
        if self._client is not None and self._ready.is_set():
            self._watch(self.publish(self.status_topic, payload, retain=True), "status")

    async def start(self) -> None:
        """Begin connecting (retrying with backoff until :meth:`stop`)."""
        self._loop = asyncio.get_running_loop()
        # the driver reconnects (with backoff); paho must not reconnect by itself on the loop
        client = create_client(self.settings, client_id=self.settings.client_id,
                               persistent=True, manual_ack=True, reconnect_on_failure=False)
        client.will_set(self.status_topic, b"offline", qos=1, retain=True)
        client.max_inflight_messages_set(DEFAULT_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        self._client = client
        connect_async(client, self.settings, persistent=True)  # stores where; connects nothing
        self._driver = LoopDriver(client, on_attempt_failed=self._refused)
        self._driver.start()

    def leave_share_group(self) -> None:
        """Unsubscribe the shared inputs: the broker sends new ones to the other members."""
        if (shared := [f for f in self.filters if f not in self.subscriptions]) and \
                self._client is not None and self.connected:
            self._client.unsubscribe(shared)

    def stop_accepting(self) -> None:
        """Leave new inbound messages unhandled and unacknowledged (the broker keeps them)."""
        self._accepting = False

    async def drain(self, within: float) -> bool:
        """Wait for inbound messages being handled (and their acks); False after ``within``."""
        if not self._tasks:
            return True
        _, pending = await asyncio.wait(list(self._tasks), timeout=within)
        return not pending

    async def stop(self, *, grace: float = 5.0) -> None:
        """Publish ``offline``, disconnect cleanly (a DISCONNECT: no last will) and close."""
        self._accepting = False
        client, driver = self._client, self._driver
        if client is None or driver is None:
            return
        await driver.stop_reconnecting()
        if self.connected:
            with contextlib.suppress(TimeoutError, PublishError):
                await asyncio.wait_for(self.publish(self.status_topic, b"offline", retain=True),
                                       grace)
        client.disconnect()
        await driver.closed(grace)
        self._connected.clear()
        self._ready.clear()
        for task in list(self._tasks):
            task.cancel()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        self._client = self._driver = None

    # -- publishing ------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1,
                correlation_data: bytes | None = None) -> asyncio.Future[None]:
        """Queue a message; the future resolves when the broker has it (PUBACK for QoS 1).

        Messages queued while disconnected go out, in order, once the session is back.
        """
        assert self._driver is not None and self._loop is not None, "bridge not started"
        future: asyncio.Future[None] = self._loop.create_future()
        properties = publish_properties(correlation_data) if self.settings.v5 else None
        self._driver.call(functools.partial(self._publish, future, topic, payload, qos=qos,
                                            retain=retain, properties=properties))
        return future

    def _publish(self, future: asyncio.Future[None], topic: str, payload: bytes, *, qos: int,
                 retain: bool, properties: Properties | None) -> None:
        client = self._client
        if client is None:  # stopped while the publish was held back
            future.cancel()
            return
        try:
            info = client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        except ValueError as err:
            future.set_exception(PublishError(f"cannot publish on {topic!r}: {err}"))
            return
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            future.set_exception(PublishError(f"cannot queue a message on {topic!r}: "
                                              f"{paho.error_string(info.rc)}"))
        elif qos == 0:
            future.set_result(None)
        else:
            self._pending[info.mid] = future

    # -- paho's callbacks (called by the driver's socket reads and writes, on the loop) ---------

    @logged_callback
    def _on_connect(self, client: paho.Client, _userdata: Any, flags: Any, reason: ReasonCode,
                    properties: Properties | None) -> None:
        assert self._driver is not None
        if reason.is_failure:  # reported by the driver once the connection has closed
            self._driver.attempt_failed(str(reason))
            return
        self._driver.accepted()
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        if receive_maximum:
            # The broker's limit on our unacknowledged publishes (exceeding it gets us
            # disconnected). paho 2 does not apply it and refuses max_inflight_messages_set() on
            # a connection, so set it where paho reads it, before it resends queued messages.
            client._max_inflight_messages = min(int(receive_maximum), MAX_INFLIGHT)
        self._up(bool(flags.session_present))

    @logged_callback
    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any,
                       reason: ReasonCode, _properties: Any) -> None:
        self._down(str(reason))

    @logged_callback
    def _on_message(self, _client: paho.Client, _userdata: Any,
                    message: paho.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = ""
        properties = message.properties
        response = getattr(properties, "ResponseTopic", None) if properties else None
        correlation = getattr(properties, "CorrelationData", None) if properties else None
        inbound = InboundMessage(topic=topic, payload=bytes(message.payload),
                                 retain=bool(message.retain), dup=bool(message.dup),
                                 response_topic=response,
                                 correlation_data=bytes(correlation) if correlation else None)
        self._received(message.mid, message.qos, inbound)

    @logged_callback
    def _on_publish(self, _client: paho.Client, _userdata: Any, mid: int,
                    reason: ReasonCode, _properties: Any) -> None:
        self._puback(mid, str(reason) if reason.is_failure else None)

    @logged_callback
    def _on_subscribe(self, _client: paho.Client, _userdata: Any, mid: int,
                      reasons: list[ReasonCode], _properties: Any) -> None:
        self._subscribed(mid, [str(r) for r in reasons if r.is_failure])

    # -- on the loop -----------------------------------------------------------------------

    def _up(self, session_present: bool) -> None:
        assert self._client is not None
        self.stats["connects"] += 1
        self._failures = 0
        if not session_present:
            self._arrivals.session_lost()
        _LOGGER.info("connected to the MQTT broker %s:%d (%s session)", self.settings.host,
                     self.settings.port, "resumed" if session_present else "new")
        if self.settings.v5:
            _, self._subscribe_mid = self._client.subscribe([
                (topic, SubscribeOptions(qos=1, retainHandling=(
                    SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE
                    if topic in self.retained_subscriptions
                    else SubscribeOptions.RETAIN_DO_NOT_SEND)))
                for topic in self.filters])
        else:
            _, self._subscribe_mid = self._client.subscribe(
                [(topic, 1) for topic in self.filters])
        self._session_present = session_present
        self._connected.set()

    def _subscribed(self, mid: int, refused: list[str]) -> None:
        if mid != self._subscribe_mid or not self._connected.is_set():
            return
        if refused:
            _LOGGER.error("the broker refused %d of the subscriptions (%s): check its ACL for "
                          "%s", len(refused), ", ".join(refused), ", ".join(self.filters))
        self._watch(self.publish(self.status_topic, self.availability, retain=True), "status")
        self._ready.set()
        for hook in self._hooks:
            self._spawn(hook(self._session_present))

    def _refused(self, reason: str) -> None:
        self._failures += 1
        if self._failures & (self._failures - 1) == 0:  # 1st, 2nd, 4th, 8th... attempt
            _LOGGER.warning("cannot connect to the MQTT broker %s:%d: %s (attempt %d; "
                            "retrying with backoff)", self.settings.host, self.settings.port,
                            reason, self._failures)

    def _down(self, reason: str) -> None:
        if not self._connected.is_set():
            # e.g. a TLS client certificate refused after the handshake; paho also calls this
            # twice for one keepalive timeout (the driver ignores it once the broker accepted)
            if self._driver is not None:
                self._driver.attempt_failed(
                    f"the connection closed before the broker accepted it ({reason})")
            return
        self._connected.clear()
        self._ready.clear()
        self.stats["disconnects"] += 1
        if self._accepting:
            _LOGGER.warning("lost the MQTT connection (%s); reconnecting", reason)
        self._arrivals.connection_lost()

    def _received(self, mid: int, qos: int, message: InboundMessage) -> None:
        self.stats["received"] += 1
        if not self._accepting:
            return  # not acknowledged: the broker delivers it to the next session
        assert self._loop is not None
        done: asyncio.Future[None] = self._loop.create_future()
        entry, first = self._arrivals.arrive(mid, qos, message.topic, message.payload,
                                             dup=message.dup, done=done)
        if first is not None:
            self.stats["redelivered"] += 1
            first.add_done_callback(lambda _f: self._complete(entry))
            return
        waits = self._arrivals.dependencies(message.topic, done)
        self._spawn(self._process(entry, message, waits))

    async def _process(self, entry: Unacked, message: InboundMessage,
                       waits: list[asyncio.Future[None]]) -> None:
        try:
            if waits:
                await asyncio.wait(waits)
            answers = await self._handler(message)
            for answer in answers:
                self._watch(self.publish(answer.topic, answer.payload, retain=answer.retain,
                                         correlation_data=answer.correlation_data), "answer")
        except asyncio.CancelledError:
            raise  # shutting down: left unacknowledged, so the broker redelivers it
        except StoreUnavailableError as err:
            # not kept (the store failed while stopping): never acknowledged, so the broker
            # delivers it again to the next session
            self.stats["not_kept"] += 1
            _LOGGER.debug("leaving a message on %s unacknowledged: %s", message.topic, err)
            return
        except Exception:
            _LOGGER.exception("handling a message on %s failed", message.topic)
        self._complete(entry)

    def _complete(self, entry: Unacked) -> None:
        ready = self._arrivals.complete(entry)
        client = self._client
        if client is None or not self._connected.is_set():
            return  # the broker redelivers them on the next connection
        for head in ready:
            client.ack(head.mid, head.qos)
        self.stats["acked"] += len(ready)

    def _puback(self, mid: int, failure: str | None) -> None:
        future = self._pending.pop(mid, None)
        if future is None or future.done():
            return
        if failure is None:
            future.set_result(None)
        else:
            self.stats["publish_refused"] += 1
            future.set_exception(PublishError(f"the broker refused the message: {failure}"))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _watch(self, future: asyncio.Future[None], what: str) -> None:
        """Log (instead of losing) the failure of a publish nobody awaits."""
        def done(f: asyncio.Future[None]) -> None:
            if not f.cancelled() and f.exception() is not None:
                _LOGGER.warning("publishing the %s message failed: %s", what, f.exception())
        future.add_done_callback(done)
