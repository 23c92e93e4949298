"""MQTT over TLS with a client certificate, against a real Mosquitto TLS listener."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from alertline.daemon import Daemon
from alertline.model import Report
from tests.daemon.harness import WAIT, daemon_config
from tests.mosquitto import Mosquitto


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def _issue(pki: Path, name: str, subject: str, extension: str | None = None) -> None:
    """A key and a certificate for ``name`` signed by the test CA."""
    _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-subj", subject, "-out", f"{name}.csr", cwd=pki)
    extra = ["-extfile", f"{name}.ext"] if extension else []
    if extension:
        (pki / f"{name}.ext").write_text(extension)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", *extra, cwd=pki)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate."""
    pki = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-subj", "/CN=alertline test CA", "-days", "2", "-out", "ca.crt", cwd=pki)
    _issue(pki, "server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n")
    _issue(pki, "client", "/CN=alertline")
    return pki


@dataclass
class TlsMosquitto(Mosquitto):
    """Mosquitto whose listener speaks TLS and wants a client certificate."""

    pki: Path = Path()

    def _write_config(self) -> Path:
        path = super()._write_config()
        path.write_text(path.read_text() + "".join(
            f"{line}\n" for line in (f"cafile {self.pki}/ca.crt", f"certfile {self.pki}/server.crt",
                                     f"keyfile {self.pki}/server.key", "require_certificate true")))
        return path


@pytest.fixture
def tls_broker(tmp_path: Path, pki: Path) -> Iterator[TlsMosquitto]:
    """A started TLS broker."""
    broker = TlsMosquitto(workdir=tmp_path / "tls-broker", pki=pki)
    broker.start()
    yield broker
    broker.stop()


async def test_alerts_flow_over_tls_with_a_client_certificate(
        tmp_path: Path, tls_broker: TlsMosquitto, pki: Path) -> None:
    tls = {"ca_certs": str(pki / "ca.crt"), "certfile": str(pki / "client.crt"),
           "keyfile": str(pki / "client.key")}
    daemon = Daemon(daemon_config(tmp_path, tls_broker, mqtt={"tls": tls}), out=io.StringIO())
    await daemon.start()
    try:
        assert daemon.bridge is not None and daemon.engine is not None
        await asyncio.wait_for(daemon.bridge.wait_ready(), WAIT)
        final = _final_state(daemon, "tls-1")
        publish = await asyncio.create_subprocess_exec(
            "mosquitto_pub", "-h", "127.0.0.1", "-p", str(tls_broker.port), "-q", "1",
            "--cafile", tls["ca_certs"], "--cert", tls["certfile"], "--key", tls["keyfile"],
            "-t", "alertline/send",
            "-m", json.dumps({"id": "tls-1", "to": "alice", "message": "over TLS"}))
        assert await asyncio.wait_for(publish.wait(), WAIT) == 0
        report = await asyncio.wait_for(final, WAIT)
    finally:
        await daemon.stop()

    assert report == "delivered"


def _final_state(daemon: Daemon, alert_id: str) -> asyncio.Future[str]:
    """Resolves with the alert's final state (an engine report listener)."""
    assert daemon.engine is not None
    final: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def listener(report: Report) -> None:
        if report.alert.id == alert_id and report.final and not final.done():
            final.set_result(report.state.value)

    unsubscribe = daemon.engine.subscribe(listener)
    final.add_done_callback(lambda _f: unsubscribe())
    return final


async def test_without_the_client_certificate_the_broker_refuses_and_the_daemon_says_so(
        tmp_path: Path, tls_broker: TlsMosquitto, pki: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    config = daemon_config(tmp_path, tls_broker, mqtt={"tls": {"ca_certs": str(pki / "ca.crt")}})
    daemon = Daemon(config, out=io.StringIO())
    await daemon.start()
    try:
        assert daemon.bridge is not None
        await asyncio.wait_for(_logged(caplog, "cannot connect to the MQTT broker"), WAIT)
        assert not daemon.bridge.connected
    finally:
        await daemon.stop()


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> None:
    while text not in caplog.text:  # noqa: ASYNC110 - log records have no event to await
        await asyncio.sleep(0.05)
