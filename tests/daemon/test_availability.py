"""Availability of the real ``alertline run`` process: online, last will on kill -9, clean exit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from tests.daemon.harness import MQTT_PASSWORD, DaemonProcess, MqttProbe, base_config
from tests.mosquitto import Mosquitto, running_mosquitto

ProbeFactory = Callable[..., Awaitable[MqttProbe]]


def _status(payload: bytes) -> Callable[..., bool]:
    return lambda message: message.payload == payload


async def test_online_then_offline_by_last_will_when_killed(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe,
        probe_factory: ProbeFactory) -> None:
    daemon = DaemonProcess(base_config(tmp_path, broker), tmp_path)
    try:
        await daemon.start()
        await probe.expect("alertline/status", _status(b"online"), within=30)

        daemon.kill()
        assert await daemon.wait() == -9
        await probe.expect("alertline/status", _status(b"offline"))
    finally:
        await daemon.stop()

    late = await probe_factory()  # Home Assistant starting now sees the daemon as unavailable
    await late.subscribe("alertline/status")
    retained = await late.expect("alertline/status")
    assert (retained.payload, retained.retain) == (b"offline", True)


async def test_sigterm_finishes_the_work_publishes_offline_and_exits_0(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe) -> None:
    daemon = DaemonProcess(base_config(tmp_path, broker), tmp_path)
    try:
        await daemon.start()
        await probe.expect("alertline/status", _status(b"online"), within=30)
        await probe.publish("alertline/send", json.dumps(
            {"id": "before-exit", "to": "alice", "message": "x"}))
        await probe.expect("alertline/accepted/before-exit")

        daemon.terminate()
        code = await daemon.wait()
    finally:
        await daemon.stop()

    assert code == 0
    await probe.expect("alertline/status", _status(b"offline"))
    assert "stopped" in daemon.log and "Traceback" not in daemon.log


async def test_the_daemon_waits_for_its_broker_and_connects_when_it_appears(
        tmp_path: Path) -> None:
    broker = Mosquitto(workdir=tmp_path / "broker", username="alertline",
                       password=MQTT_PASSWORD)
    config = base_config(tmp_path, broker, mqtt={
        "username": "alertline", "password": "${MQTT_PASSWORD}"})
    daemon = DaemonProcess(config, tmp_path, env={"MQTT_PASSWORD": MQTT_PASSWORD})
    try:
        await daemon.start()
        await _logged(daemon, "cannot connect to the MQTT broker")  # no broker yet: it retries
        broker.start()
        probe = await MqttProbe(broker.host, broker.port, username="alertline",
                                password=MQTT_PASSWORD).connect()
        try:
            await probe.subscribe("alertline/status")
            await probe.expect("alertline/status", _status(b"online"), within=30)
        finally:
            await probe.close()
    finally:
        await daemon.stop()
        broker.stop()
    assert MQTT_PASSWORD not in daemon.log


async def test_a_wrong_password_is_reported_without_the_password(
        tmp_path: Path) -> None:
    with running_mosquitto(tmp_path / "broker", username="alertline",
                           password=MQTT_PASSWORD) as broker:
        wrong = "not-the-password-123"
        daemon = DaemonProcess(base_config(tmp_path, broker, mqtt={
            "username": "alertline", "password": wrong}), tmp_path)
        try:
            await daemon.start()
            await _logged(daemon, "Not authorized")
        finally:
            await daemon.stop()
    assert wrong not in daemon.log


async def _logged(daemon: DaemonProcess, text: str) -> None:
    """Until the daemon's log (another process's file) contains ``text``; bounded."""
    async def found() -> None:
        while text not in daemon.log:  # noqa: ASYNC110 - another process's file
            await asyncio.sleep(0.05)
    await asyncio.wait_for(found(), 30)
