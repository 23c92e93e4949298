"""Topic names and the parsing of inbound topics."""

from __future__ import annotations

import pytest

from alertline.mqtt.topics import InboundKind, InboundTopic, Topics

TOPICS = Topics(base="home/alertline", discovery_prefix="ha")


@pytest.mark.parametrize(("topic", "parsed"), [
    ("home/alertline/send", InboundTopic(InboundKind.SEND)),
    ("home/alertline/send/leak", InboundTopic(InboundKind.SEND, "leak")),
    ("home/alertline/alertmanager/ops", InboundTopic(InboundKind.ALERTMANAGER, "ops")),
    ("home/alertline/ack/al-1", InboundTopic(InboundKind.ACK, "al-1")),
    ("home/alertline/cancel/al-1", InboundTopic(InboundKind.CANCEL, "al-1")),
    ("home/alertline/resolve/al-1", InboundTopic(InboundKind.RESOLVE, "al-1")),
    ("ha/status", InboundTopic(InboundKind.HOMEASSISTANT_STATUS)),
    ("home/alertline/send/a/b", None),
    ("home/alertline/ack", None),
    ("home/alertline/ack/", None),
    ("home/alertline/report/al-1", None),
    ("alertline/send", None),
    ("home/alertline", None),
])
def test_inbound_topics_parse_to_their_kind_and_argument(
        topic: str, parsed: InboundTopic | None) -> None:
    assert TOPICS.parse(topic) == parsed


def test_outbound_topics_and_subscriptions_follow_the_base() -> None:
    assert TOPICS.accepted("x") == "home/alertline/accepted/x"
    assert TOPICS.report("x") == "home/alertline/report/x"
    assert (TOPICS.error, TOPICS.status) == ("home/alertline/error", "home/alertline/status")
    assert TOPICS.discovery_config("notify", "n", "leak") == "ha/notify/n/leak/config"
    assert TOPICS.subscriptions(homeassistant=False) == [
        "home/alertline/send", "home/alertline/send/+", "home/alertline/alertmanager/+",
        "home/alertline/ack/+", "home/alertline/cancel/+", "home/alertline/resolve/+"]
    assert TOPICS.subscriptions()[-1] == "ha/status"
    for subscription in TOPICS.subscriptions():
        concrete = subscription.replace("+", "x")
        assert TOPICS.parse(concrete) is not None


@pytest.mark.parametrize(("topics", "topic", "allowed"), [
    (TOPICS, "home/alertline/reply/cli-1", True),
    (TOPICS, "home/alertline/reply/a/b", True),
    (TOPICS, "home/alertline/reply/", False),
    (TOPICS, "home/alertline/replyx", False),
    (TOPICS, "victim/commands", False),
    (TOPICS, "ha/switch/door/set", False),
    (TOPICS, "home/alertline/send", False),
    (TOPICS, "home/alertline/reply/+", False),
    (TOPICS, "home/alertline/reply/#", False),
    (Topics(response_prefix="clients"), "clients/me", True),
    (Topics(response_prefix="clients/"), "clientsevil/me", False),
    (Topics(response_prefix="clients/"), "alertline/reply/me", False),
    (Topics(response_prefix="alertline/"), "alertline/send", False),
    (Topics(response_prefix="alertline/"), "alertline/ack/al-1", False),
    (Topics(response_prefix="alertline/"), "alertline/answers/me", True),
])
def test_response_topics_are_answered_only_under_the_reply_prefix(
        topics: Topics, topic: str, allowed: bool) -> None:
    assert topics.may_answer_on(topic) is allowed
