"""The daemon under load: Mosquitto → ``alertline run`` → Retarus REST emulator → reports."""

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
    mqtt_client,
    percentile,
    publish_lines,
    rss_mb,
    stopped,
)


@dataclass
class DaemonFigures:
    """What the daemon run measured."""

    alerts_per_s: float
    p50_ms: float
    p99_ms: float
    rss_idle_mb: float
    rss_peak_mb: float
    jobs: int


class Daemon:
    """``alertline run`` as a subprocess with a config pointing at the broker and the emulator."""

    def __init__(self, workdir: Path, broker_port: int, base_url: str) -> None:
        self.workdir = workdir
        config = {
            "mqtt": {"host": "127.0.0.1", "port": broker_port, "client_id": "alertline-bench",
                     "discovery": False},
            "store": {"path": str(workdir / "bench.db")},
            "http": {"enabled": False},
            "providers": {"retarus": {
                "type": "retarus_sms", "base_url": base_url, "status_urls": [base_url],
                "username": USER, "password": PASSWORD, "poll_interval": 3600}},
            "defaults": {"provider": "retarus"},
            "logging": {"level": "WARNING"},
        }
        self.config_path = workdir / "bench.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, port: int) -> None:
        """Start the daemon and wait for its retained ``online`` status."""
        online = threading.Event()

        def on_status(_c: Any, _u: Any, message: Any) -> None:
            if message.payload == b"online":
                online.set()

        watcher = mqtt_client(port, "bench-status", on_status, ("alertline/status",))
        with stopped(watcher):
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "alertline", "run", "--config", str(self.config_path)],
                stdout=subprocess.DEVNULL, stderr=(self.workdir / "daemon.log").open("wb"))
            if not online.wait(60):
                raise RuntimeError("the daemon did not come online; see daemon.log")

    def stop(self) -> None:
        """SIGTERM and wait."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self.proc = None


def _submitted_counter(target: int) -> tuple[Counter, Any]:
    counter = Counter(target)
    seen: set[str] = set()
    lock = threading.Lock()

    def on_report(_c: Any, _u: Any, message: Any) -> None:
        # a one-recipient alert's report no longer says "pending" once its job was answered
        if b'"pending"' in message.payload:
            return
        with lock:
            if message.topic in seen:
                return
            seen.add(message.topic)
        counter.hit()

    return counter, on_report


def throughput(port: int, count: int, workdir: Path) -> float:
    """Alerts/s from the first publish until every alert's job was answered by the emulator."""
    counter, on_report = _submitted_counter(count)
    client = mqtt_client(port, "bench-reports", on_report, ("alertline/report/#",))
    with stopped(client):
        lines = [json.dumps({"id": f"tp-{i}", "to": "+491701234560", "message": f"load {i}"})
                 for i in range(count)]
        started = publish_lines(port, "alertline/send", lines, workdir)
        if not counter.done.wait(900):
            raise RuntimeError(f"throughput: only {counter.count}/{count} alerts submitted")
    assert counter.last is not None
    return count / max(1e-6, counter.last - started)


def latency(port: int, rate: float, seconds: float, emulator: EmulatorProcess
            ) -> tuple[float, float]:
    """p50/p99 in ms from publish to provider request, publishing at a steady ``rate``."""
    count = int(rate * seconds)
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
            samples = [(arrived - stamp) * 1000 for arrived, _, stamps in emulator.arrivals()
                       for stamp in stamps]
            if len(samples) >= count:
                break
            time.sleep(0.1)  # waiting for the emulator process's side effect
    return percentile(samples, 0.5), percentile(samples, 0.99)


def run_daemon_bench(port: int, emulator: EmulatorProcess, count: int,
                     workdir: Path) -> DaemonFigures:
    """Start the daemon, measure idle RSS, throughput, steady-rate latency and peak RSS."""
    daemon = Daemon(workdir, port, emulator.base_url)
    jobs_before = emulator.jobs
    daemon.start(port)
    assert daemon.proc is not None
    try:
        time.sleep(2)  # let start-up allocations settle before reading idle memory
        idle = rss_mb(daemon.proc.pid)
        rate = throughput(port, count, workdir)
        jobs = emulator.jobs - jobs_before
        p50, p99 = latency(port, float(os.environ.get("BENCH_RATE", "200")), 5.0, emulator)
        peak = rss_mb(daemon.proc.pid, "VmHWM")
    finally:
        daemon.stop()
    return DaemonFigures(rate, p50, p99, idle, peak, jobs)
