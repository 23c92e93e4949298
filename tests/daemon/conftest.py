"""Fixtures for the daemon tests: a real Mosquitto per test, probes, in-process daemons."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from alertline.config.sections import Config
from alertline.daemon import Daemon
from tests.daemon.harness import WAIT, MqttProbe
from tests.mosquitto import Mosquitto, running_mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto broker of this test only, on a free loopback port."""
    with running_mosquitto(tmp_path / "mosquitto") as started:
        yield started


@pytest.fixture
async def probe_factory(broker: Mosquitto) -> AsyncIterator[Callable[..., Awaitable[MqttProbe]]]:
    """Connected test clients on ``broker``; closed at the end."""
    probes: list[MqttProbe] = []

    async def make(**kwargs: object) -> MqttProbe:
        probe = await MqttProbe(broker.host, broker.port, **kwargs).connect()  # type: ignore[arg-type]
        probes.append(probe)
        return probe

    yield make
    for probe in probes:
        await probe.close()


@pytest.fixture
async def probe(probe_factory: Callable[..., Awaitable[MqttProbe]]) -> MqttProbe:
    """One MQTT v5 test client subscribed to everything under ``alertline/``."""
    client = await probe_factory()
    await client.subscribe("alertline/#")
    return client


@pytest.fixture
async def start_daemon() -> AsyncIterator[Callable[[Config], Awaitable[Daemon]]]:
    """Start in-process daemons (connected to their broker); stopped at the end."""
    daemons: list[Daemon] = []

    async def start(config: Config) -> Daemon:
        daemon = Daemon(config, out=io.StringIO())
        daemons.append(daemon)
        await daemon.start()
        assert daemon.bridge is not None
        await asyncio.wait_for(daemon.bridge.wait_ready(), WAIT)
        return daemon

    yield start
    for daemon in daemons:
        await daemon.stop()
