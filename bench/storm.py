"""An alert storm through a provider that rate-limits, with high-priority alerts in the middle.

10,000 alerts (``BENCH_STORM_N``) go to a provider that admits ``BENCH_STORM_BURST`` (2) jobs per
10 s and refuses the rest with 429, as Retarus does. Measured: seconds until every storm alert was
submitted, how many failed (must be none: a rate limit delays, it never fails), how many 429s the
provider had to answer, and for ``priority: high`` alerts published during the storm the delay
from publish to the provider request that carried them.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass

from bench.daemon_run import Daemons, ReportWatch
from bench.harness import EmulatorProcess, mqtt_client, percentile, publish_lines, stopped
from bench.stores import BenchStore

PACED = os.environ.get("BENCH_STORM_PACED", "1") == "1"


@dataclass
class StormFigures:
    """What the storm measured."""

    storm_s: float
    storm_failed: int
    refusals: int
    jobs: int
    priority_p99_ms: float
    priority_samples: int


def _publish_high(port: int, tag: str, count: int, every: float, stop: threading.Event,
                  sent: list[int]) -> None:
    publisher = mqtt_client(port, "bench-high")
    with stopped(publisher):
        for i in range(count):
            if stop.wait(every):
                return
            payload = json.dumps({"id": f"hi-{tag}-{i}", "to": "+491701234562", "priority": "high",
                                  "message": f"critical p={time.time():.6f}"})
            publisher.publish("alertline/send", payload, qos=1)
            sent.append(i)


def run_storm(port: int, store: BenchStore) -> StormFigures:
    """Run the storm against its own rate-limited emulator and daemon(s).

    Every daemon is told the provider's limit; with two on one store each paces itself.
    """
    workdir = store.workdir
    count = int(os.environ.get("BENCH_STORM_N", "10000"))
    burst = int(os.environ.get("BENCH_STORM_BURST", "2"))
    high = int(os.environ.get("BENCH_PRIORITY_N", "5"))
    with EmulatorProcess(workdir, name=f"storm-{store.choice}", burst=burst,
                         window=10.0) as emulator:
        # the operator knows the provider's limit and tells the daemon, which then paces its
        # jobs and keeps the last request of each window for high priority
        pacing = {"rate_limit": {"jobs": burst, "per": "10s"}} if PACED else {}
        daemons = Daemons(store, port, emulator.base_url, provider=pacing)
        daemons.start(port)
        watch = ReportWatch(port, f"storm-{store.choice}-", count)
        stop = threading.Event()
        sent: list[int] = []
        # one high-priority alert per window: as many as a limit of a few jobs per 10 s can
        # carry at once while the storm moves on
        sender = threading.Thread(target=_publish_high,
                                  args=(port, store.choice, high, 10.5, stop, sent))
        try:
            lines = [json.dumps({"id": f"storm-{store.choice}-{i}", "to": "+491701234560",
                                 "message": f"storm {i}"}) for i in range(count)]
            sender.start()
            started = publish_lines(port, "alertline/send", lines, workdir)
            if not watch.counter.done.wait(900):
                raise RuntimeError(f"storm: only {watch.counter.count}/{count} submitted")
            storm_s = (watch.counter.last or time.time()) - started
            stop.set()
            sender.join(60)
            deadline = time.time() + 60
            samples: list[float] = []
            while time.time() < deadline:
                samples = [d for a in emulator.arrivals() for d in a.delays_ms("p")]
                if len(samples) >= len(sent):
                    break
                time.sleep(0.1)  # waiting for the emulator process's side effect
        finally:
            stop.set()
            watch.close()
            daemons.stop(port)
        return StormFigures(
            storm_s=storm_s, storm_failed=len(watch.failed),
            refusals=len(emulator.refusals()), jobs=emulator.jobs,
            priority_p99_ms=percentile(samples, 0.99), priority_samples=len(samples))
