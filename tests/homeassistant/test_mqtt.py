"""Delivery reports to MQTT: the same ``alertline/report/<id>`` topics as the daemon, QoS 1,
from the store's outbox (so nothing is lost while the broker is away). With Home Assistant's MQTT
test fixture, and once through a real Mosquitto broker checked by an independent subscriber."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import paho.mqtt.client as paho
import pytest
from homeassistant.components import mqtt
from homeassistant.components.mqtt import MQTT_CONNECTION_STATE
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.dispatcher import async_dispatcher_send
from paho.mqtt.enums import CallbackAPIVersion
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.typing import MqttMockHAClient

from custom_components.alertline.const import DOMAIN
from tests.mosquitto import Mosquitto

from .conftest import Reports, make_entry, setup_entry


class Received:
    """MQTT messages on one topic filter, awaitable by content."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._waiters: list[tuple[str, asyncio.Future[dict[str, Any]]]] = []

    def add(self, topic: str, payload: bytes | bytearray | str) -> None:
        """Record one report message."""
        report = json.loads(payload)
        self.messages.append((topic, report))
        for alert_id, future in self._waiters:
            if report["id"] == alert_id and report.get("final") and not future.done():
                future.set_result(report)

    async def final(self, alert_id: str, within: float = 10.0) -> dict[str, Any]:
        """The final report of ``alert_id`` as received."""
        for _, report in self.messages:
            if report["id"] == alert_id and report.get("final"):
                return report
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((alert_id, future))
        return await asyncio.wait_for(future, within)


def _same_report(published: dict[str, Any], event: dict[str, Any]) -> bool:
    """The payload is the event's report (stamped when committed, a moment before the event)."""
    ignored = {"updated_at", "config_entry_id"}
    return {k: v for k, v in published.items() if k not in ignored} == \
        {k: v for k, v in event.items() if k not in ignored}


async def _subscribe(hass: HomeAssistant, topic: str) -> Received:
    received = Received()

    @callback
    def on_message(message: mqtt.ReceiveMessage) -> None:
        received.add(message.topic, message.payload)

    subscribed: asyncio.Future[None] = hass.loop.create_future()

    @callback
    def on_subscribed() -> None:
        if not subscribed.done():
            subscribed.set_result(None)

    await mqtt.async_subscribe(hass, topic, on_message, qos=1)
    stop_watching = mqtt.async_on_subscribe_done(hass, topic, 1, on_subscribed)
    await asyncio.wait_for(subscribed, 10)  # the broker confirmed the subscription
    stop_watching()
    return received


async def _send(hass: HomeAssistant, **data: Any) -> str:
    response = await hass.services.async_call(DOMAIN, "send", {"message": "Leak", **data},
                                              blocking=True, return_response=True)
    assert response is not None
    return str(response["alert_id"])


async def test_reports_are_published_with_qos_1(hass: HomeAssistant, mqtt_mock: MqttMockHAClient,
                                                reports: Reports) -> None:
    received = await _subscribe(hass, "alertline/report/#")
    entry = make_entry(hass)
    await setup_entry(hass, entry)

    alert_id = await _send(hass, target=["alice", "busy"])
    report = await received.final(alert_id)
    event = await reports.wait(alert_id)

    accepted = [json.loads(c.args[1]) for c in mqtt_mock.async_publish.call_args_list
                if c.args[0] == f"alertline/accepted/{alert_id}"]
    assert accepted == [{"id": alert_id, "state": "accepted", "deliveries": 2,
                         "duplicate": False}]

    assert _same_report(report, event)
    topics = {topic for topic, _ in received.messages}
    assert topics == {f"alertline/report/{alert_id}"}
    assert len(received.messages) == len(reports.of(alert_id))  # every change, in order
    assert [r["state"] for _, r in received.messages] == [e["state"] for e in
                                                          reports.of(alert_id)]
    published = [c for c in mqtt_mock.async_publish.call_args_list
                 if c.args[0].startswith(("alertline/report/", "alertline/accepted/"))]
    assert {(c.args[2], c.args[3]) for c in published} == {(1, False)}
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_base_topic_from_the_options(hass: HomeAssistant, mqtt_mock: MqttMockHAClient,
                                           reports: Reports) -> None:
    received = await _subscribe(hass, "home/alerts/report/#")
    entry = make_entry(hass, options={"mqtt_base_topic": "home/alerts"})
    await setup_entry(hass, entry)

    alert_id = await _send(hass, target=["+491701234560"])

    report = await received.final(alert_id)
    assert report["state"] == "delivered"
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_reports_wait_in_the_outbox_while_mqtt_is_down(
        hass: HomeAssistant, mqtt_mock: MqttMockHAClient, reports: Reports) -> None:
    received = await _subscribe(hass, "alertline/report/#")
    entry = make_entry(hass)
    await setup_entry(hass, entry)
    real_publish = mqtt_mock.async_publish.side_effect
    mqtt_mock.async_publish.side_effect = HomeAssistantError("broker unreachable")

    alert_id = await _send(hass, target=["+491701234560"])
    await reports.wait(alert_id)
    await hass.async_block_till_done()
    assert received.messages == []
    queued = [topic for _, topic, _, _ in await entry.runtime_data.engine.store.outbox()]
    assert queued == [f"alertline/accepted/{alert_id}",
                      *[f"alertline/report/{alert_id}"] * len(reports.of(alert_id))]

    mqtt_mock.async_publish.side_effect = real_publish
    async_dispatcher_send(hass, MQTT_CONNECTION_STATE, True)  # the broker is back
    report = await received.final(alert_id)

    assert report["state"] == "delivered"
    assert [r["state"] for _, r in received.messages] == [e["state"] for e in
                                                          reports.of(alert_id)]
    await hass.async_block_till_done()
    assert await entry.runtime_data.engine.store.outbox() == []
    assert await hass.config_entries.async_unload(entry.entry_id)


class PahoSubscriber:
    """An independent MQTT client (paho, its own thread) that collects what reaches the broker."""

    def __init__(self, port: int, topic: str, loop: asyncio.AbstractEventLoop,
                 received: Received, *, persistent: bool = False) -> None:
        self._subscribed = threading.Event()
        # a persistent session: the broker keeps what arrives while this client is away
        self._client = paho.Client(CallbackAPIVersion.VERSION2, client_id="verifier",
                                   clean_session=not persistent)
        self._client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        def on_message(_client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
            loop.call_soon_threadsafe(received.add, msg.topic, msg.payload)

        self._client.on_message = on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()

    def wait_subscribed(self) -> bool:
        """Block (in an executor) until the broker confirmed the subscription."""
        return self._subscribed.wait(10)

    def stop(self) -> None:
        """Disconnect and join the network thread."""
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path, socket_enabled: None) -> Iterator[Mosquitto]:
    """A real Mosquitto broker on a free loopback port."""
    server = Mosquitto(tmp_path / "mosquitto")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def ha_mqtt(hass: HomeAssistant, broker: Mosquitto,
                  mock_hass_config: None) -> AsyncIterator[MockConfigEntry]:
    """Home Assistant's own MQTT integration, connected to the real broker."""
    # no birth message: Home Assistant publishes it a moment after connecting, and a test that
    # stops the broker then would see Home Assistant's own publish fail
    entry = MockConfigEntry(domain=mqtt.DOMAIN, data={"broker": broker.host,
                                                      "port": broker.port},
                            options={"birth_message": {}}, version=1, minor_version=2)
    entry.add_to_hass(hass)
    connected: asyncio.Future[bool] = hass.loop.create_future()

    @callback
    def on_status(state: bool) -> None:
        if state and not connected.done():
            connected.set_result(True)

    unsubscribe = mqtt.async_subscribe_connection_status(hass, on_status)
    assert await hass.config_entries.async_setup(entry.entry_id)
    if not mqtt.is_connected(hass):
        await asyncio.wait_for(connected, 10)
    unsubscribe()
    yield entry
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_reports_reach_a_real_mosquitto_broker(
        hass: HomeAssistant, broker: Mosquitto, ha_mqtt: MockConfigEntry,
        reports: Reports) -> None:
    independent = Received()
    subscriber = PahoSubscriber(broker.port, "alertline/report/#", hass.loop, independent)
    try:
        assert await hass.async_add_executor_job(subscriber.wait_subscribed)
        through_ha = await _subscribe(hass, "alertline/report/#")
        entry = make_entry(hass)
        await setup_entry(hass, entry)
        assert ha_mqtt.state is ConfigEntryState.LOADED

        alert_id = await _send(hass, target=["alice", "bob"])
        report = await independent.final(alert_id)
        seen_by_ha = await through_ha.final(alert_id)
        event = await reports.wait(alert_id)
        await hass.async_block_till_done()

        assert _same_report(report, event)
        assert report == seen_by_ha
        assert report["state"] == "delivered"
        assert {topic for topic, _ in independent.messages} == {f"alertline/report/{alert_id}"}
        assert len(independent.messages) == len(reports.of(alert_id))
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await hass.async_add_executor_job(subscriber.stop)


async def _connection(hass: HomeAssistant, connected: bool) -> None:
    """Return once Home Assistant's MQTT client is (dis)connected."""
    changed: asyncio.Future[None] = hass.loop.create_future()

    @callback
    def on_status(state: bool) -> None:
        if state is connected and not changed.done():
            changed.set_result(None)

    unsubscribe = mqtt.async_subscribe_connection_status(hass, on_status)
    try:
        if mqtt.is_connected(hass) is not connected:
            await asyncio.wait_for(changed, 10)
    finally:
        unsubscribe()


async def test_reports_queued_while_the_broker_is_down_are_published_once(
        hass: HomeAssistant, broker: Mosquitto, ha_mqtt: MockConfigEntry,
        reports: Reports) -> None:
    independent = Received()
    subscriber = PahoSubscriber(broker.port, "alertline/#", hass.loop, independent,
                                persistent=True)
    try:
        assert await hass.async_add_executor_job(subscriber.wait_subscribed)
        entry = make_entry(hass)
        await setup_entry(hass, entry)
        # Home Assistant retries the broker every 0.1 s instead of every 10 s
        with patch("homeassistant.components.mqtt.client.RECONNECT_INTERVAL_SECONDS", 0.1):
            await hass.async_add_executor_job(broker.stop)
            await _connection(hass, False)

            alert_id = await _send(hass, target=["alice", "bob"])
            await reports.wait(alert_id)
            await hass.async_block_till_done()
            assert len(reports.of(alert_id)) >= 3  # several reports, each a try to publish

            await hass.async_add_executor_job(broker.start)
            await _connection(hass, True)
        await independent.final(alert_id)
        await hass.async_block_till_done()
        assert await entry.runtime_data.engine.store.outbox() == []
        # a marker published after the outbox is empty: whatever was sent before it has arrived
        await mqtt.async_publish(hass, "alertline/report/marker",
                                 json.dumps({"id": "marker", "final": True}), 1)
        await independent.final("marker")

        published = [(topic.split("/")[1], r["state"]) for topic, r in independent.messages
                     if r["id"] == alert_id]
        assert published == [("accepted", "accepted"),
                             *(("report", e["state"]) for e in reports.of(alert_id))]
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        await hass.async_add_executor_job(subscriber.stop)
