"""``alertline publish | ack | cancel | resolve``: talk to a running daemon through its broker.

``publish`` sends an alert request and follows it: the accepted answer arrives on an MQTT v5
response topic (with correlation data), the reports on ``<base>/report/<id>``. With the embedded
broker (MQTT 3.1.1, no response topics) the answers are read from ``accepted/<id>`` and
``error`` instead. The request gets an id when none is given, so its reports can be followed.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as paho

from alertline.config.sections import Config
from alertline.errors import AlertlineError
from alertline.intake.request import parse_request
from alertline.model import Channel
from alertline.mqtt.client import MqttSettings, connect_async, create_client, publish_properties
from alertline.mqtt.inbound import encode
from alertline.mqtt.topics import Topics

ANSWER_SECONDS = 30.0
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


def add_mqtt_parsers(commands: Any) -> None:
    """Add ``publish``, ``ack``, ``cancel`` and ``resolve`` to the ``alertline`` command."""
    publish = commands.add_parser("publish", help="publish an alert to the running daemon over "
                                  "MQTT and follow its reports")
    _common(publish)
    publish.add_argument("--to", action="append", metavar="NUMBER",
                         help="a number (E.164), contact or group; repeatable")
    publish.add_argument("--route", help="named route from the config")
    publish.add_argument("--id", dest="alert_id", help="alert id (idempotency key)")
    publish.add_argument("--channel", action="append", choices=[c.value for c in Channel],
                         help="sms or voice; repeatable")
    publish.add_argument("--title", help="title (SMS prefix)")
    publish.add_argument("--priority", choices=["normal", "high"])
    publish.add_argument("--no-wait", action="store_true", help="return once accepted")
    publish.add_argument("--json", action="store_true", help="print the final report as JSON")
    publish.add_argument("--timeout", type=float, default=None,
                         help="give up following the reports after this many seconds (exit 1)")
    publish.add_argument("message", help="the message text")
    publish.set_defaults(handler=publish_command)
    for name, text in (("ack", "acknowledge an alert: stops its escalation"),
                       ("cancel", "cancel what has not been delivered yet"),
                       ("resolve", "mark an alert's cause as gone")):
        control = commands.add_parser(name, help=f"{text} (over MQTT)")
        _common(control)
        control.add_argument("alert_id")
        control.add_argument("--by", help="who does it (recorded in the report)")
        control.set_defaults(handler=control_command)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML configuration file (default: embedded)")
    parser.add_argument("--log-level", default=None,
                        choices=["debug", "info", "warning", "error"], help="log verbosity")


class CommandClient:
    """A short-lived MQTT client: subscribe, publish, then read the answers in order."""

    def __init__(self, config: Config) -> None:
        section = config.mqtt
        embedded = not section.get("host")
        self.settings = MqttSettings.from_config(section, protocol="3.1.1" if embedded else None)
        self.topics = Topics(section["base_topic"], section["discovery_prefix"],
                             section.get("response_prefix"))
        self.client_id = f"alertline-cli-{uuid.uuid4().hex[:12]}"
        self.client = create_client(self.settings, client_id=self.client_id, persistent=False)
        self.messages: queue.Queue[paho.MQTTMessage] = queue.Queue()
        self._connected = threading.Event()
        self._subscribed = threading.Event()
        self._refused: str | None = None
        self.client.on_connect = self._on_connect
        self.client.on_connect_fail = self._on_connect_fail
        self.client.on_subscribe = lambda *_args: self._subscribed.set()
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)

    @property
    def response_topic(self) -> str | None:
        """Where MQTT v5 answers come (None under 3.1.1)."""
        return f"{self.topics.reply_prefix}{self.client_id}" if self.settings.v5 else None

    def _on_connect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any,
                    _properties: Any) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        self._connected.set()

    def _on_connect_fail(self, _client: paho.Client, _userdata: Any) -> None:
        self._refused = "connection failed"
        self._connected.set()

    def connect(self, seconds: float = 10.0) -> None:
        """Connect, or raise an error that says how to fix it."""
        where = f"{self.settings.host}:{self.settings.port}"
        try:
            connect_async(self.client, self.settings, persistent=False)
            self.client.loop_start()
        except OSError as err:
            raise AlertlineError(f"cannot connect to the MQTT broker at {where}: {err}") from None
        if not self._connected.wait(seconds) or self._refused:
            self.close()
            raise AlertlineError(f"cannot connect to the MQTT broker at {where}: "
                                 f"{self._refused or 'no answer'} (is alertline run, or the "
                                 "configured broker, running?)")

    def subscribe(self, topics: list[str], seconds: float = 10.0) -> None:
        """Subscribe at QoS 1 and wait for the broker's answer."""
        self._subscribed.clear()
        self.client.subscribe([(topic, 1) for topic in topics])
        if not self._subscribed.wait(seconds):
            raise AlertlineError("the MQTT broker did not confirm the subscription")

    def publish(self, topic: str, payload: bytes, *, correlation: bytes | None = None,
                seconds: float = 10.0) -> None:
        """Publish at QoS 1 (with a response topic under v5) and wait for the broker's PUBACK."""
        properties = publish_properties(correlation, self.response_topic) \
            if self.settings.v5 else None
        info = self.client.publish(topic, payload, qos=1, properties=properties)
        info.wait_for_publish(seconds)
        if not info.is_published():
            raise AlertlineError(f"the MQTT broker did not take the message on {topic}")

    def next_message(self, deadline: float | None) -> paho.MQTTMessage | None:
        """The next message received, or None once ``deadline`` (monotonic) has passed."""
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            return self.messages.get(timeout=wait)
        except queue.Empty:
            return None

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def publish_command(config: Config, args: argparse.Namespace) -> int:
    """``alertline publish``: send, print the accepted answer, follow the reports until final."""
    alert_id = args.alert_id or f"cli-{uuid.uuid4().hex[:12]}"
    payload: dict[str, Any] = {"id": alert_id, "message": args.message}
    for key, value in (("to", args.to), ("channel", args.channel), ("route", args.route),
                       ("title", args.title), ("priority", args.priority)):
        if value:
            payload[key] = value
    parse_request(payload)  # bad input fails here, before anything is sent
    client = CommandClient(config)
    topics = client.topics
    client.connect()
    try:
        answers = [client.response_topic] if client.response_topic else [topics.error]
        client.subscribe([topics.accepted(alert_id), topics.report(alert_id), *answers])
        client.publish(topics.send, encode(payload), correlation=alert_id.encode())
        return _follow(client, alert_id, args)
    finally:
        client.close()


def _follow(client: CommandClient, alert_id: str, args: argparse.Namespace) -> int:
    topics = client.topics
    deadline: float | None = time.monotonic() + ANSWER_SECONDS
    accepted = False
    seen: dict[str, tuple[str, str | None]] = {}
    while True:
        message = client.next_message(deadline)
        if message is None:
            _err("no answer from the daemon within "
                 f"{ANSWER_SECONDS:.0f}s: is alertline run running?" if not accepted else
                 f"gave up waiting after {args.timeout}s; the alert goes on")
            return EXIT_FAILED
        body = _json(message.payload)
        if message.topic == topics.report(alert_id):
            _progress(body, seen)
            if body.get("final"):
                if args.json:
                    _out(json.dumps(body, indent=2))
                else:
                    _out(f"alert {alert_id}: {body.get('state')} ({_counts(body)})")
                return EXIT_OK if body.get("state") == "delivered" else EXIT_FAILED
        elif "error" in body and (message.topic == client.response_topic
                                  or body.get("id") == alert_id):
            _err(f"rejected: {body.get('detail')} ({body.get('error')})")
            return EXIT_BAD_INPUT
        elif message.topic in (topics.accepted(alert_id), client.response_topic) \
                and body.get("state") == "accepted" and not accepted:
            accepted = True
            if not args.json:
                _out(f"accepted: alert {alert_id}, {body.get('deliveries')} delivery(ies)"
                     + (" (a repeat: not sent again)" if body.get("duplicate") else ""))
            if args.no_wait or body.get("duplicate"):
                return EXIT_OK
            deadline = time.monotonic() + args.timeout if args.timeout else None


def control_command(config: Config, args: argparse.Namespace) -> int:
    """``alertline ack|cancel|resolve ID``: publish it and print the answer."""
    client = CommandClient(config)
    topics = client.topics
    topic = {"ack": topics.ack, "cancel": topics.cancel, "resolve": topics.resolve}[
        args.command](args.alert_id)
    client.connect()
    try:
        answers = [client.response_topic] if client.response_topic else \
            [topics.error, topics.report(args.alert_id)]
        client.subscribe(answers)
        client.publish(topic, encode({"by": args.by}) if args.by else b"",
                       correlation=args.alert_id.encode())
        deadline = time.monotonic() + ANSWER_SECONDS
        while (message := client.next_message(deadline)) is not None:
            body = _json(message.payload)
            if "error" in body:
                if body.get("id") not in (args.alert_id, None):
                    continue
                _err(f"{args.command} failed: {body.get('detail')} ({body.get('error')})")
                return EXIT_BAD_INPUT
            _out(f"alert {args.alert_id}: {body.get('state')} ({_counts(body)})")
            return EXIT_OK
        _err(f"no answer from the daemon within {ANSWER_SECONDS:.0f}s: is alertline run running?")
        return EXIT_FAILED
    finally:
        client.close()


def _json(payload: bytes | bytearray) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _progress(report: dict[str, Any], seen: dict[str, tuple[str, str | None]]) -> None:
    for delivery in report.get("deliveries") or []:
        now = (str(delivery.get("state")), delivery.get("provider_status"))
        if seen.get(str(delivery.get("id"))) == now:
            continue
        seen[str(delivery.get("id"))] = now
        extra = f" ({now[1]})" if now[1] else ""
        reason = f" — {delivery['reason']}" if delivery.get("reason") else ""
        _err(f"{delivery.get('to', ''):>16}  {delivery.get('channel', ''):<5} {now[0]}{extra}"
             f"{reason}")


def _counts(report: dict[str, Any]) -> str:
    counts = report.get("counts") or {}
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no deliveries"


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
    sys.stderr.flush()
