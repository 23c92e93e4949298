"""``alertline run`` without ``mqtt.host``: the embedded broker, and the commands it prints."""

from __future__ import annotations

import asyncio
import shlex
import socket
import sys
from pathlib import Path

import paho.mqtt.client as paho

from tests.daemon.harness import ROOT, DaemonProcess, MqttProbe, base_config
from tests.mosquitto import free_port


async def _run(argv: list[str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return int(process.returncode or 0), out.decode(), err.decode()


async def test_the_printed_commands_send_an_alert_through_the_embedded_broker(
        tmp_path: Path) -> None:
    port = free_port()
    daemon = DaemonProcess(base_config(tmp_path, None, mqtt={"port": port}), tmp_path)
    try:
        await daemon.start()
        lines = [await daemon.read_line() for _ in range(3)]
        probe = await MqttProbe("127.0.0.1", port, protocol=paho.MQTTv311).connect()
        try:
            await probe.subscribe("alertline/#")
            mosquitto_pub = shlex.split(lines[1].strip())
            code, _, err = await _run(mosquitto_pub)
            assert code == 0, err
            accepted = (await probe.expect("alertline/accepted/+")).json()
            report = await probe.final_report(accepted["id"])

            publish = shlex.split(lines[2].strip())
            assert publish[:2] == ["alertline", "publish"]
            cli_code, cli_out, cli_err = await _run(
                [sys.executable, "-m", "alertline.cli.main", *publish[1:]])
        finally:
            await probe.close()
    finally:
        daemon.terminate()
        exit_code = await daemon.wait()

    assert f"embedded MQTT broker listens on 127.0.0.1:{port}" in lines[0]
    assert mosquitto_pub[0] == "mosquitto_pub" and ["-p", str(port)] == \
        mosquitto_pub[mosquitto_pub.index("-p"):mosquitto_pub.index("-p") + 2]
    assert report["state"] == "delivered" and report["message"] == "Water leak in the basement"
    assert cli_code == 0, cli_err
    assert "accepted: alert cli-" in cli_out and ": delivered (1 delivered)" in cli_out
    assert exit_code == 0


async def test_a_taken_port_stops_the_daemon_with_a_clear_reason(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = DaemonProcess(base_config(tmp_path, None, mqtt={"port": port}), tmp_path)
        await daemon.start()
        code = await daemon.wait()

    output = daemon.stdout.decode()
    assert code == 1
    assert f"the embedded MQTT broker cannot listen on 127.0.0.1:{port}" in output
    assert "set mqtt.host" in output
