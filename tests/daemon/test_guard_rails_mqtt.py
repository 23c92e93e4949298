"""The guard rails over a real broker: a route topic cannot reroute an alert, a response topic
cannot make the daemon publish elsewhere, letters in a number are refused."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path

from alertline.config.sections import Config
from alertline.daemon import Daemon
from tests.daemon.harness import MqttProbe, daemon_config
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]
REPLY = "alertline/reply/me"


async def test_bypass_attempts_are_refused_on_the_error_topic(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.subscribe("victim/#")
    reroute = {"id": "v-1", "message": "x", "to": "+4915112345678", "channel": "voice",
               "provider": "sim"}
    await probe.publish("alertline/send/door", json.dumps(reroute), response_topic="victim/cmd",
                        correlation=b"1")
    await probe.publish("alertline/send/door", json.dumps(reroute), response_topic=REPLY,
                        correlation=b"2")
    await probe.publish("alertline/send", json.dumps(
        {"id": "v-3", "message": "x", "to": "+49170ABCDEF0"}), response_topic=REPLY,
        correlation=b"3")
    await probe.publish("alertline/send/door", json.dumps({"id": "v-4", "message": "x"}),
                        response_topic=REPLY, correlation=b"4")

    foreign = await probe.expect("alertline/error", lambda m: m.json()["id"] == "v-1")
    rerouted = await probe.expect(REPLY, lambda m: m.correlation == b"2")
    lettered = await probe.expect(REPLY, lambda m: m.correlation == b"3")
    accepted = await probe.expect(REPLY, lambda m: m.correlation == b"4")
    await probe.final_report("v-4")

    assert foreign.json()["field"] == "response_topic"
    assert rerouted.json()["field"] == "to"
    assert "routes.door.allow_override" in rerouted.json()["detail"]
    assert (lettered.json()["field"], lettered.json()["id"]) == ("to[0]", "v-3")
    assert "letters are not allowed" in lettered.json()["detail"]
    assert accepted.json()["state"] == "accepted"
    assert [m.topic for m in probe.received if m.topic.startswith("victim/")] == []
    assert probe.take("alertline/accepted/v-1") is None
