"""``make bench``: the daemon against its references, measured in the same run.

The provider is the Retarus REST emulator in its own process, answering each request after
``BENCH_LATENCY`` seconds (default 0.05, a typical round trip to a hosted API). The references
are measured once; the daemon's figures once per store in ``BENCH_STORES`` (:mod:`bench.stores`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.daemon_run import DaemonFigures, run_daemon_bench
from bench.harness import EmulatorProcess
from bench.references import bridge, receive_ceiling
from bench.stores import BenchStore, chosen_stores, postgres_server
from bench.storm import StormFigures, run_storm
from tests.mosquitto import Mosquitto


def _report(choice: str, daemon: DaemonFigures, storm: StormFigures, count: int,
            latency: float) -> None:
    """The human-readable lines of one store's run."""
    print(f"[{choice}] daemon:  {daemon.alerts_per_s:,.0f} alerts/s ({count} alerts in "
          f"{daemon.jobs} provider requests of {latency * 1000:.0f} ms)")
    print(f"[{choice}] overhead at {os.environ.get('BENCH_RATE', '200')}/s (publish → provider "
          f"request): p50 {daemon.overhead_p50_ms:.1f} ms, p99 {daemon.overhead_p99_ms:.1f} ms")
    print(f"[{choice}] idle CPU {daemon.idle_cpu_pct:.2f} %, RSS idle {daemon.rss_idle_mb:.1f} "
          f"MB, peak {daemon.rss_peak_mb:.1f} MB, store "
          f"{daemon.store_bytes_per_alert:,.0f} bytes per alert")
    print(f"[{choice}] storm: {storm.storm_s:.1f} s until all submitted, {storm.storm_failed} "
          f"failed, {storm.jobs} jobs admitted, {storm.refusals} refused with 429; "
          f"high priority p99 {storm.priority_p99_ms:.0f} ms ({storm.priority_samples} alerts)")


def main() -> None:
    """Run every measurement and print the figures; the last lines (one per store, after the
    references' line) are machine-readable."""
    stores = chosen_stores()
    count = int(os.environ.get("BENCH_N", "10000"))
    seq_count = int(os.environ.get("BENCH_SEQ_N", "200"))
    conc_count = int(os.environ.get("BENCH_CONC_N", "2000"))
    ceiling_count = int(os.environ.get("BENCH_CEILING_N", "50000"))
    latency = float(os.environ.get("BENCH_LATENCY", "0.05"))
    results: dict[str, tuple[DaemonFigures, StormFigures]] = {}
    with tempfile.TemporaryDirectory(prefix="alertline-bench-") as tmp, \
            postgres_server(stores) as server:
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
                for choice in stores:
                    daemon = run_daemon_bench(broker.port, emulator, count, BenchStore(
                        choice, workdir, "bench", server))
                    storm = run_storm(broker.port, BenchStore(choice, workdir, "storm", server))
                    _report(choice, daemon, storm, count, latency)
                    results[choice] = (daemon, storm)
        finally:
            broker.stop()
    print(f"ceiling_per_s={ceiling:.0f} seq_per_s={seq:.1f} conc_per_s={conc:.0f}")
    for choice, (daemon, storm) in results.items():
        print(f"store={choice} alerts_per_s={daemon.alerts_per_s:.0f} "
              f"ratio_seq={daemon.alerts_per_s / seq:.1f} "
              f"ratio_conc={daemon.alerts_per_s / conc:.2f} storm_s={storm.storm_s:.1f} "
              f"storm_failed={storm.storm_failed} storm_refused={storm.refusals} "
              f"priority_p99_ms={storm.priority_p99_ms:.0f} "
              f"overhead_p50_ms={daemon.overhead_p50_ms:.1f} "
              f"overhead_p99_ms={daemon.overhead_p99_ms:.1f} "
              f"idle_cpu_pct={daemon.idle_cpu_pct:.2f} rss_mb={daemon.rss_idle_mb:.1f} "
              f"rss_peak_mb={daemon.rss_peak_mb:.1f} "
              f"store_bytes_per_alert={daemon.store_bytes_per_alert:.0f}")


if __name__ == "__main__":
    main()
