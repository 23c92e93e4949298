"""Reports through the outbox: nothing lost when the broker goes away or the daemon restarts."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from alertline.config.sections import Config
from alertline.daemon import Daemon
from alertline.store.sqlite import SqliteStore
from tests.daemon.harness import MqttProbe, daemon_config
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]
ProbeFactory = Callable[..., Awaitable[MqttProbe]]


async def _outbox_rows(path: Path) -> int:
    store = SqliteStore(path)
    await store.open()
    try:
        return len(await store.outbox(10_000))
    finally:
        await store.close()


async def test_a_broker_restart_mid_stream_loses_nothing(
        tmp_path: Path, broker: Mosquitto, probe_factory: ProbeFactory,
        start_daemon: StartDaemon) -> None:
    listener = await probe_factory(client_id="listener", persistent=True)
    await listener.subscribe("alertline/report/+", "alertline/accepted/+")
    sender = await probe_factory()
    daemon = await start_daemon(daemon_config(tmp_path, broker))
    ids = [f"stream-{index}" for index in range(60)]
    for alert_id in ids[:30]:
        await sender.publish("alertline/send", json.dumps(
            {"id": alert_id, "to": "alice", "message": "flowing"}))
    await listener.expect("alertline/accepted/stream-5")

    broker.stop()  # a graceful stop: Mosquitto saves the sessions and what is queued in them
    broker.start()
    await sender.publish("alertline/send", json.dumps(  # paho reconnected the sender by itself
        {"id": ids[30], "to": "alice", "message": "flowing"}))
    for alert_id in ids[31:]:
        await sender.publish("alertline/send", json.dumps(
            {"id": alert_id, "to": "alice", "message": "flowing"}))

    finals = {alert_id: await listener.final_report(alert_id, within=30) for alert_id in ids}
    assert {report["state"] for report in finals.values()} == {"delivered"}
    assert daemon.bridge is not None and daemon.bridge.stats["disconnects"] >= 1
    # acks on their way when the broker stopped are redelivered: recognised by id, not resent
    assert [len(r["deliveries"]) for r in finals.values()] == [1] * len(ids)
    assert {r["deliveries"][0]["attempts"] for r in finals.values()} == {1}


async def test_reports_made_while_the_broker_is_down_survive_a_daemon_restart(
        tmp_path: Path, broker: Mosquitto, probe_factory: ProbeFactory,
        start_daemon: StartDaemon) -> None:
    listener = await probe_factory(client_id="listener", persistent=True)
    await listener.subscribe("alertline/report/+")
    config = daemon_config(tmp_path, broker, providers={"sim": {
        "type": "simulator", "sms_delay": 0.5, "poll_interval": 0.05, "deadline": 5}})
    daemon = await start_daemon(config)
    sender = await probe_factory()
    await sender.publish("alertline/send", json.dumps(
        {"id": "offline-1", "to": "alice", "message": "delivered while the broker is away"}))
    await listener.expect("alertline/report/offline-1",
                          lambda m: m.json()["state"] == "in_progress")

    broker.stop()
    assert daemon.engine is not None
    final = await daemon.engine.wait_final("offline-1", timeout=10)
    await daemon.stop()  # cannot publish the final report: it stays in the outbox
    assert final.state.value == "delivered"
    assert await _outbox_rows(Path(config.store_path)) >= 1

    broker.start()
    second = await start_daemon(config)

    report = await listener.final_report("offline-1")
    assert report["state"] == "delivered"
    assert second.publisher is not None and await second.publisher.flush(10)
    assert (await second.store.stats())["outbox"] == 0 if second.store else False
