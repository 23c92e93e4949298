"""Shared pieces of the benchmark: broker, emulator thread, MQTT clients, load generation."""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.mosquitto import free_port

USER, PASSWORD = "bench", "bench-secret"


class EmulatorProcess:
    """The Retarus REST emulator in its own process (as a real provider would be).

    ``latency`` is each answer's delay in seconds; ``burst`` jobs per ``window`` seconds are
    admitted (None: no limit). With ``refs``, :meth:`submissions` lists what each job carried.
    """

    def __init__(self, workdir: Path, *, name: str = "emulator", latency: float = 0.05,
                 burst: int | None = None, window: float = 10.0, refs: bool = False) -> None:
        self.port = free_port()
        self.latency = latency
        self.arrivals_path = workdir / f"{name}-arrivals.log"
        self.arrivals_path.touch()
        self.refs_path = workdir / f"{name}-refs.log"
        self._args = ["--latency", str(latency), "--window", str(window)]
        if burst is not None:
            self._args += ["--burst", str(burst)]
        if refs:
            self.refs_path.touch()
            self._args += ["--refs", str(self.refs_path)]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.emulator_proc", "--port", str(self.port),
             "--user", USER, "--password", PASSWORD, "--arrivals", str(self.arrivals_path),
             *self._args])
        deadline = time.time() + 20
        while time.time() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.05)  # readiness probe of another process
        raise RuntimeError("the emulator did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def base_url(self) -> str:
        """Where adapters send jobs."""
        return f"http://127.0.0.1:{self.port}/rest/v1"

    def _lines(self) -> list[list[str]]:
        return [line.split() for line in self.arrivals_path.read_text().splitlines()]

    def arrivals(self) -> list[Arrival]:
        """Every admitted job so far."""
        rows = []
        for parts in self._lines():
            if len(parts) >= 2 and parts[0] != "429":
                stamps = [(kind, float(stamp)) for kind, stamp in
                          (token.split(":", 1) for token in parts[2:])]
                rows.append(Arrival(float(parts[0]), int(parts[1]), stamps))
        return rows

    def refusals(self) -> list[float]:
        """When each 429 was answered."""
        return [float(parts[1]) for parts in self._lines() if parts and parts[0] == "429"]

    @property
    def jobs(self) -> int:
        """Jobs admitted so far."""
        return len(self.arrivals())

    def submissions(self) -> list[tuple[float, str]]:
        """(arrival time, customerRef) of every admitted recipient, in arrival order (needs
        ``refs``; alertline's customerRef is the delivery id); a line being written is left out."""
        text = self.refs_path.read_text()
        rows = [line.split() for line in text[:text.rfind("\n") + 1].splitlines()]
        return [(float(row[0]), ref) for row in rows for ref in row[1:]]

    def submission_counts(self) -> collections.Counter[str]:
        """How often each customerRef was admitted."""
        return collections.Counter(ref for _at, ref in self.submissions())


@dataclass(frozen=True)
class Arrival:
    """One admitted job: when it arrived, its recipients, and the publish stamps in its texts."""

    at: float
    recipients: int
    stamps: list[tuple[str, float]]

    def delays_ms(self, kind: str = "t") -> list[float]:
        """Publish → arrival in ms for the stamps of ``kind``."""
        return [(self.at - stamp) * 1000 for k, stamp in self.stamps if k == kind]


def mqtt_client(port: int, client_id: str, on_message: Callable[..., None] | None = None,
                topics: tuple[str, ...] = ()) -> mqtt.Client:
    """A connected, looping paho client (MQTT v5) subscribed to ``topics``."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5)
    connected = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        for topic in topics:
            c.subscribe(topic, qos=1)
        connected.set()

    client.on_connect = on_connect
    if on_message is not None:
        client.on_message = on_message
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not connected.wait(10):
        raise RuntimeError("bench client could not connect")
    return client


def publish_lines(port: int, topic: str, lines: list[str], workdir: Path) -> float:
    """Publish one message per line with ``mosquitto_pub -l`` (QoS 1); returns its start time."""
    path = workdir / f"load-{topic.replace('/', '_')}.txt"
    path.write_text("\n".join(lines) + "\n")
    started = time.time()
    with path.open("rb") as stdin:
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic,
                        "-q", "1", "-l"], stdin=stdin, check=True)
    return started


class Counter:
    """Counts MQTT messages and notes when a target count is reached."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.first: float | None = None
        self.last: float | None = None
        self.done = threading.Event()
        self._lock = threading.Lock()

    def hit(self) -> None:
        """Count one message."""
        with self._lock:
            now = time.time()
            self.first = self.first or now
            self.count += 1
            if self.count >= self.target and not self.done.is_set():
                self.last = now
                self.done.set()


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` fall."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@contextlib.contextmanager
def stopped(client: mqtt.Client) -> Iterator[mqtt.Client]:
    """Disconnect ``client`` on exit."""
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """A process's resident set size (or ``VmHWM`` peak) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
