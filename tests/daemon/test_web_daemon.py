"""The running daemon serves the web page: an SMS link sent over MQTT acknowledges the alert."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

from alertline.config.sections import Config
from alertline.daemon import Daemon
from tests.daemon.harness import MqttProbe, daemon_config
from tests.http.web.conftest import PASSWORD, PASSWORD_HASH, WEB_SECRET
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]


async def test_the_daemon_mounts_links_and_dashboard(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe, start_daemon: StartDaemon) -> None:
    record = tmp_path / "sent.jsonl"
    config = daemon_config(
        tmp_path, broker, http={"public_url": "http://alerts.example.com"},  # no Secure cookie
        web={"users": {"ops": {"password_hash": PASSWORD_HASH}}, "secret": WEB_SECRET},
        providers={"sim": {"type": "simulator", "sms_delay": 0.05, "poll_interval": 0.05,
                           "deadline": 5.0, "record": str(record)}},
        routes={"door": {"to": ["alice"], "channel": "sms", "ack_link": True}},
        schedules={"primary": {"time_zone": "UTC", "rotations": [
            {"members": ["bob"], "start": "2026-01-05T09:00", "shift": "1w"}]}})
    daemon = await start_daemon(config)
    assert daemon.http is not None
    base = f"http://127.0.0.1:{daemon.http.port}"
    await probe.publish("alertline/send/door", json.dumps({"id": "door-1",
                                                           "message": "Door open"}))
    await probe.expect("alertline/report/door-1",
                       lambda m: m.json()["deliveries"][0]["state"] != "pending")
    line = json.loads(record.read_text().splitlines()[0])
    match = re.search(r"http://alerts\.example\.com(/a/[A-Za-z0-9_-]+)", line["text"])
    assert match, line
    async with httpx.AsyncClient(base_url=base) as http:
        page = await http.get(match.group(1))
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert page.status_code == 200 and csrf is not None
        await http.post(match.group(1), data={"action": "ack", "csrf": csrf.group(1)})
        login = await http.get("/", follow_redirects=False)
        form = await http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        await http.post("/login", data={"user": "ops", "password": PASSWORD,
                                         "csrf": token.group(1)})
        dashboard = await http.get("/")
    report = await probe.expect("alertline/report/door-1",
                                lambda m: m.json()["acknowledged"] is not None)
    assert report.json()["acknowledged"]["by"] == "alice"
    assert report.json()["acknowledged"]["via"] == "link"
    assert (login.status_code, login.headers["location"]) == (303, "/login")
    assert dashboard.status_code == 200
    assert "<strong>primary</strong>: bob" in dashboard.text  # who is on call, from the schedule
    assert "Door open" in dashboard.text
    assert (tmp_path / "alertline.db.web-key").exists() is False  # web.secret given: no key file
