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
    """``alertline run`` as a subprocess with a config pointing at the broker and the emulator."""

    def __init__(self, workdir: Path, broker_port: int, base_url: str, *, name: str = "bench",
                 provider: dict[str, Any] | None = None) -> None:
        self.workdir = workdir
        self.name = name
        self.db_path = workdir / f"{name}.db"
        config = {
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": f"alertline-{name}",
                     "discovery": False},
            "store": {"path": str(self.db_path)},
            "http": {"enabled": False},
            "providers": {"retarus": {
                "type": "retarus_sms", "base_url": base_url, "status_urls": [base_url],
                "username": USER, "password": PASSWORD, "poll_interval": 3600,
                **(provider or {})}},
            "defaults": {"provider": "retarus"},
            "logging": {"level": "WARNING"},
        }
        self.config_path = workdir / f"{name}.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The daemon's process id."""
        assert self.proc is not None
        return self.proc.pid

    def start(self, port: int) -> None:
        """Start the daemon and wait for its retained ``online`` status."""
        online = threading.Event()

        def on_status(_c: Any, _u: Any, message: Any) -> None:
            if message.payload == b"online":
                online.set()

        watcher = mqtt_client(port, f"{self.name}-status", on_status, ("alertline/status",))
        with stopped(watcher):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alertline", "run", "--config", str(self.config_path)],
                stdout=subprocess.DEVNULL,
                stderr=(self.workdir / f"{self.name}-daemon.log").open("wb"))
            if not online.wait(60):
                raise RuntimeError(f"the daemon did not come online; see {self.name}-daemon.log")

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None

    def store_bytes(self) -> int:
        """The store's size on disk: the database file and its write-ahead log."""
        return sum(path.stat().st_size for path in
                   (self.db_path, self.db_path.with_name(self.db_path.name + "-wal"))
                   if path.exists())


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


def throughput(port: int, count: int, workdir: Path) -> float:
    """Alerts/s from the first publish until every alert's job was answered by the provider."""
    watch = ReportWatch(port, "tp-", count)
    try:
        lines = [json.dumps({"id": f"tp-{i}", "to": "+491701234560", "message": f"load {i}"})
                 for i in range(count)]
        started = publish_lines(port, "alertline/send", lines, workdir)
        if not watch.counter.done.wait(900):
            raise RuntimeError(f"throughput: only {watch.counter.count}/{count} submitted")
    finally:
        watch.close()
    assert watch.counter.last is not None
    return count / max(1e-6, watch.counter.last - started)


def steady(port: int, rate: float, seconds: float, emulator: EmulatorProcess
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
            payload = json.dumps({"id": f"lat-{i}", "to": "+491701234561",
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


def idle_cpu(pid: int, seconds: float) -> float:
    """The daemon's CPU use in percent of one core while nothing happens."""
    before = cpu_seconds(pid)
    time.sleep(seconds)  # measuring an idle interval, not synchronising
    return 100 * (cpu_seconds(pid) - before) / seconds


def run_daemon_bench(port: int, emulator: EmulatorProcess, count: int,
                     workdir: Path) -> DaemonFigures:
    """Start the daemon; measure idle CPU and RSS, throughput, steady-rate overhead, peak RSS."""
    daemon = Daemon(workdir, port, emulator.base_url)
    jobs_before = emulator.jobs
    daemon.start(port)
    try:
        time.sleep(2)  # let start-up allocations settle before reading idle memory
        idle_rss = rss_mb(daemon.pid)
        idle_pct = idle_cpu(daemon.pid, float(os.environ.get("BENCH_IDLE_S", "60")))
        rate = throughput(port, count, workdir)
        jobs = emulator.jobs - jobs_before
        rate_steady = float(os.environ.get("BENCH_RATE", "200"))
        p50, p99 = steady(port, rate_steady, 5.0, emulator)
        peak = rss_mb(daemon.pid, "VmHWM")
    finally:
        daemon.stop()
    per_alert = daemon.store_bytes() / (count + int(rate_steady * 5.0))
    return DaemonFigures(rate, jobs, p50, p99, idle_pct, idle_rss, peak, per_alert)
