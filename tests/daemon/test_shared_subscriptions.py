"""Shared subscriptions on a real Mosquitto: with a share group, each input message is handled by
exactly one bridge of the group, on its plain topic; the retained (Home Assistant birth) topic
stays unshared and reaches every bridge. Without a share group every bridge gets everything,
which shows the counting below can fail."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import pytest

from alertline.mqtt.bridge import InboundMessage, MqttBridge, Outgoing
from alertline.mqtt.client import MqttSettings
from alertline.mqtt.topics import shared_filter
from tests.daemon.harness import WAIT, MqttProbe
from tests.mosquitto import Mosquitto

INPUT = "cluster/send/+"
SEND = "cluster/send/leak"
MARKER = "cluster/send/marker"
BIRTH = "cluster/ha/status"
COUNT = 200
PROTOCOLS = pytest.mark.parametrize("protocol", ["5", "3.1.1"])


@dataclass
class Recorder:
    """A bridge's handler: records every message it is given and signals the change."""

    changed: asyncio.Event
    handled: list[InboundMessage] = field(default_factory=list)

    async def __call__(self, message: InboundMessage) -> Sequence[Outgoing]:
        self.handled.append(message)
        self.changed.set()
        return []

    def payloads(self, topic: str) -> list[bytes]:
        """The payloads handled on ``topic``, in order."""
        return [m.payload for m in self.handled if m.topic == topic]


@dataclass
class Group:
    """Started bridges on one broker and their recorders (one shared change signal)."""

    bridges: list[MqttBridge] = field(default_factory=list)
    recorders: list[Recorder] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds after some bridge handled a message."""
        async def wait() -> None:
            while not condition():
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), WAIT)

    def handled(self, topic: str, payload: bytes) -> bool:
        """Whether some bridge has handled ``payload`` on ``topic``."""
        return any(payload in r.payloads(topic) for r in self.recorders)

    async def settle(self, probe: MqttProbe) -> None:
        """Publish markers until every bridge has handled one: the broker delivers a client's
        messages in order, so each bridge has then handled everything published before."""
        for index in range(50):
            marker = f"marker-{index}".encode()
            await probe.publish(MARKER, marker)
            await self.until(functools.partial(self.handled, MARKER, marker))
            if all(r.payloads(MARKER) for r in self.recorders):
                return
        raise AssertionError("the markers never reached every bridge")


GroupFactory = Callable[..., Awaitable[Group]]


@pytest.fixture
async def start_group(broker: Mosquitto) -> AsyncIterator[GroupFactory]:
    """Start bridges ``alpha`` and ``beta`` (distinct client ids) on ``broker``; stopped at the
    end."""
    groups: list[Group] = []

    async def start(protocol: str, share_group: str | None) -> Group:
        group = Group()
        groups.append(group)
        for client_id in ("alpha", "beta"):
            recorder = Recorder(group.changed)
            bridge = MqttBridge(
                MqttSettings(host=broker.host, port=broker.port, client_id=client_id,
                             keepalive=5, protocol=protocol),
                status_topic=f"cluster/status/{client_id}", subscriptions=[INPUT, BIRTH],
                handler=recorder, retained_subscriptions=[BIRTH], share_group=share_group)
            group.bridges.append(bridge)
            group.recorders.append(recorder)
            await bridge.start()
            await asyncio.wait_for(bridge.wait_ready(), WAIT)
        return group

    yield start
    for group in groups:
        for bridge in group.bridges:
            await bridge.stop()


def test_only_the_input_subscriptions_are_shared() -> None:
    bridge = MqttBridge(MqttSettings(host="127.0.0.1"), status_topic="cluster/status",
                        subscriptions=[INPUT, BIRTH], handler=Recorder(asyncio.Event()),
                        retained_subscriptions=[BIRTH], share_group="alertline")

    assert bridge.filters == ["$share/alertline/cluster/send/+", BIRTH]
    assert bridge.subscriptions == [INPUT, BIRTH]


@pytest.mark.parametrize("group", ["", "a/b", "a+", "#"])
def test_a_share_group_name_without_a_place_in_the_filter_is_refused(group: str) -> None:
    with pytest.raises(ValueError, match="invalid share group"):
        shared_filter(group, INPUT)


@PROTOCOLS
async def test_each_message_is_handled_by_exactly_one_bridge_of_the_share_group(
        start_group: GroupFactory, probe: MqttProbe, protocol: str) -> None:
    group = await start_group(protocol, share_group="alertline")
    for index in range(COUNT):
        await probe.publish(SEND, str(index).encode())
    await group.settle(probe)

    alpha, beta = (r.payloads(SEND) for r in group.recorders)
    handled = Counter(alpha + beta)
    assert sorted(handled) == sorted(str(i).encode() for i in range(COUNT)), "none is lost"
    assert set(handled.values()) == {1}, "none is handled twice"
    assert alpha and beta, "the group shares the work"
    assert all(m.topic in (SEND, MARKER) for r in group.recorders for m in r.handled), \
        "handlers see the plain topic, never $share/..."


@PROTOCOLS
async def test_the_retained_subscription_is_not_shared(
        start_group: GroupFactory, probe: MqttProbe, protocol: str) -> None:
    await probe.publish(BIRTH, b"online", retain=True)
    group = await start_group(protocol, share_group="alertline")
    await group.until(lambda: all(r.payloads(BIRTH) for r in group.recorders))
    await probe.publish(BIRTH, b"offline")
    await group.until(lambda: all(b"offline" in r.payloads(BIRTH) for r in group.recorders))

    for recorder in group.recorders:
        assert recorder.payloads(BIRTH) == [b"online", b"offline"]
        assert recorder.handled[0].retain, "the retained birth message reaches every bridge"


async def test_under_mqtt5_no_retained_message_arrives_on_a_shared_subscription(
        start_group: GroupFactory, probe: MqttProbe) -> None:
    """MQTT 5 brokers send none there, and the bridge asks for none. Under 3.1.1 it is the
    broker's choice: Mosquitto 2.0 sends a retained input message to every member."""
    await probe.publish(SEND, b"stale", retain=True)
    group = await start_group("5", share_group="alertline")
    await group.settle(probe)

    assert [r.payloads(SEND) for r in group.recorders] == [[], []]


async def test_without_a_share_group_every_bridge_gets_every_message(
        start_group: GroupFactory, probe: MqttProbe) -> None:
    group = await start_group("5", share_group=None)
    for index in range(COUNT):
        await probe.publish(SEND, str(index).encode())
    await group.settle(probe)

    expected = [str(i).encode() for i in range(COUNT)]
    assert [r.payloads(SEND) for r in group.recorders] == [expected, expected]
