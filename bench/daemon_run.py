"""The daemon under load: Mosquitto → ``alertline run`` → a hosted-like emulator → reports."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.harness import (
    PASSWORD,
    USER,
    Counter,
    EmulatorProcess,
    cpu_seconds,
    mqtt_client,
    percentile,
    publish_lines,
    rss_mb,
    stopped,
)
from bench.stores import BenchStore

FAILED_STATES = ("failed", "rejected", "expired", "cancelled")


@dataclass
class DaemonFigures:
    """What the steady (unlimited provider) run measured."""

    alerts_per_s: float
    jobs: int
    overhead_p50_ms: float
    overhead_p99_ms: float
    idle_cpu_pct: float
    rss_idle_mb: float
    rss_peak_mb: float
    store_bytes_per_alert: float


class Daemon:
    """``alertline run`` as a subprocess with a config pointing at the broker and the emulator.

    ``store`` is its ``store:`` section; ``member`` names it in a cluster (several daemons on one
    PostgreSQL store), where each has its own MQTT client id.
    """

    def __init__(self, workdir: Path, broker_port: int, base_url: str, *, name: str = "bench",
                 store: dict[str, Any], provider: dict[str, Any] | None = None,
                 member: str | None = None) -> None:
        self.workdir = workdir
        self.name = name
        self.client_id = f"alertline-{name}"
        config: dict[str, Any] = {
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": self.client_id,
                     "discovery": False},
            "store": store,
            "http": {"enabled": False},
            "providers": {"retarus": {
                "type": "retarus_sms", "base_url": base_url, "status_urls": [base_url],
                "username": USER, "password": PASSWORD, "poll_interval": 3600,
                **(provider or {})}},
            "defaults": {"provider": "retarus"},
            "logging": {"level": "WARNING"},
        }
        if member is not None:
            config["cluster"] = {"member": member}
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, port: int) -> None:
        """Start the daemon and wait until it publishes ``online``.

        Only a live ``online`` counts: the retained one a daemon already running (or one stopped
        uncleanly) left on ``alertline/status`` arrives with the retain flag on subscription.
        """
        online = threading.Event()

        def on_status(_c: Any, _u: Any, message: Any) -> None:
            if message.payload == b"online" and not message.retain:
                online.set()

        watcher = mqtt_client(port, f"{self.name}-status", on_status, ("alertline/status",))
        with stopped(watcher):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alertline", "run", "--config", str(self.config_path)],
                stdout=subprocess.DEVNULL,
                stderr=(self.workdir / f"{self.name}-daemon.log").open("wb"))
            if not online.wait(60):
                raise RuntimeError(f"the daemon did not come online; see {self.name}-daemon.log")

    def stop(self, port: int) -> None:
        """SIGTERM and wait, then end its session at the broker.

        The daemon's session is persistent: left behind, the broker would queue every later
        phase's messages for it (and, for a shared subscription, hand it a share of them).
        """
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None
            # a clean start with no session expiry replaces the session and ends with it
            with stopped(mqtt_client(port, self.client_id)):
                pass


class Daemons:
    """The daemons of one bench phase on one store: one, or a cluster sharing the work."""

    def __init__(self, store: BenchStore, broker_port: int, base_url: str, *,
                 provider: dict[str, Any] | None = None) -> None:
        self.store = store
        store.create()
        clustered = store.daemons > 1
        self.members = [
            Daemon(store.workdir, broker_port, base_url,
                   name=f"{store.phase}-{store.choice}" + (f"-{i + 1}" if clustered else ""),
                   store=store.config(), provider=provider,
                   member=f"{store.phase}-{i + 1}" if clustered else None)
            for i in range(store.daemons)]

    @property
    def pids(self) -> list[int]:
        """Every daemon's process id."""
        return [d.pid for d in self.members]

    def start(self, port: int) -> None:
        """Start them one after the other, each once online."""
        for daemon in self.members:
            daemon.start(port)

    def stop(self, port: int) -> None:
        """Stop them all."""
        for daemon in self.members:
            daemon.stop(port)


class ReportWatch:
    """Follows ``alertline/report/<prefix>…``: when each alert left ``pending``, which failed."""

    def __init__(self, port: int, prefix: str, target: int) -> None:
        self.prefix = prefix
        self.counter = Counter(target)
        self.failed: set[str] = set()
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self.client = mqtt_client(port, f"bench-watch-{prefix}", self._on_report,
                                  ("alertline/report/#",))

    def _on_report(self, _c: Any, _u: Any, message: Any) -> None:
        if not message.topic.startswith(f"alertline/report/{self.prefix}"):
            return
        counts = json.loads(message.payload).get("counts", {})
        if counts.get("pending"):
            return
        with self._lock:
            if any(counts.get(state) for state in FAILED_STATES):
                self.failed.add(message.topic)
            if message.topic in self._seen:
                return
            self._seen.add(message.topic)
        self.counter.hit()

    def close(self) -> None:
        """Stop following."""
        self.client.disconnect()
        self.client.loop_stop()


def throughput(port: int, count: int, workdir: Path, tag: str) -> float:
    """Alerts/s from the first publish until every alert's job was answered by the provider.

    ``tag`` keeps each store's alert ids apart: the provider answers a repeated id as a
    duplicate, at once."""
    watch = ReportWatch(port, f"tp-{tag}-", count)
    try:
        lines = [json.dumps({"id": f"tp-{tag}-{i}", "to": "+491701234560",
                             "message": f"load {i}"}) for i in range(count)]
        started = publish_lines(port, "alertline/send", lines, workdir)
        if not watch.counter.done.wait(900):
            raise RuntimeError(f"throughput: only {watch.counter.count}/{count} submitted")
    finally:
        watch.close()
    assert watch.counter.last is not None
    return count / max(1e-6, watch.counter.last - started)


def steady(port: int, rate: float, seconds: float, emulator: EmulatorProcess, tag: str
           ) -> tuple[float, float]:
    """p50/p99 in ms from publish to the provider request's arrival, at a steady ``rate``."""
    count = int(rate * seconds)
    before = len(emulator.arrivals())
    publisher = mqtt_client(port, "bench-steady")
    with stopped(publisher):
        start = time.time()
        for i in range(count):
            due = start + i / rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)  # pacing the load generator, not synchronising a test
            payload = json.dumps({"id": f"lat-{tag}-{i}", "to": "+491701234561",
                                  "message": f"steady t={time.time():.6f}"})
            publisher.publish("alertline/send", payload, qos=1)
        deadline = time.time() + 60
        samples: list[float] = []
        while time.time() < deadline:
            samples = [d for a in emulator.arrivals()[before:] for d in a.delays_ms("t")]
            if len(samples) >= count:
                break
            time.sleep(0.1)  # waiting for the emulator process's side effect
    return percentile(samples, 0.5), percentile(samples, 0.99)


def idle_cpu(pids: list[int], seconds: float) -> float:
    """The daemons' CPU use together, in percent of one core, while nothing happens."""
    before = sum(cpu_seconds(pid) for pid in pids)
    time.sleep(seconds)  # measuring an idle interval, not synchronising
    return 100 * (sum(cpu_seconds(pid) for pid in pids) - before) / seconds


def run_daemon_bench(port: int, emulator: EmulatorProcess, count: int,
                     store: BenchStore) -> DaemonFigures:
    """Start the daemon(s); measure idle CPU and RSS, throughput, steady-rate overhead, peak RSS.

    With several daemons, idle CPU is their sum, RSS the mean of their idle sizes and the peak
    the largest.
    """
    daemons = Daemons(store, port, emulator.base_url)
    jobs_before = emulator.jobs
    daemons.start(port)
    try:
        time.sleep(2)  # let start-up allocations settle before reading idle memory
        idle_rss = sum(rss_mb(pid) for pid in daemons.pids) / len(daemons.pids)
        idle_pct = idle_cpu(daemons.pids, float(os.environ.get("BENCH_IDLE_S", "60")))
        rate = throughput(port, count, store.workdir, store.choice)
        jobs = emulator.jobs - jobs_before
        rate_steady = float(os.environ.get("BENCH_RATE", "200"))
        p50, p99 = steady(port, rate_steady, 5.0, emulator, store.choice)
        peak = max(rss_mb(pid, "VmHWM") for pid in daemons.pids)
    finally:
        daemons.stop(port)
    per_alert = store.bytes() / (count + int(rate_steady * 5.0))
    return DaemonFigures(rate, jobs, p50, p99, idle_pct, idle_rss, peak, per_alert)
