"""A hostile HTTP client cannot take the daemon's HTTP server down: a slowloris flood, a body
that never ends; ``/healthz`` keeps answering and the log stays small meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import pytest

from alertline.config.sections import Config
from alertline.daemon import Daemon
from alertline.http.guard import ConnectionLimits, LogThrottle
from tests.daemon.harness import AM_TOKEN, daemon_config
from tests.mosquitto import Mosquitto

StartDaemon = Callable[[Config], Awaitable[Daemon]]
ATTACKER = "127.0.0.2"  # another loopback address: the monitor polls /healthz from 127.0.0.1
SLOW_CONNECTIONS = 300
PER_CLIENT = 16
HEADER_TIMEOUT = 1.0


class SlowClient:
    """One slowloris connection: a request head that never ends, a line now and then."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 opened: float) -> None:
        self.reader, self.writer, self.opened = reader, writer, opened

    @classmethod
    async def open(cls, port: int, head: bytes) -> SlowClient:
        loop = asyncio.get_running_loop()
        reader, writer = await asyncio.open_connection("127.0.0.1", port,
                                                       local_addr=(ATTACKER, 0))
        writer.write(head)
        return cls(reader, writer, loop.time())

    def trickle(self, line: bytes) -> None:
        if not self.writer.is_closing():
            with contextlib.suppress(OSError):
                self.writer.write(line)

    async def ending(self) -> tuple[bytes, float]:
        """The server's first bytes (b"" if it just closed), and after how many seconds."""
        try:
            answer = await self.reader.read(64)
        except OSError:
            answer = b""
        closed = asyncio.get_running_loop().time() - self.opened
        self.writer.close()
        return answer, closed


async def _trickle(clients: list[SlowClient], line: bytes) -> None:
    while True:
        for client in clients:
            client.trickle(line)
        await asyncio.sleep(0.2)  # the attacker's pace, not a synchronisation


def _url(daemon: Daemon, path: str) -> str:
    assert daemon.http is not None
    return f"http://127.0.0.1:{daemon.http.port}{path}"


async def test_a_slowloris_flood_neither_silences_healthz_nor_floods_the_log(
        tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    daemon = await start_daemon(daemon_config(tmp_path, broker, http={
        "header_timeout": HEADER_TIMEOUT, "max_connections_per_client": PER_CLIENT}))
    assert daemon.http is not None
    before = len(caplog.records)

    clients = await asyncio.gather(*(
        SlowClient.open(daemon.http.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for _ in range(SLOW_CONNECTIONS)))
    trickling = asyncio.create_task(_trickle(clients, b"X-Slow: 1\r\n"))
    try:
        async with httpx.AsyncClient(timeout=2.0) as http:
            answers = [await http.get(_url(daemon, "/healthz")) for _ in range(5)]
        endings = await asyncio.wait_for(asyncio.gather(*(c.ending() for c in clients)),
                                         HEADER_TIMEOUT + 10)
    finally:
        trickling.cancel()

    assert [a.status_code for a in answers] == [200] * 5
    refused = [seconds for answer, seconds in endings if answer.startswith(b"HTTP/1.1 503")]
    admitted = [(answer, seconds) for answer, seconds in endings
                if not answer.startswith(b"HTTP/1.1 503")]
    assert len(refused) == SLOW_CONNECTIONS - PER_CLIENT
    assert len(admitted) == PER_CLIENT
    # each admitted slow connection is closed once its head is overdue, trickle or not
    assert all(HEADER_TIMEOUT * 0.9 <= seconds < HEADER_TIMEOUT + 5 for _, seconds in admitted)
    lines = [record.getMessage() for record in caplog.records[before:]]
    assert 1 <= len(lines) <= 10, lines
    assert sum(len(line) for line in lines) < 4000
    assert daemon.http.guard is not None and daemon.http.guard.active == 0


async def test_a_body_that_never_ends_is_cut_off(
        tmp_path: Path, broker: Mosquitto, start_daemon: StartDaemon,
        caplog: pytest.LogCaptureFixture) -> None:
    daemon = await start_daemon(daemon_config(tmp_path, broker, http={"body_timeout": 1}))
    assert daemon.http is not None
    head = (f"POST /alertmanager/door HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AM_TOKEN}"
            "\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{").encode()
    client = await SlowClient.open(daemon.http.port, head)
    trickling = asyncio.create_task(_trickle([client], b" "))
    try:
        answer, seconds = await asyncio.wait_for(client.ending(), 10)
    finally:
        trickling.cancel()
    async with httpx.AsyncClient(timeout=2.0) as http:
        health = await http.get(_url(daemon, "/healthz"))

    assert not answer.startswith(b"HTTP/1.1 2")
    assert 0.9 <= seconds < 6
    assert health.status_code == 200
    assert "did not arrive within 1s (http.body_timeout)" in caplog.text


def test_repeated_client_errors_are_logged_a_few_times_then_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    throttle = LogThrottle(logging.getLogger("tests.throttle"), burst=3, window=60,
                           clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="tests.throttle"):
        for _ in range(100):
            throttle.warning("bad-token", "unauthorized from %s", "10.0.0.9")
        throttle.warning("other", "something else")
        now[0] = 61
        throttle.warning("bad-token", "unauthorized from %s", "10.0.0.9")

    assert [r.getMessage() for r in caplog.records] == [
        "unauthorized from 10.0.0.9"] * 3 + [
        "something else", "unauthorized from 10.0.0.9 (97 similar lines suppressed)"]


def test_the_systemd_unit_leaves_room_above_the_connection_cap() -> None:
    unit = Path(__file__).resolve().parents[2] / "deploy" / "alertline.service"
    settings = dict(line.split("=", 1) for line in unit.read_text().splitlines()
                    if "=" in line and not line.startswith("#"))
    assert int(settings["LimitNOFILE"]) >= 4 * ConnectionLimits().max_connections
