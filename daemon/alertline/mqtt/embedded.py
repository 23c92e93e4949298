"""The embedded MQTT broker (amqtt) the daemon starts when no ``mqtt.host`` is configured."""

from __future__ import annotations

import logging
from typing import Any

from alertline.errors import AlertlineError

EMBEDDED_HOST = "127.0.0.1"


class EmbeddedBrokerError(AlertlineError):
    """The embedded broker cannot start (amqtt missing, the port taken)."""


async def start_embedded_broker(port: int) -> Any:
    """An amqtt broker on 127.0.0.1:``port`` (anonymous, loopback only)."""
    try:
        from amqtt.broker import Broker  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise EmbeddedBrokerError(
            "no mqtt.host is configured and the embedded broker needs amqtt: install "
            "'alertline[broker]', or set mqtt.host to your broker") from None
    for noisy in ("amqtt", "transitions"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    broker = Broker({
        "listeners": {"default": {"type": "tcp", "bind": f"{EMBEDDED_HOST}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    })
    try:
        await broker.start()
    except Exception as err:
        raise EmbeddedBrokerError(
            f"the embedded MQTT broker cannot listen on {EMBEDDED_HOST}:{port}: {err} (another "
            f"broker there? then set mqtt.host: {EMBEDDED_HOST} to use it, or change "
            "mqtt.port)") from None
    return broker
