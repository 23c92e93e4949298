"""3,000 alerts through a real Mosquitto while the store's file system fills up or turns read-only.

Nothing may be acknowledged that was not committed: while the store fails the daemon says so
(``/healthz`` 503, ``alertline/status`` ``degraded``, ``alertline_store_available 0``, a log line),
answers Alertmanager 503, leaves MQTT messages with the broker, and once the store works again it
resumes by itself and every one of the 3,000 alerts is kept and final.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from alertline.config.sections import Config
from alertline.daemon import Daemon, DaemonStartError
from tests.daemon.harness import AM_TOKEN, MqttProbe, daemon_config
from tests.filesystems import failing_ext4, fillable_disk
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]
ProbeFactory = Callable[..., Awaitable[MqttProbe]]
ALERTS = 3000
FAIL_AFTER = 800
WITHIN = 60.0
OUTAGE_LOG = "nothing more is acknowledged"


def _config(tmp_path: Path, broker: Mosquitto, store_dir: Path) -> Config:
    return daemon_config(tmp_path, broker, store={"path": str(store_dir / "alertline.db")},
                         providers={"sim": {"type": "simulator", "sms_delay": 0.01,
                                            "poll_interval": 0.05, "deadline": 30.0}})


class Flow:
    """Publishes the alerts and follows their ``accepted`` and final reports."""

    def __init__(self, listener: MqttProbe, sender: MqttProbe) -> None:
        self.listener = listener
        self.sender = sender
        self.ids = [f"fault-{index:04d}" for index in range(ALERTS)]
        self.accepted: set[str] = set()
        self.final: dict[str, str] = {}
        self.statuses: list[bytes] = []
        self._seen = 0

    def publish_all(self, ids: list[str] | None = None) -> asyncio.Future[list[None]]:
        """Queue every alert (or ``ids``) at QoS 1 at once; the future ends when the broker has
        them all."""
        infos = [self.sender.client.publish("alertline/send", json.dumps(
            {"id": alert_id, "to": f"+4917012{index:05d}0", "message": "store fault"}), qos=1)
            for index, alert_id in enumerate(self.ids if ids is None else ids)]
        loop = asyncio.get_running_loop()
        return asyncio.gather(*(loop.run_in_executor(None, info.wait_for_publish, WITHIN)
                                for info in infos))

    def _consume(self) -> None:
        received = self.listener.received
        for message in received[self._seen:]:
            kind, _, alert_id = message.topic.removeprefix("alertline/").partition("/")
            if kind == "accepted":
                self.accepted.add(alert_id)
            elif kind == "report" and message.json().get("final"):
                self.final[alert_id] = message.json()["state"]
            elif message.topic == "alertline/status":
                self.statuses.append(message.payload)
        self._seen = len(received)

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait (on message arrivals) until ``condition`` holds."""
        async def wait() -> None:
            while True:
                self.listener._arrived.clear()
                self._consume()
                if condition():
                    return
                await self.listener._arrived.wait()
        try:
            await asyncio.wait_for(wait(), WITHIN)
        except TimeoutError:
            raise AssertionError(f"not {what} within {WITHIN}s: {len(self.accepted)} accepted, "
                                 f"{len(self.final)} final, status {self.statuses[-3:]}") from None


def _taken_or_failing(flow: Flow, ids: set[str]) -> bool:
    return b"degraded" in flow.statuses or ids <= flow.accepted


async def _flow(probe_factory: ProbeFactory) -> Flow:
    listener = await probe_factory()
    await listener.subscribe("alertline/accepted/+", "alertline/report/+", "alertline/status")
    return Flow(listener, await probe_factory())


async def _health(daemon: Daemon) -> tuple[int, dict[str, object]]:
    assert daemon.http is not None
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{daemon.http.port}/healthz") as answer:
        return answer.status, await answer.json()


async def _metric(daemon: Daemon, name: str) -> str:
    assert daemon.http is not None
    async with aiohttp.ClientSession() as session, session.get(
            f"http://127.0.0.1:{daemon.http.port}/metrics") as answer:
        text = await answer.text()
    return next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))


async def _alertmanager(daemon: Daemon, alert_id: str) -> int:
    assert daemon.http is not None
    body = {"version": "4", "status": "firing", "receiver": "alertline", "groupKey": "g",
            "alerts": [{"status": "firing", "labels": {"alertname": alert_id},
                        "annotations": {"summary": "disk"}, "fingerprint": alert_id,
                        "startsAt": "2026-01-01T10:00:00Z"}]}
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{daemon.http.port}/alertmanager/door", json=body,
            headers={"Authorization": f"Bearer {AM_TOKEN}"}) as answer:
        return answer.status


def _stored_final(path: Path) -> tuple[int, int]:
    with sqlite3.connect(path) as conn:
        total, final = conn.execute("SELECT COUNT(*), SUM(final) FROM alerts "
                                    "WHERE id LIKE 'fault-%'").fetchone()
    return int(total), int(final or 0)


async def _while_failing(daemon: Daemon, flow: Flow, caplog: pytest.LogCaptureFixture) -> None:
    """What a failing store must look like from outside.

    A full disk may let a write through now and then (SQLite reuses its WAL file's space after
    a checkpoint), ending the outage for a moment: the answers are checked against one outage
    that lasted throughout them.
    """
    health = daemon.store.health if daemon.store is not None else None
    assert health is not None
    for _ in range(20):
        await flow.until(lambda: flow.statuses[-1:] == [b"degraded"], "status degraded")
        outage = health.outages
        status, body = await _health(daemon)
        metric = await _metric(daemon, "alertline_store_available")
        alertmanager = await _alertmanager(daemon, "amfault")
        if health.outages == outage and not health.available:
            break
    else:
        raise AssertionError("the store never stayed failing long enough to be looked at")
    assert status == 503 and body["status"] == "failing" and body["store"] == "unavailable"
    assert metric == "0"
    assert alertmanager == 503
    # one line when it began (and at most once a minute if it flaps), not one per message
    outage_lines = [r for r in caplog.records if OUTAGE_LOG in r.getMessage()]
    assert 1 <= len(outage_lines) <= 2 and outage_lines[0].levelno == logging.ERROR


async def _after_recovery(daemon: Daemon, flow: Flow, publishing: asyncio.Future[list[None]],
                          store: Path) -> None:
    """Everything published is kept and final; the daemon is healthy again."""
    await asyncio.wait_for(publishing, WITHIN)
    await flow.until(lambda: len(flow.final) >= ALERTS, "every alert final")
    assert set(flow.final) >= set(flow.ids)
    assert flow.statuses[-1] == b"online"
    assert (await _health(daemon))[0] == 200
    assert await _alertmanager(daemon, "amfault") == 200  # Alertmanager's retry is taken
    assert _stored_final(store) == (ALERTS, ALERTS)


async def test_disk_full_while_3000_alerts_flow_loses_none_once_space_returns(
        tmp_path: Path, broker: Mosquitto, probe_factory: ProbeFactory,
        start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with fillable_disk(tmp_path / "disk", size="96m") as disk:
        flow = await _flow(probe_factory)
        daemon = await start_daemon(_config(tmp_path, broker, disk.mountpoint))
        await flow.until(lambda: b"online" in flow.statuses, "online")
        publishing = flow.publish_all()
        await flow.until(lambda: len(flow.accepted) >= FAIL_AFTER, f"{FAIL_AFTER} accepted")
        disk.fill()

        await _while_failing(daemon, flow, caplog)
        accepted_while_full = len(flow.accepted)
        disk.free()

        await _after_recovery(daemon, flow, publishing, disk.mountpoint / "alertline.db")
        assert accepted_while_full < ALERTS


async def test_read_only_file_system_while_3000_alerts_flow_loses_none_once_repaired(
        tmp_path: Path, broker: Mosquitto, probe_factory: ProbeFactory,
        start_daemon: StartDaemon, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    with failing_ext4(tmp_path / "ext4", size_mb=128) as disk:
        flow = await _flow(probe_factory)
        daemon = await start_daemon(_config(tmp_path, broker, disk.mountpoint))
        await flow.until(lambda: b"online" in flow.statuses, "online")
        publishing = flow.publish_all()
        await flow.until(lambda: len(flow.accepted) >= FAIL_AFTER, f"{FAIL_AFTER} accepted")
        disk.fail()

        await _while_failing(daemon, flow, caplog)
        accepted_while_read_only = len(flow.accepted)
        disk.repair()

        await _after_recovery(daemon, flow, publishing, disk.mountpoint / "alertline.db")
        assert accepted_while_read_only < ALERTS


async def test_stopping_while_the_disk_is_full_is_quick_and_the_next_start_keeps_everything(
        tmp_path: Path, broker: Mosquitto, probe_factory: ProbeFactory,
        start_daemon: StartDaemon) -> None:
    with fillable_disk(tmp_path / "disk", size="32m") as disk:
        flow = await _flow(probe_factory)
        flow.ids = []
        config = _config(tmp_path, broker, disk.mountpoint)
        daemon = await start_daemon(config)
        publishing: list[asyncio.Future[list[None]]] = []
        # alerts keep coming, 50 at a time, until the full disk makes a commit fail (what the
        # WAL already holds may take a few more; a fast daemon may have finished a fixed batch)
        for batch in range(40):
            ids = [f"fault-{batch:02d}{index:03d}" for index in range(50)]
            flow.ids += ids
            publishing.append(flow.publish_all(ids))
            if batch == 1:
                await flow.until(lambda: len(flow.accepted) >= 50, "50 accepted")
                disk.fill()
            await flow.until(functools.partial(_taken_or_failing, flow, set(ids)),
                             "a batch accepted or the store failing")
            if b"degraded" in flow.statuses:
                break
        assert b"degraded" in flow.statuses, "the full disk never failed a commit"

        started = asyncio.get_running_loop().time()
        await daemon.stop()
        assert asyncio.get_running_loop().time() - started < 10
        disk.free()
        await start_daemon(config)

        await asyncio.wait_for(asyncio.gather(*publishing), WITHIN)
        await flow.until(lambda: set(flow.final) >= set(flow.ids), "every alert final")
        assert _stored_final(disk.mountpoint / "alertline.db") == (len(flow.ids),
                                                                   len(flow.ids))


async def test_a_store_that_cannot_be_opened_stops_the_start_with_the_reason(
        tmp_path: Path, broker: Mosquitto) -> None:
    with fillable_disk(tmp_path / "disk", size="1m") as disk:
        disk.fill()
        daemon = Daemon(_config(tmp_path, broker, disk.mountpoint), out=io.StringIO())
        with pytest.raises(DaemonStartError, match=r"alertline\.db cannot be opened: .*full"):
            await daemon.start()
        await daemon.stop()
