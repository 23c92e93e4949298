"""Connecting to the broker: settings from the ``mqtt`` config section, paho clients with TLS and
credentials, MQTT v5 properties. Shared by the daemon's bridge and the command-line tools."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from alertline.errors import AlertlineError

# At most this many unacknowledged QoS 1 messages from the broker at once (MQTT v5): bounds the
# memory and the work in progress, while leaving enough to fill large group commits.
RECEIVE_MAXIMUM = 1000


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS for the broker connection: CA bundle, optional client certificate."""

    ca_certs: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    insecure: bool = False


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """How to reach the broker (the ``mqtt`` config section)."""

    host: str
    port: int = 1883
    client_id: str = "alertline"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    keepalive: int = 30
    session_expiry: int = 7 * 86400
    protocol: str = "5"
    tls: TlsSettings | None = None

    @classmethod
    def from_config(cls, section: dict[str, Any], *, host: str | None = None,
                    protocol: str | None = None) -> MqttSettings:
        """Settings from a validated ``mqtt`` section; ``host``/``protocol`` override it."""
        tls = section.get("tls")
        return cls(host=host or section.get("host") or "127.0.0.1",
                   port=int(section.get("port", 1883)),
                   client_id=section.get("client_id", "alertline"),
                   username=section.get("username"), password=section.get("password"),
                   keepalive=int(section.get("keepalive", 30)),
                   session_expiry=int(section.get("session_expiry", 7 * 86400)),
                   protocol=protocol or str(section.get("protocol", "5")),
                   tls=TlsSettings(ca_certs=tls.get("ca_certs"), certfile=tls.get("certfile"),
                                   keyfile=tls.get("keyfile"),
                                   insecure=bool(tls.get("insecure"))) if tls else None)

    @property
    def v5(self) -> bool:
        """Whether MQTT v5 is spoken (else 3.1.1)."""
        return self.protocol == "5"


def create_client(settings: MqttSettings, *, client_id: str, persistent: bool,
                  manual_ack: bool = False, reconnect_on_failure: bool = True) -> paho.Client:
    """A paho client with the protocol, credentials and TLS of ``settings`` (not connected).

    ``reconnect_on_failure=False`` for a client whose owner reconnects it (paho's own retries
    would otherwise open sockets behind the owner's back)."""
    if settings.v5:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             protocol=paho.MQTTv5, manual_ack=manual_ack,
                             reconnect_on_failure=reconnect_on_failure)
    else:
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                             clean_session=not persistent, protocol=paho.MQTTv311,
                             manual_ack=manual_ack, reconnect_on_failure=reconnect_on_failure)
    if settings.username:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        try:
            client.tls_set(ca_certs=settings.tls.ca_certs, certfile=settings.tls.certfile,
                           keyfile=settings.tls.keyfile)
        except (OSError, ValueError) as err:
            raise AlertlineError(f"mqtt.tls: cannot load the certificates: {err}") from None
        client.tls_insecure_set(settings.tls.insecure)
    return client


def connect_async(client: paho.Client, settings: MqttSettings, *, persistent: bool) -> None:
    """Tell ``client`` where and how to connect (with a session expiry when ``persistent``
    under v5); its network loop (``loop_start`` or the bridge's driver) opens the connection."""
    if settings.v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.ReceiveMaximum = RECEIVE_MAXIMUM
        if persistent and settings.session_expiry:
            properties.SessionExpiryInterval = settings.session_expiry
        client.connect_async(settings.host, settings.port, settings.keepalive,
                             clean_start=not persistent, properties=properties)
    else:
        client.connect_async(settings.host, settings.port, settings.keepalive)


def publish_properties(correlation_data: bytes | None = None,
                       response_topic: str | None = None) -> Properties | None:
    """MQTT v5 PUBLISH properties for a request or a response (None if there are none)."""
    if correlation_data is None and response_topic is None:
        return None
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if correlation_data is not None:
        properties.CorrelationData = correlation_data
    if response_topic is not None:
        properties.ResponseTopic = response_topic
    return properties
