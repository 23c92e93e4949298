"""The daemon's numbers: Prometheus text exposition for ``/metrics`` and the stats topic."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from alertline.store.health import StoreUnavailableError

if TYPE_CHECKING:
    from alertline.engine.core import Engine
    from alertline.mqtt.bridge import MqttBridge
    from alertline.mqtt.inbound import InboundHandler
    from alertline.mqtt.outbox import OutboxPublisher

SUCCEEDED = frozenset({"delivered", "sent"})
FAILED = frozenset({"failed", "expired", "rejected"})


@dataclass(slots=True)
class Family:
    """One metric: name, type, help text and its samples ``(suffix, labels, value)``."""

    name: str
    type: str
    help: str
    samples: list[tuple[str, dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, *, suffix: str = "", **labels: str) -> Family:
        """Add a sample (``suffix`` such as ``_sum`` for summaries)."""
        self.samples.append((suffix, labels, value))
        return self


def render(families: Iterable[Family]) -> str:
    """The Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {family.help}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for suffix, labels, value in family.samples:
            name = family.name + suffix
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{label_text}}} {_number(value)}" if label_text
                         else f"{name} {_number(value)}")
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class DaemonMetrics:
    """Collects the engine's, the store's and the MQTT side's numbers."""

    def __init__(self, engine: Engine, *, handler: InboundHandler | None = None,
                 bridge: MqttBridge | None = None,
                 publisher: OutboxPublisher | None = None) -> None:
        self.engine = engine
        self.handler = handler
        self.bridge = bridge
        self.publisher = publisher
        self.sources: list[Callable[[], Iterable[Family]]] = []  # more families (on-call, watch)

    async def families(self) -> list[Family]:
        """Every metric, freshly collected."""
        engine = self.engine
        counters: Mapping[str, float] = engine.metrics
        stats = await _store_stats(engine)
        health = engine.store.health
        families = [
            Family("alertline_alerts_received_total", "counter",
                   "Alert requests received (MQTT, HTTP, CLI)").add(
                counters.get("alerts_received", 0)),
            Family("alertline_alerts_rejected_total", "counter",
                   "Alert requests rejected as invalid").add(counters.get("alerts_rejected", 0)),
            Family("alertline_alerts_duplicate_total", "counter",
                   "Alert requests recognised as repeats of an accepted alert").add(
                counters.get("alerts_duplicate", 0)),
            Family("alertline_open_alerts", "gauge", "Alerts not final yet").add(
                engine.open_alerts),
            Family("alertline_queue_depth", "gauge",
                   "Deliveries waiting for a provider request").add(engine.queue_depth()),
            Family("alertline_outbox_depth", "gauge",
                   "MQTT messages in the outbox, not yet acknowledged by the broker").add(
                stats.get("outbox", 0)),
            _deliveries(stats.get("deliveries", {})),
            Family("alertline_provider_requests_total", "counter",
                   "Provider requests made (submissions)").add(
                counters.get("provider_requests", 0)),
            Family("alertline_provider_errors_total", "counter",
                   "Provider requests that failed").add(counters.get("provider_errors", 0)),
            Family("alertline_provider_request_duration_seconds", "summary",
                   "Time spent in provider requests").add(
                counters.get("provider_seconds", 0.0), suffix="_sum").add(
                counters.get("provider_requests", 0), suffix="_count"),
            Family("alertline_store_commits_total", "counter",
                   "Store transactions (group commits)").add(engine.store.commits),
            Family("alertline_store_available", "gauge",
                   "1 while the store can be written; 0 while nothing is acknowledged").add(
                int(health.available)),
            Family("alertline_store_outages_total", "counter",
                   "Times the store stopped working (disk full, read-only, I/O error, locked)"
                   ).add(health.outages),
            Family("alertline_store_failed_attempts_total", "counter",
                   "Store operations that failed and were retried").add(health.failed_attempts),
        ]
        families.extend(self._mqtt_families())
        for source in self.sources:
            families.extend(source())
        return families

    def _mqtt_families(self) -> list[Family]:
        families: list[Family] = []
        if self.handler is not None:
            received = Family("alertline_mqtt_messages_total", "counter",
                              "Inbound MQTT messages handled, by topic kind")
            for kind, count in sorted(self.handler.received.items()):
                received.add(count, kind=kind)
            errors = Family("alertline_mqtt_errors_total", "counter",
                            "Inbound messages answered on the error topic, by error code")
            for code, count in sorted(self.handler.errors.items()):
                errors.add(count, error=code)
            families += [received, errors]
        if self.bridge is not None:
            families += [
                Family("alertline_mqtt_connected", "gauge",
                       "1 while the broker session is up").add(int(self.bridge.connected)),
                Family("alertline_mqtt_connects_total", "counter",
                       "Successful broker connections").add(self.bridge.stats["connects"]),
                Family("alertline_mqtt_publish_pending", "gauge",
                       "Published messages awaiting the broker's acknowledgement").add(
                    self.bridge.pending_publishes),
            ]
        if self.publisher is not None:
            families.append(Family("alertline_mqtt_reports_published_total", "counter",
                                   "Outbox messages published and acknowledged").add(
                self.publisher.published))
        return families

    async def text(self) -> str:
        """The ``/metrics`` body."""
        return render(await self.families())

    async def stats(self) -> dict[str, Any]:
        """The payload of the retained ``<base>/stats`` topic (Home Assistant sensors)."""
        engine = self.engine
        stats = await _store_stats(engine)
        by_state: dict[str, int] = {}
        for key, count in stats.get("deliveries", {}).items():
            state = key.split("|", 1)[-1]
            by_state[state] = by_state.get(state, 0) + int(count)
        return {
            "alerts_received": int(engine.metrics.get("alerts_received", 0)),
            "alerts_rejected": int(engine.metrics.get("alerts_rejected", 0)),
            "open_alerts": engine.open_alerts,
            "queue_depth": engine.queue_depth(),
            "deliveries_succeeded": sum(n for s, n in by_state.items() if s in SUCCEEDED),
            "deliveries_failed": sum(n for s, n in by_state.items() if s in FAILED),
            "outbox": int(stats.get("outbox", 0)),
        }


async def _store_stats(engine: Engine) -> dict[str, Any]:
    """The store's counts, or none while it cannot be read (the other numbers still matter)."""
    try:
        return await engine.store.stats()
    except StoreUnavailableError:
        return {}


def _deliveries(by_provider_state: Mapping[str, int]) -> Family:
    family = Family("alertline_deliveries", "gauge",
                    "Deliveries in the store by provider and state")
    for key, count in sorted(by_provider_state.items()):
        provider, _, state = key.partition("|")
        family.add(count, provider=provider, state=state)
    return family
