"""Alertmanager webhook payloads: parsing, and firing/resolved over the MQTT topic."""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from alertline.config.sections import Config
from alertline.daemon import Daemon
from alertline.errors import ValidationError
from alertline.intake.alertmanager import parse_notification
from alertline.model import Priority
from tests.daemon.harness import MqttProbe, daemon_config
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]
STARTS = "2026-01-01T10:00:00.123456789Z"
STARTS_EPOCH = 1767261600


def disk_alert(instance: str = "db1", fingerprint: str | None = "a1b2c3d4e5f60718",
               status: str = "firing", **annotations: str) -> dict[str, Any]:
    """One alert as Alertmanager sends it."""
    alert: dict[str, Any] = {
        "status": status,
        "labels": {"alertname": "DiskFull", "instance": instance, "severity": "critical"},
        "annotations": annotations if annotations else {
            "summary": f"Disk full on {instance}", "description": "/var is 99% full"},
        "startsAt": STARTS, "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph", "fingerprint": fingerprint}
    if fingerprint is None:
        del alert["fingerprint"]
    return alert


def notification(*alerts: dict[str, Any], status: str = "firing") -> dict[str, Any]:
    """A webhook payload (version 4) around ``alerts``."""
    return {"version": "4", "groupKey": '{}:{alertname="DiskFull"}', "truncatedAlerts": 0,
            "status": status, "receiver": "alertline", "groupLabels": {"alertname": "DiskFull"},
            "commonLabels": {"alertname": "DiskFull"}, "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093", "alerts": list(alerts)}


def parse(data: Any, route: str = "leak") -> Any:
    return parse_notification(json.dumps(data).encode(), route=route, max_bytes=1 << 22)


def test_a_firing_alert_becomes_a_request_keyed_by_fingerprint_and_start() -> None:
    parsed = parse(notification(disk_alert()))

    [firing] = parsed.firing
    assert firing.alert_id == f"am-leak-a1b2c3d4e5f60718-{STARTS_EPOCH}"
    assert firing.key == "alertmanager:leak:a1b2c3d4e5f60718:2026-01-01T10:00:00.123456+00:00"
    assert firing.request.message == "Disk full on db1 — /var is 99% full"
    assert firing.request.title == "DiskFull"
    assert firing.request.route == "leak"
    assert firing.request.priority is Priority.HIGH
    assert parsed.resolved == () and parsed.receiver == "alertline"


def test_without_annotations_the_labels_make_the_message() -> None:
    alert = disk_alert()
    alert["annotations"] = {}
    alert["labels"]["severity"] = "warning"

    [firing] = parse(notification(alert)).firing

    assert firing.request.message == "DiskFull is firing (instance=db1, severity=warning)"
    assert firing.request.priority is None  # the route's priority applies


def test_a_resolved_alert_names_the_alert_its_firing_created() -> None:
    firing = parse(notification(disk_alert())).firing[0]
    resolved = parse(notification(disk_alert(status="resolved"), status="resolved"))

    assert resolved.firing == () and resolved.resolved == (firing.alert_id,)


def test_without_a_fingerprint_the_labels_identify_the_alert() -> None:
    one = parse(notification(disk_alert(fingerprint=None))).firing[0]
    same = parse(notification(disk_alert(fingerprint=None))).firing[0]
    other = parse(notification(disk_alert("db2", fingerprint=None))).firing[0]

    assert one.alert_id == same.alert_id != other.alert_id


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    data = notification(disk_alert())
    change(data)
    return data


@pytest.mark.parametrize(("data", "field", "code"), [
    (["not", "an", "object"], "payload", "type"),
    ({"version": "4"}, "alerts", "missing"),
    (_broken(lambda d: d.update(version="3")), "version", "invalid"),
    (_broken(lambda d: d["alerts"][0].update(status="pending")), "alerts[0].status", "invalid"),
    (_broken(lambda d: d["alerts"][0]["labels"].update(instance=7)),
     "alerts[0].labels.instance", "type"),
    (_broken(lambda d: d["alerts"][0].update(startsAt="yesterday")), "alerts[0].startsAt",
     "invalid"),
    (_broken(lambda d: d["alerts"][0].update(fingerprint="../../x")), "alerts[0].fingerprint",
     "invalid"),
    (_broken(lambda d: d["alerts"].append("x")), "alerts[1]", "type"),
    (_broken(lambda d: d.update(alerts=[disk_alert()] * 1001)), "alerts", "invalid"),
])
def test_invalid_payloads_name_the_field(data: Any, field: str, code: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse(data)
    assert (caught.value.field, caught.value.code) == (field, code)


def test_bytes_that_are_not_a_payload_are_refused_with_the_reason() -> None:
    for payload, code in ((b"", "empty"), (b"\xff", "encoding"), (b"{", "json"),
                          (b"x" * 70000, "too_large")):
        with pytest.raises(ValidationError) as caught:
            parse_notification(payload, route="leak", max_bytes=65536)
        assert caught.value.code == code
    with pytest.raises(ValidationError) as bad_route:
        parse_notification(json.dumps(notification()).encode(), route="a b", max_bytes=65536)
    assert bad_route.value.field == "route"


async def test_firing_then_resolved_over_mqtt(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.subscribe("alertline/reply/#")
    firing = notification(disk_alert("db1", "f1"), disk_alert("db2", "f2"))
    await probe.publish("alertline/alertmanager/door", json.dumps(firing),
                        response_topic="alertline/reply/am", correlation=b"1")
    answer = (await probe.expect("alertline/reply/am", lambda m: m.correlation == b"1")).json()
    first = f"am-door-f1-{STARTS_EPOCH}"
    await probe.final_report(first)

    # Alertmanager repeats the notification every repeat_interval: nobody is called again
    await probe.publish("alertline/alertmanager/door", json.dumps(firing),
                        response_topic="alertline/reply/am", correlation=b"2")
    repeat = (await probe.expect("alertline/reply/am", lambda m: m.correlation == b"2")).json()
    resolved = copy.deepcopy(firing)
    resolved["alerts"][0]["status"] = "resolved"
    resolved["alerts"][0]["endsAt"] = "2026-01-01T10:30:00Z"
    await probe.publish("alertline/alertmanager/door", json.dumps(resolved))
    report = await probe.expect(f"alertline/report/{first}", lambda m: m.json()["resolved"])

    assert answer["accepted"] == [first, f"am-door-f2-{STARTS_EPOCH}"]
    assert repeat["accepted"] == [] and len(repeat["duplicates"]) == 2
    assert report.json()["state"] == "resolved"
    accepted_topics = {m.topic for m in probe.received if "/accepted/" in m.topic}
    assert accepted_topics == {f"alertline/accepted/{first}",
                               f"alertline/accepted/am-door-f2-{STARTS_EPOCH}"}
    [report_first] = [m.json() for m in probe.received
                      if m.topic == f"alertline/report/{first}" and m.json()["final"]][:1]
    assert report_first["title"] == "DiskFull" and report_first["priority"] == "high"


async def test_an_unknown_route_is_refused_before_anything_is_sent(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/alertmanager/nowhere", json.dumps(notification(disk_alert())))

    error = (await probe.expect("alertline/error")).json()

    assert (error["error"], error["field"]) == ("unknown_route", "route")
    assert daemon.engine is not None and daemon.engine.metrics["alerts_received"] == 0
