"""The daemon's on-call side over a real Mosquitto and real HTTP: schedules published retained,
heartbeats pinged by MQTT, HTTP and Alertmanager's Watchdog, with state and metrics."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from alertline.config.sections import Config
from alertline.daemon import Daemon
from tests.daemon.harness import AM_TOKEN, MqttProbe, daemon_config
from tests.mosquitto import Mosquitto
from tests.oncall.test_cli_oncall import ISSUE_YAML

StartDaemon = Callable[[Config], Awaitable[Daemon]]
HB_TOKEN = "hb-token-0123456789ab"


def oncall_config(tmp_path: Path, broker: Mosquitto) -> Config:
    return daemon_config(
        tmp_path, broker,
        schedules={"primary": {"time_zone": "Europe/Berlin", "rotations": [
            {"members": ["alice"], "start": "2026-01-01T09:00", "shift": "1w"}]}},
        heartbeats={"backup": {"period": "1d", "grace": "2h", "route": "door",
                               "message": "Nightly backup did not report",
                               "token": HB_TOKEN},
                    "watchdog": {"period": "5m", "grace": "5m", "to": ["alice"]}})


def watchdog_notification() -> dict[str, Any]:
    return {"version": "4", "status": "firing", "receiver": "alertline", "groupKey": "{}:{}",
            "groupLabels": {}, "commonLabels": {"alertname": "Watchdog"},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
            "alerts": [{"status": "firing", "labels": {"alertname": "Watchdog"},
                        "annotations": {}, "startsAt": "2026-01-01T10:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
                        "fingerprint": "00aa11bb22cc33dd"}]}


async def test_schedule_is_published_retained(tmp_path: Path, broker: Mosquitto,
                                              probe: MqttProbe,
                                              start_daemon: StartDaemon) -> None:
    await start_daemon(oncall_config(tmp_path, broker))
    shown = (await probe.expect("alertline/oncall/primary")).json()
    assert (shown["schedule"], shown["on_call"]) == ("primary", ["alice"])
    assert (shown["until"], shown["next"]) == (None, []), "alice alone: no handoff in sight"
    late = await MqttProbe(broker.host, broker.port).connect()
    try:
        await late.subscribe("alertline/oncall/+")
        retained = await late.expect("alertline/oncall/primary", lambda m: m.retain)
        assert retained.json()["on_call"] == ["alice"]
    finally:
        await late.close()


async def test_heartbeats_pinged_by_mqtt_http_and_watchdog(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe,
        start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(oncall_config(tmp_path, broker))
    assert daemon.http is not None and daemon.oncall is not None
    heartbeats = daemon.oncall.heartbeats
    first = await probe.expect("alertline/heartbeat/backup/state")
    assert (first.json()["state"], first.json()["last_ping"]) == ("up", None)

    await probe.publish("alertline/heartbeat/backup", b"")
    pinged = (await probe.expect("alertline/heartbeat/backup/state",
                                 lambda m: m.json()["last_ping"] is not None)).json()
    assert pinged["state"] == "up"
    assert heartbeats.states["backup"].pings == 1

    base = f"http://127.0.0.1:{daemon.http.port}"
    assert daemon.oncall.watch is not None
    await daemon.oncall.watch.check_all()
    async with httpx.AsyncClient() as http:
        health = (await http.get(f"{base}/healthz")).json()
        refused = await http.post(f"{base}/heartbeat/backup",
                                  headers={"Authorization": "Bearer wrong-token-123456"})
        answer = await http.post(f"{base}/heartbeat/backup",
                                 headers={"Authorization": f"Bearer {HB_TOKEN}"})
        unknown = await http.post(f"{base}/heartbeat/nope",
                                  headers={"Authorization": f"Bearer {HB_TOKEN}"})
        watchdog = await http.post(f"{base}/alertmanager/watchdog",
                                   json=watchdog_notification(),
                                   headers={"Authorization": f"Bearer {AM_TOKEN}"})
        metrics = (await http.get(f"{base}/metrics")).text
    assert refused.status_code == 401 and HB_TOKEN not in refused.text
    assert (answer.status_code, answer.json()["state"]) == (200, "up")
    assert unknown.status_code == 404
    assert watchdog.status_code == 200
    assert heartbeats.states["backup"].pings == 2
    assert heartbeats.states["watchdog"].pings == 1
    assert 'alertline_heartbeat_up{heartbeat="backup"} 1' in metrics
    assert 'alertline_provider_up{provider="sim"} 1' in metrics
    assert (health["status"], health["providers"]["sim"]["up"]) == ("ok", True)

    await probe.publish("alertline/alertmanager/watchdog", json.dumps(watchdog_notification()))
    await probe.expect("alertline/heartbeat/watchdog/state",
                       lambda m: heartbeats.states["watchdog"].pings == 2)
    assert daemon.engine is not None and daemon.engine.metrics["alerts_received"] == 0, \
        "the Watchdog never pages"


async def test_the_issue_configuration_runs_with_its_calendar_missing(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe,
        start_daemon: StartDaemon) -> None:
    issue = yaml.safe_load(ISSUE_YAML)
    config = daemon_config(
        tmp_path, broker, **issue,
        contacts={n: {"phone": f"+4917012345{i}0"} for i, n in enumerate(
            ["alice", "bob", "carol", "dave"])},
        routes={"ops": {"to": ["schedule:primary"]}, "ops-fallback": {"to": ["alice"]}})
    await start_daemon(config)
    calendar = (await probe.expect("alertline/oncall/calendar")).json()
    primary = (await probe.expect("alertline/oncall/primary")).json()
    assert calendar["on_call"] == [], "a calendar that cannot be read pages nobody from it"
    assert primary["on_call"] and primary["until"] is not None
    state = (await probe.expect("alertline/heartbeat/backup/state")).json()
    assert state["state"] == "up"
