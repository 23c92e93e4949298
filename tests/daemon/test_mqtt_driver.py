"""paho on the event loop (mqtt/driver.py): no network thread, acks on the wire in arrival order,
keepalive and reconnects driven by the loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from alertline.mqtt.bridge import InboundMessage, MqttBridge, Outgoing
from alertline.mqtt.client import MqttSettings
from tests.daemon.harness import WAIT, MqttProbe
from tests.mosquitto import Mosquitto

CONNECT, CONNACK, PUBLISH, PUBACK = 1, 2, 3, 4
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14


def _length(value: int) -> bytes:
    """MQTT's variable-length encoding of a remaining length."""
    out = bytearray()
    while True:
        value, digit = divmod(value, 128)
        out.append(digit | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _length(len(body)) + body


@dataclass
class WireBroker:
    """A minimal MQTT 3.1.1 broker on loopback that shows what Mosquitto does not: the client's
    PUBACKs in the order they reach the wire. ``silent_pings`` leaves that many first
    connections' PINGREQs unanswered, as a broker that hung would."""

    silent_pings: int = 0
    port: int = 0
    connections: int = 0
    acks: list[int] = field(default_factory=list)
    ack_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    on_ack: list[object] = field(default_factory=list)  # what the test noted at each ack
    note: object = None
    _writer: asyncio.StreamWriter | None = None
    _server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop listening and drop the connection."""
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def send(self, mid: int, topic: str, payload: bytes) -> None:
        """A QoS 1 PUBLISH to the connected client."""
        assert self._writer is not None
        name = topic.encode()
        self._writer.write(_packet(0x32, len(name).to_bytes(2, "big") + name
                                   + mid.to_bytes(2, "big") + payload))

    async def acked(self, count: int) -> list[int]:
        """The packet ids of the first ``count`` PUBACKs, in wire order."""
        async def enough() -> None:
            while len(self.acks) < count:
                self.ack_arrived.clear()
                await self.ack_arrived.wait()
        await asyncio.wait_for(enough(), WAIT)
        return self.acks[:count]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        answer_pings = self.connections > self.silent_pings
        self._writer = writer
        try:
            while True:
                kind, body = await self._read(reader)
                if kind == CONNECT:
                    writer.write(_packet(CONNACK << 4, b"\x00\x00"))
                elif kind == SUBSCRIBE:
                    topics, rest = 0, body[2:]
                    while rest:
                        size = int.from_bytes(rest[:2], "big")
                        rest, topics = rest[2 + size + 1:], topics + 1
                    writer.write(_packet(SUBACK << 4, body[:2] + b"\x01" * topics))
                elif kind == PUBLISH:  # the bridge's status: QoS 1, acknowledged
                    size = int.from_bytes(body[:2], "big")
                    writer.write(_packet(PUBACK << 4, body[2 + size:4 + size]))
                elif kind == PUBACK:
                    self.acks.append(int.from_bytes(body[:2], "big"))
                    self.on_ack.append(self.note)
                    self.ack_arrived.set()
                elif kind == PINGREQ and answer_pings:
                    writer.write(_packet(PINGRESP << 4, b""))
                elif kind == DISCONNECT:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> tuple[int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            digit = (await reader.readexactly(1))[0]
            length += (digit & 0x7F) << shift
            shift += 7
            if not digit & 0x80:
                break
        return first >> 4, await reader.readexactly(length)


@dataclass
class GatedHandler:
    """Each payload's handling waits for its gate; records what started and what finished."""

    gates: dict[bytes, asyncio.Event]
    started: list[bytes] = field(default_factory=list)
    finished: list[bytes] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, message: InboundMessage) -> Sequence[Outgoing]:
        self.started.append(message.payload)
        self.changed.set()
        await self.gates[message.payload].wait()
        self.finished.append(message.payload)
        self.changed.set()
        return []

    async def until(self, what: list[bytes], payload: bytes) -> None:
        """Until ``payload`` is in ``what`` (``started`` or ``finished``)."""
        async def seen() -> None:
            while payload not in what:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(seen(), WAIT)


@pytest.fixture
async def wire_broker() -> AsyncIterator[WireBroker]:
    """A started :class:`WireBroker`."""
    broker = WireBroker()
    await broker.start()
    yield broker
    await broker.close()


def _connects(bridge: MqttBridge) -> asyncio.Queue[bool]:
    """``session_present`` of each (re)connect of ``bridge``, once it is subscribed."""
    queue: asyncio.Queue[bool] = asyncio.Queue()

    async def hook(session_present: bool) -> None:
        queue.put_nowait(session_present)

    bridge.add_connect_hook(hook)
    return queue


async def test_acks_reach_the_wire_in_arrival_order_when_handling_finishes_out_of_order(
        wire_broker: WireBroker) -> None:
    gates = {b"1": asyncio.Event(), b"2": asyncio.Event(), b"3": asyncio.Event()}
    handler = GatedHandler(gates)
    bridge = MqttBridge(MqttSettings(host="127.0.0.1", port=wire_broker.port, client_id="acks",
                                     protocol="3.1.1"),
                        status_topic="acks/status", subscriptions=["acks/in"], handler=handler)
    await bridge.start()
    try:
        await asyncio.wait_for(bridge.wait_ready(), WAIT)
        for mid in (1, 2, 3):
            wire_broker.send(mid, "acks/in", str(mid).encode())
        await handler.until(handler.started, b"3")

        gates[b"3"].set()  # the last message is committed first: its ack must wait
        await handler.until(handler.finished, b"3")
        wire_broker.note = "1 released"
        gates[b"1"].set()
        first = await wire_broker.acked(1)
        wire_broker.note = "2 released"
        gates[b"2"].set()
        acks = await wire_broker.acked(3)
    finally:
        await bridge.stop()

    assert handler.finished == [b"3", b"1", b"2"]
    assert first == [1]  # not 3, although 3 was done before anything else
    assert acks == [1, 2, 3]
    assert wire_broker.on_ack == ["1 released", "2 released", "2 released"]


async def test_keepalive_notices_a_silent_broker_and_the_bridge_reconnects(
        wire_broker: WireBroker, caplog: pytest.LogCaptureFixture) -> None:
    wire_broker.silent_pings = 1  # the first connection's broker stops answering pings
    bridge = MqttBridge(MqttSettings(host="127.0.0.1", port=wire_broker.port,
                                     client_id="keepalive", keepalive=1, protocol="3.1.1"),
                        status_topic="keepalive/status", subscriptions=["keepalive/in"],
                        handler=GatedHandler({}))
    connects = _connects(bridge)
    await bridge.start()
    try:
        await asyncio.wait_for(connects.get(), WAIT)
        await asyncio.wait_for(connects.get(), WAIT)  # loop_misc dropped it; reconnected
        stats = dict(bridge.stats)
    finally:
        await bridge.stop()

    assert wire_broker.connections == 2
    assert stats["connects"] == 2 and stats["disconnects"] == 1
    assert "lost the MQTT connection (Keep alive timeout)" in caplog.text
    assert "cannot connect" not in caplog.text  # one drop, not also a failed attempt


async def test_paho_has_no_network_thread_and_the_bridge_survives_a_broker_losing_its_state(
        broker: Mosquitto, tmp_path: Path) -> None:
    handler = GatedHandler({b"before": asyncio.Event(), b"after": asyncio.Event()})
    for gate in handler.gates.values():
        gate.set()
    bridge = MqttBridge(MqttSettings(host=broker.host, port=broker.port, client_id="on-loop"),
                        status_topic="on-loop/status", subscriptions=["on-loop/in"],
                        handler=handler)
    connects = _connects(bridge)
    await bridge.start()
    sender = watcher = None
    try:
        assert await asyncio.wait_for(connects.get(), WAIT) is False
        threads = [t.name for t in threading.enumerate() if "on-loop" in t.name]
        sender = await MqttProbe(broker.host, broker.port).connect()
        await sender.publish("on-loop/in", b"before")
        await handler.until(handler.finished, b"before")

        broker.stop()  # and its persisted sessions and retained messages are lost
        (broker.workdir / "mosquitto.db").unlink()
        broker.start()
        # a new session: subscribed again (else "after" would not arrive) and online again
        assert await asyncio.wait_for(connects.get(), WAIT) is False
        watcher = await MqttProbe(broker.host, broker.port, client_id="watcher").connect()
        await watcher.subscribe("on-loop/status")
        online = await watcher.expect("on-loop/status")
        await sender.publish("on-loop/in", b"after")
        await handler.until(handler.finished, b"after")
    finally:
        for probe in (sender, watcher):
            if probe is not None:
                await probe.close()
        await bridge.stop()

    assert threads == []  # paho's loop_start() would run "paho-mqtt-client-on-loop"
    assert online.payload == b"online" and online.retain
    assert bridge.stats["connects"] == 2
