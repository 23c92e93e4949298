"""``alertline publish | ack | cancel | resolve`` against a running daemon (MQTT v5 responses)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import yaml

from alertline.config.sections import Config, validate_config
from alertline.daemon import Daemon
from tests.daemon.harness import ROOT, MqttProbe, base_config
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]


async def _cli(config_path: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "alertline.cli.main", *args[:1], "--config", str(config_path),
        *args[1:], stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return int(process.returncode or 0), out.decode(), err.decode()


async def _daemon(tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon) -> Path:
    data = base_config(tmp_path, broker)
    path = tmp_path / "alertline.yaml"
    path.write_text(yaml.safe_dump(data))
    await start_daemon(validate_config(data, {}))
    return path


async def test_publish_prints_the_answer_and_follows_the_reports(
        tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon) -> None:
    config = await _daemon(tmp_path, broker, start_daemon)

    code, out, err = await _cli(config, "publish", "--id", "cli-1", "--to", "alice",
                                "--channel", "voice", "Garage door open")

    assert code == 0, err
    assert out.splitlines() == ["accepted: alert cli-1, 1 delivery(ies)",
                                "alert cli-1: delivered (1 delivered)"]
    assert "+491701234560  voice submitted (RINGING)" in err
    assert "+491701234560  voice delivered (ANSWERED)" in err


async def test_publish_reports_a_rejection_with_exit_code_2(
        tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon) -> None:
    config = await _daemon(tmp_path, broker, start_daemon)

    code, _, err = await _cli(config, "publish", "--to", "zed", "hello")
    local_code, _, local_err = await _cli(config, "publish", "--id", "no spaces", "--to",
                                          "alice", "hello")

    assert code == 2 and "rejected: to[0]: unknown contact or group 'zed'" in err
    assert local_code == 2 and "id:" in local_err  # refused before anything was published


async def test_publish_no_wait_returns_once_accepted_and_ack_stops_the_alert(
        tmp_path: Path, broker: Mosquitto, probe: MqttProbe,
        start_daemon: StartDaemon) -> None:
    config = await _daemon(tmp_path, broker, start_daemon)

    code, out, _ = await _cli(config, "publish", "--id", "cli-9", "--to", "+491701234569",
                              "--channel", "voice", "--no-wait", "Pager")
    ack_code, ack_out, _ = await _cli(config, "ack", "cli-9", "--by", "bob")
    missing_code, _, missing_err = await _cli(config, "cancel", "nope")

    assert (code, out.strip()) == (0, "accepted: alert cli-9, 1 delivery(ies)")
    assert ack_code == 0 and ack_out.startswith("alert cli-9: acknowledged")
    report = await probe.expect("alertline/report/cli-9",
                                lambda m: m.json()["state"] == "acknowledged")
    assert report.json()["acknowledged"]["by"] == "bob"
    assert missing_code == 2 and "not_found" in missing_err
