"""Test helpers for the daemon: an asyncio MQTT probe, configs, and the daemon as a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import yaml
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from alertline.config.sections import Config, validate_config
from tests.mosquitto import Mosquitto

ROOT = Path(__file__).resolve().parents[2]
AM_TOKEN = "am-token-7f3e9a1c55d2"
MQTT_PASSWORD = "mqtt-pass-4b8d2e6f"
WAIT = 15.0


def base_config(tmp_path: Path, broker: Mosquitto | None, **sections: Any) -> dict[str, Any]:
    """A daemon config (as YAML data) for ``broker``: simulator with short delays, two routes."""
    data: dict[str, Any] = {
        "mqtt": {"client_id": "alertline-test", "keepalive": 5},
        "store": {"path": str(tmp_path / "alertline.db")},
        "http": {"port": 0},
        "providers": {"sim": {"type": "simulator", "sms_delay": 0.05, "voice_delay": 0.1,
                              "poll_interval": 0.05, "deadline": 1.0}},
        "contacts": {"alice": {"phone": "+491701234560"}, "bob": {"phone": "+491701234561"}},
        "groups": {"oncall": ["alice", "bob"]},
        "routes": {"leak": {"to": ["oncall"], "channel": ["sms", "voice"]},
                   "door": {"to": ["alice"], "title": "Door"}},
        "alertmanager": {"token": AM_TOKEN},
    }
    if broker is not None:
        data["mqtt"].update({"host": broker.host, "port": broker.port})
    for key, value in sections.items():  # settings sections are merged, named ones replaced
        if key in ("mqtt", "http", "store", "alertmanager") and isinstance(value, dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def daemon_config(tmp_path: Path, broker: Mosquitto | None, **sections: Any) -> Config:
    """A validated :func:`base_config`."""
    return validate_config(copy.deepcopy(base_config(tmp_path, broker, **sections)), {})


@dataclass(frozen=True)
class Received:
    """A message a probe received."""

    topic: str
    payload: bytes
    retain: bool
    correlation: bytes | None

    def json(self) -> Any:
        """The payload as JSON."""
        return json.loads(self.payload)


@dataclass
class MqttProbe:
    """A test MQTT client on the asyncio loop: publish, and wait for matching messages."""

    host: str
    port: int
    protocol: MQTTProtocolVersion = paho.MQTTv5
    username: str | None = None
    password: str | None = None
    received: list[Received] = field(default_factory=list)
    client_id: str = field(default_factory=lambda: f"probe-{uuid.uuid4().hex[:8]}")
    persistent: bool = False  # keep the session (and its queued messages) across reconnects

    def __post_init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._consumed: set[int] = set()
        self._arrived = asyncio.Event()
        self._events: dict[str, asyncio.Event] = {}
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                  protocol=self.protocol)
        if self.username:
            self.client.username_pw_set(self.username, self.password)
        self.client.on_connect = lambda *_a: self._hop(self._set, "connected")
        self.client.on_subscribe = lambda *_a: self._hop(self._set, "subscribed")
        self.client.on_message = lambda _c, _u, m: self._hop(self._add, Received(
            m.topic, bytes(m.payload), bool(m.retain),
            getattr(m.properties, "CorrelationData", None) if m.properties else None))
        self.client.max_inflight_messages_set(1000)

    def _hop(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(fn, *args)

    def _set(self, name: str) -> None:
        self._events.setdefault(name, asyncio.Event()).set()

    def _add(self, message: Received) -> None:
        self.received.append(message)
        self._arrived.set()

    async def _wait(self, name: str) -> None:
        event = self._events.setdefault(name, asyncio.Event())
        await asyncio.wait_for(event.wait(), WAIT)
        event.clear()

    async def connect(self) -> MqttProbe:
        """Connect (a clean session unless ``persistent``); paho reconnects by itself."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        if self.persistent:
            properties.SessionExpiryInterval = 3600
        self.client.reconnect_delay_set(1, 2)
        if self.protocol == paho.MQTTv5:
            self.client.connect_async(self.host, self.port, 30,
                                      clean_start=not self.persistent, properties=properties)
        else:
            self.client.connect_async(self.host, self.port, 30)
        self.client.loop_start()
        await self._wait("connected")
        return self

    async def subscribe(self, *filters: str) -> None:
        """Subscribe at QoS 1 and wait for the SUBACK."""
        self.client.subscribe([(f, 1) for f in filters])
        await self._wait("subscribed")

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                      response_topic: str | None = None, correlation: bytes | None = None,
                      qos: int = 1) -> None:
        """Publish and wait until the broker has it (after a reconnect, if one is under way)."""
        if not self.client.is_connected():
            await self._wait("connected")
        properties = None
        if response_topic or correlation:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            if response_topic:
                properties.ResponseTopic = response_topic
            if correlation:
                properties.CorrelationData = correlation
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        await asyncio.get_running_loop().run_in_executor(None, info.wait_for_publish, WAIT)

    def take(self, topic: str, where: Callable[[Received], bool] | None = None) -> Received | None:
        """The first unconsumed message on ``topic`` (a filter) that matches, if any."""
        for index, message in enumerate(self.received):
            if index in self._consumed or not paho.topic_matches_sub(topic, message.topic):
                continue
            if where is None or where(message):
                self._consumed.add(index)
                return message
        return None

    async def expect(self, topic: str, where: Callable[[Received], bool] | None = None,
                     within: float = WAIT) -> Received:
        """Wait for the first message on ``topic`` that matches ``where``."""
        async def find() -> Received:
            while True:
                self._arrived.clear()
                found = self.take(topic, where)
                if found is not None:
                    return found
                await self._arrived.wait()
        try:
            return await asyncio.wait_for(find(), within)
        except TimeoutError:
            seen = [(m.topic, m.payload[:120]) for m in self.received[-10:]]
            raise AssertionError(f"no message on {topic} within {within}s; last: {seen}") \
                from None

    async def final_report(self, alert_id: str, base: str = "alertline",
                           within: float = WAIT) -> dict[str, Any]:
        """Wait for the final report of ``alert_id``."""
        message = await self.expect(f"{base}/report/{alert_id}",
                                    lambda m: bool(m.json().get("final")), within)
        report: dict[str, Any] = message.json()
        return report

    async def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        await asyncio.get_running_loop().run_in_executor(None, self.client.loop_stop)


class DaemonProcess:
    """``alertline run`` as a real subprocess (for kill -9, restart and exit tests)."""

    def __init__(self, config: dict[str, Any], workdir: Path,
                 env: dict[str, str] | None = None) -> None:
        self.config_path = workdir / "alertline.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "daemon.log"
        self.env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
        self.proc: asyncio.subprocess.Process | None = None
        self.stdout = b""

    async def start(self) -> None:
        """Start the process (readiness is for the caller to await, e.g. the ``online`` status)."""
        log = self.log_path.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "alertline.cli.main", "run", "--config", str(self.config_path),
            stdout=asyncio.subprocess.PIPE, stderr=log, env=self.env, cwd=self.config_path.parent)
        log.close()

    async def read_line(self, within: float = 30.0) -> str:
        """The next line the daemon prints on stdout."""
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), within)
        self.stdout += line
        return line.decode()

    def kill(self) -> None:
        """SIGKILL: no chance to clean up."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        """SIGTERM: clean shutdown."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    async def wait(self, within: float = 30.0) -> int:
        """Wait for the exit code (and collect stdout)."""
        assert self.proc is not None
        out, _ = await asyncio.wait_for(self.proc.communicate(), within)
        self.stdout += out or b""
        return int(self.proc.returncode or 0)

    async def stop(self) -> None:
        """Make sure the process is gone."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.wait()

    @property
    def log(self) -> str:
        """What the daemon logged."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
