"""Two in-process daemons on one real Mosquitto and one real PostgreSQL database: a cluster.

The input is shared (``$share/alertline/...``): each message goes to one daemon, which owns the
alert; one daemon holds the outbox lease and publishes every report, the other's too. The
process-level faults (SIGKILL, a database restart) are in :mod:`tests.cluster.test_chaos`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg

from alertline.config.sections import Config, validate_config
from alertline.daemon import Daemon
from tests.daemon.conftest import broker, probe, probe_factory, start_daemon  # noqa: F401
from tests.daemon.harness import MqttProbe, base_config
from tests.mosquitto import Mosquitto
from tests.postgres import PASSWORD, shared_server

StartDaemon = Callable[[Config], Awaitable[Daemon]]


def member_config(tmp_path: Path, mosquitto: Mosquitto, url: str, name: str) -> Config:
    data = base_config(tmp_path / name, mosquitto, mqtt={"client_id": f"alertline-{name}"},
                       cluster={"lease": 3, "member": name})
    data["store"] = {"url": url}
    return validate_config(data, {})


async def two_members(tmp_path: Path, mosquitto: Mosquitto,
                      start: StartDaemon) -> tuple[str, tuple[Daemon, Daemon]]:
    """Daemons ``a`` and ``b`` on a fresh database (its URL)."""
    url = shared_server().url(shared_server().new_database())
    a = await start(member_config(tmp_path, mosquitto, url, "a"))
    b = await start(member_config(tmp_path, mosquitto, url, "b"))
    return url, (a, b)


async def until(condition: Callable[[], bool], what: str, within: float = 15.0) -> None:
    """Wait for a member's lease round (every lease/3 s) to show ``condition``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, f"not within {within}s: {what}"
        await asyncio.sleep(0.1)


async def test_two_daemons_share_the_input_and_one_publishes_every_report(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe,  # noqa: F811
        start_daemon: StartDaemon) -> None:  # noqa: F811
    url, (a, b) = await two_members(tmp_path, broker, start_daemon)
    assert a.cluster is not None and b.cluster is not None
    ids = [f"leak-{n}" for n in range(40)]
    for alert_id in ids:
        await probe.publish("alertline/send", json.dumps(
            {"id": alert_id, "to": "+491701234560", "message": "Water leak"}))
    for alert_id in ids:
        assert (await probe.final_report(alert_id))["state"] == "delivered"
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT owner, COUNT(*) FROM alerts GROUP BY owner").fetchall()
    owners: dict[str, int] = dict(rows)
    assert set(owners) == {"a", "b"} and sum(owners.values()) == 40, owners
    await until(lambda: len(a.health()["cluster"]["members"]) == 2, "a sees both members")
    held = [d.cluster.outbox_held for d in (a, b) if d.cluster is not None]
    assert sorted(held) == [False, True]
    assert a.discovery is not None and b.discovery is not None
    assert a.discovery.node == b.discovery.node  # one Home Assistant device for the cluster
    assert a.http is not None
    async with httpx.AsyncClient(timeout=5.0) as http:
        answer = await http.get(f"http://127.0.0.1:{a.http.port}/healthz")
        metrics = (await http.get(f"http://127.0.0.1:{a.http.port}/metrics")).text
    health = answer.json()["cluster"]
    assert health["member"] == "a" and health["store"] == "reachable"
    assert {m["member"] for m in health["members"]} == {"a", "b"}
    assert health["leases"]["outbox"] is a.cluster.outbox_held
    assert 'alertline_cluster_member_info{member="a"} 1' in metrics
    assert "alertline_cluster_members 2" in metrics
    for shown in (answer.text, metrics):
        assert PASSWORD not in shown and quote(PASSWORD, safe="") not in shown


async def test_a_member_stopping_leaves_the_service_online_and_its_alerts_to_the_other(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe,  # noqa: F811
        start_daemon: StartDaemon) -> None:  # noqa: F811
    _, (a, b) = await two_members(tmp_path, broker, start_daemon)
    await probe.expect("alertline/status", lambda m: m.payload == b"online")
    await a.stop()
    await probe.expect("alertline/status", lambda m: m.payload == b"offline")
    await probe.expect("alertline/status", lambda m: m.payload == b"online")
    assert b.cluster is not None
    await until(lambda: b.cluster is not None and b.cluster.outbox_held, "b holds the outbox")
    await probe.publish("alertline/send", json.dumps(
        {"id": "after", "to": "+491701234560", "message": "Door open"}))
    assert (await probe.final_report("after"))["state"] == "delivered"
