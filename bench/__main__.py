"""``make bench``: the daemon against its two references, measured in the same run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.daemon_run import run_daemon_bench
from bench.harness import EmulatorProcess
from bench.references import naive_floor, receive_ceiling
from tests.mosquitto import Mosquitto


def main() -> None:
    """Run every measurement and print the figures; the last line is machine-readable."""
    count = int(os.environ.get("BENCH_N", "10000"))
    floor_count = int(os.environ.get("BENCH_FLOOR_N", "2000"))
    ceiling_count = int(os.environ.get("BENCH_CEILING_N", "50000"))
    with tempfile.TemporaryDirectory(prefix="alertline-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir=workdir / "broker")
        broker.start()
        try:
            with EmulatorProcess(workdir) as emulator:
                ceiling = receive_ceiling(broker.port, ceiling_count, workdir)
                print(f"receive ceiling: {ceiling:,.0f} msg/s ({ceiling_count} messages)")
                floor = naive_floor(broker.port, floor_count, emulator.base_url, workdir)
                print(f"naive floor:     {floor:,.0f} alerts/s ({floor_count} alerts)")
                figures = run_daemon_bench(broker.port, emulator, count, workdir)
                print(f"daemon:          {figures.alerts_per_s:,.0f} alerts/s ({count} alerts in "
                      f"{figures.jobs} provider requests)")
                print(f"latency publish→provider at {os.environ.get('BENCH_RATE', '200')}/s: "
                      f"p50 {figures.p50_ms:.1f} ms, p99 {figures.p99_ms:.1f} ms")
                print(f"daemon RSS: idle {figures.rss_idle_mb:.1f} MB, "
                      f"peak {figures.rss_peak_mb:.1f} MB")
        finally:
            broker.stop()
    ratio = figures.alerts_per_s / floor
    print(f"ratio to the naive floor: {ratio:.1f}x")
    print(f"alerts_per_s={figures.alerts_per_s:.0f} floor_per_s={floor:.0f} "
          f"ceiling_per_s={ceiling:.0f} ratio={ratio:.2f} p50_ms={figures.p50_ms:.1f} "
          f"p99_ms={figures.p99_ms:.1f} rss_mb={figures.rss_idle_mb:.1f}")


if __name__ == "__main__":
    main()
