"""The daemon fixtures (a real Mosquitto, probes, in-process daemons) for the on-call tests."""

from tests.daemon.conftest import broker, probe, probe_factory, start_daemon

__all__ = ["broker", "probe", "probe_factory", "start_daemon"]
