"""``make bench``: the daemon against its references, measured in the same run.

The provider is the Retarus REST emulator in its own process, answering each request after
``BENCH_LATENCY`` seconds (default 0.05, a typical round trip to a hosted API).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.daemon_run import run_daemon_bench
from bench.harness import EmulatorProcess
from bench.references import bridge, receive_ceiling
from bench.storm import run_storm
from tests.mosquitto import Mosquitto


def main() -> None:
    """Run every measurement and print the figures; the last line is machine-readable."""
    count = int(os.environ.get("BENCH_N", "10000"))
    seq_count = int(os.environ.get("BENCH_SEQ_N", "200"))
    conc_count = int(os.environ.get("BENCH_CONC_N", "2000"))
    ceiling_count = int(os.environ.get("BENCH_CEILING_N", "50000"))
    latency = float(os.environ.get("BENCH_LATENCY", "0.05"))
    with tempfile.TemporaryDirectory(prefix="alertline-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir=workdir / "broker")
        broker.start()
        try:
            with EmulatorProcess(workdir, latency=latency) as emulator:
                ceiling = receive_ceiling(broker.port, ceiling_count, workdir)
                print(f"receive ceiling:    {ceiling:,.0f} msg/s ({ceiling_count} messages)")
                seq = bridge(broker.port, seq_count, emulator.base_url, workdir, concurrency=1)
                print(f"sequential bridge:  {seq:,.1f} alerts/s ({seq_count} alerts)")
                conc = bridge(broker.port, conc_count, emulator.base_url, workdir,
                              concurrency=32)
                print(f"concurrent bridge:  {conc:,.0f} alerts/s ({conc_count} alerts, 32 "
                      "in flight)")
                daemon = run_daemon_bench(broker.port, emulator, count, workdir)
            print(f"daemon:             {daemon.alerts_per_s:,.0f} alerts/s ({count} alerts in "
                  f"{daemon.jobs} provider requests of {latency * 1000:.0f} ms)")
            print(f"overhead at {os.environ.get('BENCH_RATE', '200')}/s (publish → provider "
                  f"request): p50 {daemon.overhead_p50_ms:.1f} ms, "
                  f"p99 {daemon.overhead_p99_ms:.1f} ms")
            print(f"idle CPU {daemon.idle_cpu_pct:.2f} %, RSS idle {daemon.rss_idle_mb:.1f} MB, "
                  f"peak {daemon.rss_peak_mb:.1f} MB, store {daemon.store_bytes_per_alert:,.0f} "
                  "bytes per alert")
            storm = run_storm(broker.port, workdir)
            print(f"storm: {storm.storm_s:.1f} s until all submitted, {storm.storm_failed} "
                  f"failed, {storm.jobs} jobs admitted, {storm.refusals} refused with 429; "
                  f"high priority p99 {storm.priority_p99_ms:.0f} ms "
                  f"({storm.priority_samples} alerts)")
        finally:
            broker.stop()
    ratio_seq = daemon.alerts_per_s / seq
    ratio_conc = daemon.alerts_per_s / conc
    print(f"ratios: {ratio_seq:.0f}x the sequential bridge, {ratio_conc:.1f}x the concurrent one")
    print(f"alerts_per_s={daemon.alerts_per_s:.0f} ratio_seq={ratio_seq:.1f} "
          f"ratio_conc={ratio_conc:.2f} storm_s={storm.storm_s:.1f} "
          f"storm_failed={storm.storm_failed} priority_p99_ms={storm.priority_p99_ms:.0f} "
          f"overhead_p50_ms={daemon.overhead_p50_ms:.1f} "
          f"overhead_p99_ms={daemon.overhead_p99_ms:.1f} idle_cpu_pct={daemon.idle_cpu_pct:.2f} "
          f"rss_mb={daemon.rss_idle_mb:.1f} rss_peak_mb={daemon.rss_peak_mb:.1f} "
          f"store_bytes_per_alert={daemon.store_bytes_per_alert:.0f} "
          f"ceiling_per_s={ceiling:.0f} seq_per_s={seq:.1f} conc_per_s={conc:.0f}")


if __name__ == "__main__":
    main()
