"""The daemon's HTTP server: health, Prometheus metrics, Alertmanager webhooks, postbacks."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from alertline.config.sections import Config
from alertline.daemon import Daemon
from tests.daemon.harness import AM_TOKEN, MqttProbe, daemon_config
from tests.daemon.test_alertmanager import STARTS_EPOCH, disk_alert, notification
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]
BEARER = {"Authorization": f"Bearer {AM_TOKEN}"}


def _url(daemon: Daemon, path: str) -> str:
    assert daemon.http is not None
    return f"http://127.0.0.1:{daemon.http.port}{path}"


async def test_alertmanager_webhook_over_http_is_treated_like_the_topic(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(daemon_config(tmp_path, broker))
    firing = notification(disk_alert("db1", "f1"))
    resolved = notification(disk_alert("db1", "f1", status="resolved"), status="resolved")
    alert_id = f"am-door-f1-{STARTS_EPOCH}"
    async with httpx.AsyncClient() as http:
        first = await http.post(_url(daemon, "/alertmanager/door"), json=firing, headers=BEARER)
        await probe.final_report(alert_id)
        again = await http.post(_url(daemon, "/alertmanager/door"), json=firing, headers=BEARER)
        gone = await http.post(_url(daemon, "/alertmanager/door"), json=resolved, headers=BEARER)

    report = await probe.expect(f"alertline/report/{alert_id}", lambda m: m.json()["resolved"])
    assert (first.status_code, first.json()["accepted"]) == (200, [alert_id])
    assert (again.status_code, again.json()["duplicates"]) == (200, [alert_id])
    assert (gone.status_code, gone.json()["resolved"]) == (200, [alert_id])
    assert report.json()["state"] == "resolved"
    assert report.json()["deliveries"][0]["state"] == "delivered"


async def test_alertmanager_webhook_refuses_what_it_must(
        tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="alertline")
    daemon = await start_daemon(daemon_config(tmp_path, broker, http={"max_body_bytes": 2048}))
    url = _url(daemon, "/alertmanager/door")
    async with httpx.AsyncClient() as http:
        no_token = await http.post(url, json=notification(disk_alert()))
        wrong = await http.post(url, json=notification(disk_alert()),
                                headers={"Authorization": "Bearer nope-nope-nope"})
        basic = await http.post(url, json=notification(disk_alert()),
                                headers={"Authorization": f"Basic {AM_TOKEN}"})
        malformed = await http.post(url, content=b'{"alerts": [', headers=BEARER)
        too_big = await http.post(url, content=b"{" + b" " * 4096 + b"}", headers=BEARER)
        unknown_route = await http.post(_url(daemon, "/alertmanager/nowhere"),
                                        json=notification(disk_alert()), headers=BEARER)

    assert [r.status_code for r in (no_token, wrong, basic)] == [401, 401, 401]
    assert no_token.headers["WWW-Authenticate"] == "Bearer"
    assert (malformed.status_code, malformed.json()["error"], malformed.json()["field"]) == \
        (400, "json", "payload")
    assert (too_big.status_code, too_big.json()["error"]) == (413, "too_large")
    assert (unknown_route.status_code, unknown_route.json()["error"]) == (400, "unknown_route")
    assert AM_TOKEN not in caplog.text


@pytest.mark.parametrize("body", [
    b'{"alerts": ' + b"[" * 200_000 + b"]" * 200_000 + b"}",
    b'{"alerts": [{"labels": ' + b'{"a":' * 100_000 + b"1" + b"}" * 100_000 + b"}]}",
    b'{"version": "4", "alerts": [], "x": 1' + b"0" * 5000 + b"}",
], ids=["nested-lists", "nested-objects", "huge-number"])  # short ids: they name temp paths
async def test_deeply_nested_or_absurd_json_is_a_400_not_a_retried_500(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon,
        body: bytes) -> None:
    daemon = await start_daemon(daemon_config(tmp_path, broker,
                                              http={"max_body_bytes": 2 * 1024 * 1024},
                                              mqtt={"max_payload_bytes": 2 * 1024 * 1024}))
    async with httpx.AsyncClient() as http:
        answer = await http.post(_url(daemon, "/alertmanager/door"), content=body,
                                 headers=BEARER)
    await probe.publish("alertline/alertmanager/door", body)
    error = await probe.expect("alertline/error")

    assert (answer.status_code, answer.json()["error"], answer.json()["field"]) == \
        (400, "json", "payload")
    assert (error.json()["error"], error.json()["field"]) == ("json", "payload")
    async with httpx.AsyncClient() as http:
        assert (await http.get(_url(daemon, "/healthz"))).status_code == 200


async def test_without_a_token_configured_the_webhook_is_disabled(
        tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(daemon_config(tmp_path, broker, alertmanager={"token": None}))
    async with httpx.AsyncClient() as http:
        answer = await http.post(_url(daemon, "/alertmanager/door"),
                                 json=notification(disk_alert()))

    assert answer.status_code == 403
    assert "alertmanager.token" in answer.json()["detail"]


async def test_healthz_and_metrics_describe_the_running_daemon(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    daemon = await start_daemon(daemon_config(tmp_path, broker))
    await probe.publish("alertline/send", json.dumps({"id": "m1", "to": "alice",
                                                      "message": "x"}))
    await probe.publish("alertline/send", b"{broken")
    await probe.final_report("m1")
    await probe.expect("alertline/error")
    async with httpx.AsyncClient() as http:
        health = await http.get(_url(daemon, "/healthz"))
        metrics = await http.get(_url(daemon, "/metrics"))

    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["mqtt"] == "connected"
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    lines = set(metrics.text.splitlines())
    assert "alertline_alerts_received_total 1" in lines
    assert 'alertline_deliveries{provider="sim",state="delivered"} 1' in lines
    assert 'alertline_mqtt_messages_total{kind="send"} 2' in lines
    assert 'alertline_mqtt_errors_total{error="json"} 1' in lines
    assert "alertline_mqtt_connected 1" in lines
    assert "alertline_provider_requests_total 1" in lines
    assert "alertline_provider_request_duration_seconds_count 1" in lines
    assert "alertline_queue_depth 0" in lines
    assert "# TYPE alertline_provider_request_duration_seconds summary" in lines


async def test_provider_postbacks_are_mounted_when_a_token_is_configured(
        tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon) -> None:
    token = "postback-token-0123456789"
    daemon = await start_daemon(daemon_config(tmp_path, broker, http={"postback_token": token}))
    async with httpx.AsyncClient() as http:
        # the simulator only polls: the receiver answers 404 for it, as for a wrong token
        mounted = await http.post(_url(daemon, f"/postbacks/sim/{token}"), content=b"{}")
        missing = await http.post(_url(daemon, "/postbacks/sim"), content=b"{}")

    assert mounted.json() == {"error": "not_found"}  # the receiver's answer, not aiohttp's
    assert missing.status_code == 404 and missing.headers["Content-Type"].startswith("text/")
