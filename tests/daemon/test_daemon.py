"""The daemon end to end, in process, against a real Mosquitto: the MQTT contract of DESIGN.md."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from alertline.config.sections import Config
from alertline.daemon import Daemon
from tests.daemon.harness import AM_TOKEN, MqttProbe, Received, daemon_config
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]


def _states(probe: MqttProbe, alert_id: str) -> list[str]:
    return [m.json()["state"] for m in probe.received
            if m.topic == f"alertline/report/{alert_id}"]


async def test_sms_alert_is_accepted_then_reported_until_delivered(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/send", json.dumps(
        {"id": "leak-1", "to": "+491701234567", "message": "Water leak in the basement"}))

    accepted = await probe.expect("alertline/accepted/leak-1")
    report = await probe.final_report("leak-1")

    assert accepted.json() == {"id": "leak-1", "state": "accepted", "deliveries": 1,
                               "duplicate": False}
    assert report["state"] == "delivered"
    [delivery] = report["deliveries"]
    assert (delivery["to"], delivery["channel"], delivery["provider_status"]) == \
        ("+491701234567", "sms", "DELIVERED")
    states = _states(probe, "leak-1")
    assert states[0] == "accepted" and "in_progress" in states and states[-1] == "delivered"


async def test_voice_alerts_report_busy_and_expired_deliveries(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/send", json.dumps(
        {"id": "call-1", "to": ["+491701234568", "+491701234569", "+491701234562"],
         "channel": "voice", "message": "Smoke detected"}))

    report = await probe.final_report("call-1")

    by_number = {d["to"]: d for d in report["deliveries"]}
    assert {d["channel"] for d in report["deliveries"]} == {"voice"}
    assert by_number["+491701234568"]["state"] == "failed"
    assert by_number["+491701234568"]["reason"] == "busy"
    assert by_number["+491701234569"]["state"] == "expired"
    assert by_number["+491701234562"]["provider_status"] == "ANSWERED"
    assert report["state"] == "partially_delivered"


async def test_plain_text_on_a_route_topic_uses_the_route(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/send/leak", "Basement is flooded")

    accepted = (await probe.expect("alertline/accepted/+")).json()
    report = await probe.final_report(accepted["id"])

    assert accepted["deliveries"] == 4  # oncall = alice + bob, on sms and voice
    assert report["route"] == "leak" and report["message"] == "Basement is flooded"
    assert sorted((d["contact"], d["channel"]) for d in report["deliveries"]) == [
        ("alice", "sms"), ("alice", "voice"), ("bob", "sms"), ("bob", "voice")]
    assert report["state"] == "delivered"


async def test_v5_response_topic_gets_the_accepted_answer_or_the_error(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.subscribe("alertline/reply/#")
    await probe.publish("alertline/send", json.dumps({"to": "alice", "message": "hi"}),
                        response_topic="alertline/reply/me", correlation=b"req-1")
    await probe.publish("alertline/send", json.dumps({"to": "nobody", "message": "hi"}),
                        response_topic="alertline/reply/me", correlation=b"req-2")

    ok = await probe.expect("alertline/reply/me", lambda m: m.correlation == b"req-1")
    bad = await probe.expect("alertline/reply/me", lambda m: m.correlation == b"req-2")

    assert ok.json()["state"] == "accepted" and ok.json()["deliveries"] == 1
    assert bad.json()["error"] == "unknown_contact" and bad.json()["field"] == "to[0]"


async def test_a_repeated_id_is_not_sent_twice_but_answered(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(daemon_config(tmp_path, broker))
    request = json.dumps({"id": "same-1", "to": "+491701234567", "message": "once"})
    await probe.publish("alertline/send", request)
    await probe.final_report("same-1")
    await probe.publish("alertline/send", request)

    repeat = await probe.expect("alertline/accepted/same-1", lambda m: m.json()["duplicate"])

    assert repeat.json()["deliveries"] == 1
    assert daemon.engine is not None
    assert daemon.engine.metrics["provider_requests"] == 1


async def test_ack_right_after_send_applies_to_that_alert(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    # 9: the simulator never finishes the call, so only the ack ends the escalation
    await probe.publish("alertline/send", json.dumps(
        {"id": "page-1", "to": "+491701234569", "channel": "voice", "message": "Server down"}))
    await probe.publish("alertline/ack/page-1", json.dumps({"by": "alice"}))

    acked = await probe.expect("alertline/report/page-1",
                               lambda m: m.json()["state"] == "acknowledged")

    assert acked.json()["acknowledged"]["by"] == "alice"
    assert acked.json()["acknowledged"]["via"] == "mqtt"
    assert probe.take("alertline/error") is None


async def test_cancel_stops_what_is_not_sent_yet(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/send", json.dumps(
        {"id": "later-1", "to": "alice", "message": "Tomorrow",
         "not_before": (datetime.now(UTC) + timedelta(days=1)).isoformat()}))
    await probe.expect("alertline/accepted/later-1")
    await probe.publish("alertline/cancel/later-1", "")

    report = await probe.final_report("later-1")

    assert report["state"] == "cancelled" and report["cancelled"] is True
    assert [d["state"] for d in report["deliveries"]] == ["cancelled"]


async def test_ack_of_an_unknown_alert_is_an_error_naming_it(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/ack/no-such-alert", "")

    error = (await probe.expect("alertline/error")).json()

    assert error["id"] == "no-such-alert" and error["error"] == "not_found"
    assert error["topic"] == "alertline/ack/no-such-alert"
    assert "no-such-alert" in error["detail"]


BAD_INPUT = [
    # (topic, payload, error code, field)
    ("alertline/send", b'{"to": "+491701234567", "message": ', "json", "payload"),
    ("alertline/send", b'{"to": "alice", "message": "x", "bogus": 1}', "unknown_field", "bogus"),
    ("alertline/send", b'{"to": "alice", "message": 5}', "type", "message"),
    ("alertline/send", b'{"to": "alice", "message": "   "}', "empty", "message"),
    ("alertline/send", b"", "json", "payload"),
    ("alertline/send/leak", b"", "empty", "message"),
    ("alertline/send/nope", b"plain text", "unknown_route", "route"),
    ("alertline/send", b'{"to": ["zed"], "message": "x"}', "unknown_contact", "to[0]"),
    ("alertline/send", b'{"to": ["+49123"], "message": "x"}', "invalid", "to[0]"),
    ("alertline/send", b'{"to": "alice", "message": "x", "priority": "urgent"}', "invalid",
     "priority"),
    ("alertline/send", b'{"to": "alice", "message": "' + b"x" * 2000 + b'"}', "too_large",
     "payload"),
    ("alertline/send", b'\xff\xfe{"to": "alice"}', "encoding", "payload"),
    ("alertline/send", b"{\"to\": " + b"[" * 1010, "json", "payload"),
    ("alertline/alertmanager/leak", b'{"alerts": "x"}', "type", "alerts"),
    ("alertline/alertmanager/leak", b'{"version": "4", "alerts": [{"status": "firing"}]}',
     "missing", "alerts[0].startsAt"),
    ("alertline/ack/some-id", b"{not json", "json", "payload"),
    ("alertline/cancel/some-id", b'{"who": "x"}', "unknown_field", "who"),
]


def _on_topic(topic: str) -> Callable[[Received], bool]:
    return lambda message: bool(message.json()["topic"] == topic)


async def test_bad_input_is_answered_on_the_error_topic_and_never_stops_the_daemon(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="alertline")
    await start_daemon(daemon_config(tmp_path, broker, mqtt={"max_payload_bytes": 1024}))
    for topic, payload, _, _ in BAD_INPUT:
        await probe.publish(topic, payload)

    errors = [(await probe.expect("alertline/error", _on_topic(topic))).json()
              for topic, *_ in BAD_INPUT]
    await probe.publish("alertline/send", json.dumps({"id": "still-ok", "to": "alice",
                                                      "message": "still here"}))
    await probe.expect("alertline/accepted/still-ok")

    assert [(e["error"], e["field"]) for e in errors] == \
        [(code, field) for _, _, code, field in BAD_INPUT]
    for error, (_, payload, _, _) in zip(errors, BAD_INPUT, strict=True):
        assert error["detail"].startswith(error["field"])
        assert len(error["payload_excerpt"]) <= 200
        assert error["payload_excerpt"] == payload[:200].decode("utf-8", errors="replace")
    rejected = [r for r in caplog.records if "rejected a message" in r.getMessage()]
    assert len(rejected) == len(BAD_INPUT)


async def test_rejected_messages_are_acknowledged_so_a_restart_does_not_replay_them(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    config = daemon_config(tmp_path, broker)
    first = await start_daemon(config)
    await probe.publish("alertline/send", b"{broken")
    await probe.expect("alertline/error")
    await first.stop()

    await start_daemon(config)
    await probe.publish("alertline/send", json.dumps({"id": "after", "to": "alice",
                                                      "message": "x"}))
    await probe.expect("alertline/accepted/after")

    assert probe.take("alertline/error") is None


async def test_secrets_stay_out_of_errors_and_logs(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="alertline")
    await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/send", json.dumps(
        {"to": "alice", "message": "x", "token": AM_TOKEN}))

    error = await probe.expect("alertline/error")

    assert AM_TOKEN not in error.payload.decode()
    assert "**REDACTED**" in error.json()["payload_excerpt"]
    assert AM_TOKEN not in caplog.text


async def test_messages_published_while_the_daemon_is_down_are_handled_when_it_is_back(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    config = daemon_config(tmp_path, broker)
    first = await start_daemon(config)
    await first.stop()  # the persistent session keeps the subscriptions and queues messages
    for index in range(5):
        await probe.publish("alertline/send", json.dumps(
            {"id": f"queued-{index}", "to": "alice", "message": "while down"}))

    await start_daemon(config)

    for index in range(5):
        assert (await probe.final_report(f"queued-{index}"))["state"] == "delivered"
