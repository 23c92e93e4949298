"""Home Assistant MQTT discovery: configs, their removal, Home Assistant's birth, state topics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from alertline.config.sections import Config
from alertline.daemon import Daemon
from alertline.mqtt.discovery import discovery_messages, node_id
from alertline.mqtt.topics import Topics
from tests.daemon.harness import ROOT, MqttProbe, daemon_config
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]
HA_PYTHON = ROOT / ".venv" / "bin" / "python"
NODE = "alertline-test"


async def _configs(probe: MqttProbe, count: int) -> dict[str, dict[str, object]]:
    found: dict[str, dict[str, object]] = {}
    while len(found) < count:
        message = await probe.expect("homeassistant/+/+/+/config", lambda m: bool(m.payload))
        found[message.topic] = message.json()
    return found


async def test_a_notify_entity_per_route_and_sensors_on_one_device(
        tmp_path: Path, broker: Mosquitto, probe_factory: Callable[..., Awaitable[MqttProbe]],
        start_daemon: StartDaemon) -> None:
    config = daemon_config(tmp_path, broker)
    expected = discovery_messages(config, Topics(), node=NODE)
    probe = await probe_factory()
    await probe.subscribe("homeassistant/#", "alertline/#")
    await start_daemon(config)

    configs = await _configs(probe, len(expected))

    leak = configs[f"homeassistant/notify/{NODE}/leak/config"]
    assert leak["command_topic"] == "alertline/send/leak"
    assert leak["availability_topic"] == "alertline/status"
    assert configs[f"homeassistant/notify/{NODE}/door/config"]["command_topic"] == \
        "alertline/send/door"
    assert configs[f"homeassistant/sensor/{NODE}/open_alerts/config"]["state_topic"] == \
        "alertline/stats"
    assert configs[f"homeassistant/sensor/{NODE}/leak_last_alert/config"]["state_topic"] == \
        "alertline/last_report/leak"
    assert len({json.dumps(c["device"]) for c in configs.values()}) == 1
    assert len({c["unique_id"] for c in configs.values()}) == len(configs)
    stats = (await probe.expect("alertline/stats")).json()
    assert stats["open_alerts"] == 0 and "deliveries_succeeded" in stats
    late = await probe_factory()  # Home Assistant starting later finds every config retained
    await late.subscribe("homeassistant/#")
    assert await _configs(late, len(expected)) == configs
    assert all(m.retain for m in late.received)


async def test_the_notify_entity_command_topic_sends_an_alert(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    """What Home Assistant's MQTT notify entity publishes: the message as plain text."""
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/send/door", "Front door open")

    accepted = (await probe.expect("alertline/accepted/+")).json()
    await probe.final_report(accepted["id"])
    last = await probe.expect("alertline/last_report/door",
                              lambda m: m.json()["state"] == "delivered")

    assert last.json()["message"] == "Front door open" and last.json()["id"] == accepted["id"]
    late = await MqttProbe(broker.host, broker.port).connect()
    try:
        await late.subscribe("alertline/last_report/door")
        retained = await late.expect("alertline/last_report/door")
    finally:
        await late.close()
    assert retained.retain and retained.json()["state"] == "delivered"


async def test_home_assistant_birth_republishes_discovery_and_availability(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    config = daemon_config(tmp_path, broker)
    count = len(discovery_messages(config, Topics(), node=NODE))
    await probe.subscribe("homeassistant/+/+/+/config")
    await start_daemon(config)
    await _configs(probe, count)
    await probe.expect("alertline/status", lambda m: m.payload == b"online")

    await probe.publish("homeassistant/status", "online")

    again = await _configs(probe, count)
    assert len(again) == count
    await probe.expect("alertline/status", lambda m: m.payload == b"online")


async def test_a_route_removed_from_the_config_is_removed_from_home_assistant(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await probe.subscribe("homeassistant/#")
    first = await start_daemon(daemon_config(tmp_path, broker))
    await _configs(probe, len(discovery_messages(first.config, Topics(), node=NODE)))
    await first.stop()

    await start_daemon(daemon_config(tmp_path, broker, routes={
        "leak": {"to": ["oncall"], "channel": ["sms", "voice"]}}))

    removed = {(await probe.expect("homeassistant/#", lambda m: m.payload == b"")).topic
               for _ in range(2)}
    assert removed == {f"homeassistant/notify/{NODE}/door/config",
                       f"homeassistant/sensor/{NODE}/door_last_alert/config"}
    assert probe.take("homeassistant/#", lambda m: m.payload == b"") is None


async def test_turning_discovery_off_removes_every_config(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await probe.subscribe("homeassistant/#")
    first = await start_daemon(daemon_config(tmp_path, broker))
    count = len(discovery_messages(first.config, Topics(), node=NODE))
    await _configs(probe, count)
    await first.stop()

    await start_daemon(daemon_config(tmp_path, broker, mqtt={"discovery": False}))

    removed = {(await probe.expect("homeassistant/#", lambda m: m.payload == b"")).topic
               for _ in range(count)}
    assert len(removed) == count


async def test_the_configs_pass_home_assistants_own_discovery_schemas(tmp_path: Path) -> None:
    config = daemon_config(
        tmp_path, None,
        schedules={"primary": {"time_zone": "Europe/Berlin", "rotations": [
            {"members": ["alice", "bob"], "start": "2026-01-05T09:00", "shift": "1w"}]}},
        heartbeats={"backup": {"period": "1d", "grace": "2h", "route": "door",
                               "message": "Nightly backup did not report"}})
    messages = discovery_messages(config, Topics(), node=node_id("alertline test/1"))
    # a sensor per schedule (who is on call) and per heartbeat (up/down)
    oncall = json.loads(messages["homeassistant/sensor/alertline_test_1/oncall_primary/config"])
    assert oncall["state_topic"] == "alertline/oncall/primary"
    beat = json.loads(messages["homeassistant/sensor/alertline_test_1/heartbeat_backup/config"])
    assert beat["state_topic"] == "alertline/heartbeat/backup/state"
    payload = json.dumps({topic: json.loads(body) for topic, body in messages.items()})

    process = await asyncio.create_subprocess_exec(
        str(HA_PYTHON), str(Path(__file__).with_name("ha_discovery_check.py")),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(payload.encode()), 120)

    assert process.returncode == 0, err.decode()[-2000:]
    results = json.loads(out)
    assert set(results) == set(messages)
    assert {topic: result for topic, result in results.items() if result != "ok"} == {}
    assert all("/alertline_test_1/" in topic for topic in messages)
