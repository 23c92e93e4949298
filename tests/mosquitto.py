"""A real Mosquitto broker for tests: started on a free loopback port, stoppable and restartable."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Block until the broker accepts connections (a readiness probe, not a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)  # polling a socket for readiness, there is no event to await
    raise RuntimeError(f"mosquitto did not listen on {port} within {timeout}s")


@dataclass
class Mosquitto:
    """One broker process with persistence in ``workdir`` (so a restart keeps sessions)."""

    workdir: Path
    port: int = field(default_factory=free_port)
    username: str | None = None
    password: str | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """The broker's address."""
        return "127.0.0.1"

    def _write_config(self) -> Path:
        lines = [
            # as root, mosquitto would drop to the "mosquitto" user and lose access to workdir
            *(["user root"] if os.geteuid() == 0 else []),
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {self.workdir}/",
            "autosave_interval 1",
            f"log_dest file {self.workdir}/mosquitto.log",
            "log_type error",
            "log_type warning",
            "max_queued_messages 100000",
            "max_inflight_messages 100",
        ]
        if self.username:
            passwd = self.workdir / "passwd"
            passwd.write_text(f"{self.username}:{self.password}\n")
            passwd.chmod(0o600)
            subprocess.run(["mosquitto_passwd", "-U", str(passwd)], check=True,
                           capture_output=True)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        path = self.workdir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> None:
        """Start (or restart) the broker on the same port."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self._write_config()
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        _wait_listening(self.port, self.proc)

    def stop(self) -> None:
        """Stop the broker gracefully (it saves its persistence file)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """Kill the broker without a chance to save."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@contextlib.contextmanager
def running_mosquitto(workdir: Path, **kwargs: str) -> Iterator[Mosquitto]:
    """A started broker that is stopped on exit."""
    broker = Mosquitto(workdir=workdir, **kwargs)  # type: ignore[arg-type]
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
