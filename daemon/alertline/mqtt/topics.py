"""The MQTT topic names of the contract (DESIGN.md), and parsing of inbound topics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class InboundKind(StrEnum):
    """What an inbound topic asks for."""

    SEND = "send"
    ALERTMANAGER = "alertmanager"
    ACK = "ack"
    CANCEL = "cancel"
    RESOLVE = "resolve"
    HOMEASSISTANT_STATUS = "homeassistant_status"


# kinds whose topic level after the base carries an argument: a route or an alert id
_WITH_ARGUMENT = {
    "send": InboundKind.SEND,
    "alertmanager": InboundKind.ALERTMANAGER,
    "ack": InboundKind.ACK,
    "cancel": InboundKind.CANCEL,
    "resolve": InboundKind.RESOLVE,
}
# kinds that act on earlier messages, so they wait until those are done (see mqtt.py)
ORDERED_KINDS = frozenset({InboundKind.ALERTMANAGER, InboundKind.ACK, InboundKind.CANCEL,
                           InboundKind.RESOLVE})


def shared_filter(group: str, topic_filter: str) -> str:
    """``topic_filter`` as a shared subscription of ``group`` (MQTT 5's ``$share/``, which
    Mosquitto 2, EMQX, HiveMQ and VerneMQ also accept from 3.1.1 clients): the broker hands each
    matching message to one subscriber of the group, on the plain topic."""
    if not group or any(c in group for c in "/+#"):
        raise ValueError(f"invalid share group {group!r}: it must be non-empty, without /, + "
                         "or #")
    return f"$share/{group}/{topic_filter}"


@dataclass(frozen=True, slots=True)
class InboundTopic:
    """A parsed inbound topic: its kind and argument (route for send/alertmanager, else id)."""

    kind: InboundKind
    argument: str | None = None


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic alertline uses, under one base topic and one discovery prefix.

    ``response_prefix`` is where MQTT v5 response topics may point (default ``<base>/reply/``):
    the daemon publishes its answers with its own credentials, so a client may not make it
    publish on arbitrary topics (another application's commands, Home Assistant's discovery).
    """

    base: str = "alertline"
    discovery_prefix: str = "homeassistant"
    response_prefix: str | None = None

    @property
    def reply_prefix(self) -> str:
        """The prefix every MQTT v5 response topic must start with."""
        prefix = self.response_prefix or f"{self.base}/reply/"
        return prefix if prefix.endswith("/") else prefix + "/"

    def may_answer_on(self, topic: str) -> bool:
        """Whether an MQTT v5 response topic may be answered: under :attr:`reply_prefix`, no
        wildcards, and not one of the topics the daemon itself acts on."""
        prefix = self.reply_prefix
        return (topic.startswith(prefix) and len(topic) > len(prefix)
                and not any(char in topic for char in "+#\0") and self.parse(topic) is None)

    # -- inbound ---------------------------------------------------------------------------

    @property
    def send(self) -> str:
        """Alert requests (JSON)."""
        return f"{self.base}/send"

    def send_route(self, route: str) -> str:
        """Alert requests for a named route (JSON or plain text)."""
        return f"{self.base}/send/{route}"

    def alertmanager(self, route: str) -> str:
        """Prometheus Alertmanager webhook payloads for a route."""
        return f"{self.base}/alertmanager/{route}"

    def ack(self, alert_id: str) -> str:
        """Acknowledge an alert."""
        return f"{self.base}/ack/{alert_id}"

    def cancel(self, alert_id: str) -> str:
        """Cancel what has not been delivered yet."""
        return f"{self.base}/cancel/{alert_id}"

    def resolve(self, alert_id: str) -> str:
        """Mark an alert's cause as gone."""
        return f"{self.base}/resolve/{alert_id}"

    @property
    def homeassistant_status(self) -> str:
        """Home Assistant's birth and last-will topic."""
        return f"{self.discovery_prefix}/status"

    def subscriptions(self, *, homeassistant: bool = True) -> list[str]:
        """The topic filters the daemon subscribes to."""
        filters = [self.send, f"{self.base}/send/+", f"{self.base}/alertmanager/+",
                   f"{self.base}/ack/+", f"{self.base}/cancel/+", f"{self.base}/resolve/+"]
        if homeassistant:
            filters.append(self.homeassistant_status)
        return filters

    def parse(self, topic: str) -> InboundTopic | None:
        """The kind and argument of an inbound ``topic``; None if it is none of ours."""
        if topic == self.homeassistant_status:
            return InboundTopic(InboundKind.HOMEASSISTANT_STATUS)
        prefix = f"{self.base}/"
        if not topic.startswith(prefix):
            return None
        parts = topic[len(prefix):].split("/")
        if parts == ["send"]:
            return InboundTopic(InboundKind.SEND)
        kind = _WITH_ARGUMENT.get(parts[0])
        if kind is None or len(parts) != 2 or not parts[1]:
            return None
        return InboundTopic(kind, parts[1])

    # -- outbound --------------------------------------------------------------------------

    def accepted(self, alert_id: str) -> str:
        """Published once an alert is persisted."""
        return f"{self.base}/accepted/{alert_id}"

    def report(self, alert_id: str) -> str:
        """The full report, on every state change."""
        return f"{self.base}/report/{alert_id}"

    @property
    def error(self) -> str:
        """One message for every rejected inbound message."""
        return f"{self.base}/error"

    @property
    def status(self) -> str:
        """``online`` / ``offline``, retained; ``offline`` is the last will."""
        return f"{self.base}/status"

    @property
    def last_report(self) -> str:
        """The latest report's summary, retained (Home Assistant sensor)."""
        return f"{self.base}/last_report"

    def route_last_report(self, route: str) -> str:
        """The latest report's summary of one route, retained."""
        return f"{self.base}/last_report/{route}"

    @property
    def stats(self) -> str:
        """Counters, retained (Home Assistant sensors)."""
        return f"{self.base}/stats"

    # -- on-call (schedules, heartbeats) -------------------------------------------------------

    def heartbeat(self, name: str) -> str:
        """A ping of heartbeat ``name`` (any payload)."""
        return f"{self.base}/heartbeat/{name}"

    def heartbeat_state(self, name: str) -> str:
        """Heartbeat ``name``'s state, retained."""
        return f"{self.base}/heartbeat/{name}/state"

    def heartbeat_name(self, topic: str) -> str | None:
        """The heartbeat a ping topic names (None for any other topic)."""
        prefix = f"{self.base}/heartbeat/"
        name = topic[len(prefix):] if topic.startswith(prefix) else ""
        return name if name and "/" not in name else None

    def oncall(self, schedule: str) -> str:
        """Who is on call in ``schedule``, retained, republished at each handoff."""
        return f"{self.base}/oncall/{schedule}"

    def discovery_config(self, component: str, node_id: str, object_id: str) -> str:
        """A Home Assistant MQTT discovery config topic."""
        return f"{self.discovery_prefix}/{component}/{node_id}/{object_id}/config"
