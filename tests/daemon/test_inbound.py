"""The inbound handler on its own: answers for what the broker-level tests cannot easily make."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from alertline.engine.core import Engine
from alertline.errors import NotFoundError
from alertline.mqtt.bridge import InboundMessage
from alertline.mqtt.inbound import InboundHandler
from alertline.mqtt.topics import Topics
from alertline.store.sqlite import SqliteStore
from tests.daemon.harness import daemon_config


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    """A started engine on a store in ``tmp_path`` (simulator provider)."""
    store = SqliteStore(tmp_path / "alertline.db")
    engine = Engine(daemon_config(tmp_path, None), store)
    await engine.start()
    yield engine
    if store._conn is not None:  # some tests close it on purpose
        await engine.stop()


async def test_a_replayed_retained_message_is_refused_not_sent(engine: Engine) -> None:
    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)
    message = InboundMessage("alertline/send", b'{"to": "alice", "message": "old"}', retain=True)

    [error] = await handler.handle(message)

    assert error.topic == "alertline/error"
    assert json.loads(error.payload)["error"] == "retained"
    assert engine.metrics["alerts_received"] == 0


async def test_a_foreign_topic_is_answered_as_unknown(engine: Engine) -> None:
    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)

    [error] = await handler.handle(InboundMessage("elsewhere/send", b"x"))

    assert json.loads(error.payload)["error"] == "unknown_topic"


async def test_home_assistant_online_calls_back_and_offline_does_not(engine: Engine) -> None:
    calls: list[str] = []

    async def online() -> None:
        calls.append("online")

    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096,
                             on_homeassistant_online=online)
    assert await handler.handle(InboundMessage("homeassistant/status", b"offline")) == []
    assert await handler.handle(InboundMessage("homeassistant/status", b"online")) == []

    assert calls == ["online"]


async def test_an_internal_failure_is_answered_not_raised(engine: Engine) -> None:
    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)
    await engine.stop()  # the store is gone: committing the alert fails

    answers = await handler.handle(InboundMessage(
        "alertline/send", b'{"id": "a-1", "to": "alice", "message": "x"}',
        response_topic="alertline/reply/me", correlation_data=b"c"))

    error, response = answers
    assert json.loads(error.payload)["error"] == "internal"
    assert json.loads(error.payload)["id"] == "a-1"
    assert (response.topic, response.correlation_data) == ("alertline/reply/me", b"c")


@pytest.mark.parametrize("response_topic", ["victim/commands", "homeassistant/switch/x/set",
                                            "alertline/send", "alertline/ack/a-1"])
async def test_a_foreign_response_topic_is_refused_and_never_published_to(
        engine: Engine, response_topic: str) -> None:
    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)

    answers = await handler.handle(InboundMessage(
        "alertline/send/door", b'{"id": "a-1", "message": "x"}',
        response_topic=response_topic, correlation_data=b"c"))

    assert [answer.topic for answer in answers] == ["alertline/error"]
    error = json.loads(answers[0].payload)
    assert (error["field"], error["id"]) == ("response_topic", "a-1")
    assert "alertline/reply/" in error["detail"]
    assert engine.metrics["alerts_received"] == 0


async def test_a_configured_response_prefix_is_answered(engine: Engine) -> None:
    handler = InboundHandler(engine, Topics(response_prefix="clients/"),
                             max_payload_bytes=4096)

    [answer] = await handler.handle(InboundMessage(
        "alertline/send/door", b'{"id": "a-2", "message": "x"}',
        response_topic="clients/me", correlation_data=b"c"))

    assert (answer.topic, answer.correlation_data) == ("clients/me", b"c")
    assert json.loads(answer.payload)["state"] == "accepted"


@pytest.mark.parametrize(("field", "value"), [
    ("to", "+4915112345678"), ("channel", "voice"), ("provider", "sim"),
    ("escalation", "page"), ("sender", "Bank"), ("priority", "high"),
    ("quiet_hours", []), ("options", {"flash": True}),
])
async def test_a_route_topic_may_not_override_what_the_route_decides(
        engine: Engine, field: str, value: Any) -> None:
    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)
    payload = json.dumps({"id": "r-1", "message": "x", field: value}).encode()

    [error] = await handler.handle(InboundMessage("alertline/send/door", payload))

    body = json.loads(error.payload)
    assert (error.topic, body["field"], body["id"]) == ("alertline/error", field, "r-1")
    assert "routes.door.allow_override" in body["detail"]
    with pytest.raises(NotFoundError):
        await engine.report("r-1")


async def test_a_route_topic_may_not_name_another_route(engine: Engine) -> None:
    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)

    [error] = await handler.handle(InboundMessage(
        "alertline/send/door", b'{"message": "x", "route": "leak"}'))

    assert json.loads(error.payload)["field"] == "route"


async def test_what_a_route_allows_may_be_overridden_on_its_topic(tmp_path: Path) -> None:
    routes = {"door": {"to": ["alice"], "allow_override": ["to", "channel"]}}
    engine = Engine(daemon_config(tmp_path, None, routes=routes),
                    SqliteStore(tmp_path / "alertline.db"))
    await engine.start()
    try:
        handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)
        allowed = b'{"id": "o-1", "message": "x", "to": "bob", "channel": "voice"}'
        refused = b'{"id": "o-2", "message": "x", "provider": "sim"}'
        assert await handler.handle(InboundMessage("alertline/send/door", allowed)) == []
        [error] = await handler.handle(InboundMessage("alertline/send/door", refused))
        report = await engine.report("o-1")
    finally:
        await engine.stop()

    assert json.loads(error.payload)["field"] == "provider"
    assert [(d.recipient.contact, d.channel.value) for d in report.deliveries] == \
        [("bob", "voice")]


async def test_the_general_send_topic_is_not_constrained_by_a_named_route(
        engine: Engine) -> None:
    handler = InboundHandler(engine, Topics(), max_payload_bytes=4096)
    payload = b'{"id": "g-1", "message": "x", "route": "door", "to": "bob"}'

    assert await handler.handle(InboundMessage("alertline/send", payload)) == []
    report = await engine.report("g-1")
    assert [d.recipient.contact for d in report.deliveries] == ["bob"]


def test_ordered_kinds_wait_for_earlier_messages() -> None:
    topics = Topics()
    handler = InboundHandler.__new__(InboundHandler)
    handler.topics = topics

    assert [handler.ordered(t) for t in ("alertline/send", "alertline/send/leak",
                                         "alertline/ack/x", "alertline/cancel/x",
                                         "alertline/resolve/x", "alertline/alertmanager/r")] == \
        [False, False, True, True, True, True]
