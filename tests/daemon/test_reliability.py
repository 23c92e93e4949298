"""kill -9 the daemon while alerts flow, restart it: every alert is final, nothing sent twice.

The daemon runs as a real ``alertline run`` subprocess against a real Mosquitto and the Retarus
SMS REST emulator (in this process), whose job log counts what reached the provider.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.daemon.harness import DaemonProcess, MqttProbe, base_config
from tests.emulators.retarus_sms import RetarusSmsEmulator
from tests.mosquitto import Mosquitto

ProbeFactory = Callable[..., Awaitable[MqttProbe]]
ALERTS = 300
KILL_AFTER = 100
PACE = 0.002
INTERRUPTED = "interrupted while being submitted"


def _retarus_config(tmp_path: Path, broker: Mosquitto,
                    emulator: RetarusSmsEmulator) -> dict[str, Any]:
    # deliveries caught in flight by the crash are settled at restart by asking Retarus which
    # of them it already has (their delivery ids are the recipients' customerRef)
    return base_config(tmp_path, broker, providers={"retarus": {
        "type": "retarus_sms", "username": "user", "password": "emulator-secret-1",
        "base_url": emulator.base_url, "status_urls": [emulator.base_url],
        "poll_interval": 0.05, "retry_base_delay": 0.05}},
        routes={}, groups={}, contacts={})


async def _online(probe: MqttProbe) -> None:
    await probe.expect("alertline/status", lambda m: m.payload == b"online", within=30)


async def test_kill_9_while_alerts_flow_then_restart_loses_nothing_and_sends_nothing_twice(
        tmp_path: Path, broker: Mosquitto, probe_factory: ProbeFactory) -> None:
    emulator = RetarusSmsEmulator(user="user", password="emulator-secret-1", step_seconds=0.05)
    await emulator.start()
    daemon = DaemonProcess(_retarus_config(tmp_path, broker, emulator), tmp_path)
    listener = await probe_factory(client_id="listener", persistent=True)
    await listener.subscribe("alertline/report/+", "alertline/accepted/+", "alertline/status")
    sender = await probe_factory()
    ids = [f"flow-{index:04d}" for index in range(ALERTS)]
    try:
        await daemon.start()
        await _online(listener)

        published: list[str] = []

        async def send_all() -> None:
            for index, alert_id in enumerate(ids):
                await sender.publish("alertline/send", json.dumps(
                    {"id": alert_id, "to": f"+4917012{index:05d}0", "message": "flowing"}))
                published.append(alert_id)
                await asyncio.sleep(PACE)  # a steady flow, not a single burst

        sending = asyncio.create_task(send_all())
        await listener.expect(f"alertline/accepted/{ids[KILL_AFTER]}", within=30)
        daemon.kill()
        after_kill = ids[len(published) + 1:]  # only the restarted daemon can have seen these
        assert await daemon.wait() == -9
        await listener.expect("alertline/status", lambda m: m.payload == b"offline")
        await daemon.start()
        await _online(listener)
        await asyncio.wait_for(sending, 60)

        finals = {alert_id: await listener.final_report(alert_id, within=60)
                  for alert_id in ids}
        daemon.terminate()
        assert await daemon.wait() == 0
    finally:
        await daemon.stop()
        await emulator.close()

    submitted = Counter(recipient.customer_ref for job in emulator.jobs.values()
                        for recipient in job.recipients)
    with sqlite3.connect(tmp_path / "alertline.db") as db:
        alerts = dict(db.execute("SELECT id, final FROM alerts"))
        deliveries = list(db.execute("SELECT id, alert_id, state, data FROM deliveries"))

    assert sorted(alerts) == ids and all(alerts.values())  # each alert once, each one final
    assert len(deliveries) == ALERTS
    assert max(submitted.values()) == 1  # no SMS reached the provider twice
    for delivery_id, alert_id, state, _data in deliveries:
        # every SMS reached the provider exactly once, including those caught in flight
        assert (finals[alert_id]["deliveries"][0]["state"], state) == ("delivered", "delivered")
        assert submitted[delivery_id] == 1
    assert after_kill and all(finals[alert_id]["state"] == "delivered"
                              for alert_id in after_kill)
    assert "emulator-secret-1" not in daemon.log
