"""Hypothesis throws hostile payloads at the send topics: every one is answered, the daemon lives.

The daemon runs on its own event loop in a thread, so that each generated example is published and
checked on its own (and Hypothesis can shrink a failing one).
"""

from __future__ import annotations

import asyncio
import io
import json
import queue
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from alertline.daemon import Daemon
from alertline.intake.request import FIELDS
from tests.daemon.harness import WAIT, daemon_config
from tests.mosquitto import Mosquitto

REPLIES = "alertline/reply/hostile"


class ThreadedDaemon:
    """A daemon on its own loop in a background thread."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self._run, name="daemon-under-test")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as err:  # reported by the test
            self.error = err
            self.ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.daemon.start()
        assert self.daemon.bridge is not None
        await self.daemon.bridge.wait_ready()
        self.ready.set()
        await self._stop.wait()
        await self.daemon.stop()

    def stop(self) -> None:
        """Stop the daemon and join the thread."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(30)


class Requester:
    """A blocking MQTT v5 client: publish a request, wait for the answer with its correlation."""

    def __init__(self, broker: Mosquitto) -> None:
        self.answers: queue.Queue[tuple[bytes, bytes]] = queue.Queue()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.on_message = lambda _c, _u, m: self.answers.put(
            (bytes(getattr(m.properties, "CorrelationData", b"")), bytes(m.payload)))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.client.subscribe(REPLIES, qos=1)
        assert subscribed.wait(WAIT)

    def ask(self, topic: str, payload: bytes) -> dict[str, Any]:
        """Publish ``payload`` on ``topic`` and return the one answer to it."""
        correlation = uuid.uuid4().bytes
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = REPLIES
        properties.CorrelationData = correlation
        self.client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(WAIT)
        while True:
            got, body = self.answers.get(timeout=WAIT)
            if got == correlation:
                answer: dict[str, Any] = json.loads(body)
                return answer

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def running(tmp_path: Path, broker: Mosquitto) -> Iterator[tuple[ThreadedDaemon, Requester]]:
    """A daemon in a thread (payload limit 2 KiB) and a requester, on one broker."""
    config = daemon_config(tmp_path, broker, mqtt={"max_payload_bytes": 2048, "discovery": False})
    threaded = ThreadedDaemon(Daemon(config, out=io.StringIO()))
    threaded.thread.start()
    assert threaded.ready.wait(WAIT) and threaded.error is None, threaded.error
    requester = Requester(broker)
    yield threaded, requester
    requester.close()
    threaded.stop()


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=12)
REQUESTS = st.fixed_dictionaries({}, optional={
    name: JSON_VALUES | st.sampled_from(["alice", "oncall", "+491701234567", "sms", "voice",
                                         "leak", "high", "5m", ""])
    for name in sorted(FIELDS)})
PAYLOADS = (st.binary(max_size=3000)
            | REQUESTS.map(lambda data: json.dumps(data).encode())
            | JSON_VALUES.map(lambda data: json.dumps(data).encode())
            | st.text(max_size=300).map(str.encode))
ROUTES = st.text(alphabet=st.characters(blacklist_characters="/+#\x00",
                                        blacklist_categories=("Cs", "Cc", "Cn", "Co")),
                 min_size=1, max_size=12)  # what brokers accept in a topic name
TOPICS = st.sampled_from(["alertline/send", "alertline/send/leak"]) \
    | ROUTES.map(lambda route: f"alertline/send/{route}")


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(topic=TOPICS, payload=PAYLOADS)
def test_every_hostile_message_is_answered_and_the_daemon_stays_up(
        running: tuple[ThreadedDaemon, Requester], topic: str, payload: bytes) -> None:
    threaded, requester = running

    answer = requester.ask(topic, payload)

    assert threaded.thread.is_alive() and threaded.error is None
    if "error" in answer:
        assert answer["error"] != "internal", answer
        assert answer["topic"] == topic
        assert answer["detail"] and isinstance(answer["field"], str)
    else:
        assert answer["state"] == "accepted" and answer["deliveries"] >= 1
