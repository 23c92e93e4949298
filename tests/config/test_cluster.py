"""Cluster mode in the configuration: on exactly with a PostgreSQL store; the ``cluster`` section,
``mqtt.share_group`` and the MQTT client id it defaults to, every problem by its path."""

from __future__ import annotations

from typing import Any

import pytest

from alertline.config.schema import cluster_client_id
from alertline.config.sections import validate_config
from alertline.errors import ConfigError
from alertline.http.web.passwords import hash_password

STORE_URL = "postgresql://alertline:secret@db.example.com:5432/alertline"


def problems_of(data: Any) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(data, {})
    return dict(caught.value.problems)


@pytest.fixture
def hostname(monkeypatch: pytest.MonkeyPatch) -> str:
    """The host name the daemon runs on, made up for the test."""
    name = "node-1.dc2.example.com"
    monkeypatch.setattr("socket.gethostname", lambda: name)
    return name


def test_a_sqlite_store_is_not_clustered_and_keeps_the_fixed_client_id(hostname: str) -> None:
    config = validate_config({"mqtt": {"host": "broker"}}, {})

    assert not config.clustered
    assert config.mqtt["client_id"] == "alertline"
    assert config.mqtt["share_group"] == "alertline"
    assert (config.cluster_lease, config.cluster_member) == (15.0, None)


def test_a_postgresql_store_is_cluster_mode_with_a_client_id_per_host(hostname: str) -> None:
    config = validate_config({"mqtt": {"host": "broker"}, "store": {"url": STORE_URL}}, {})

    assert config.clustered
    assert config.mqtt["client_id"] == "alertline-node-1-dc2-example-com"


def test_a_configured_client_id_wins_in_cluster_mode(hostname: str) -> None:
    config = validate_config({"mqtt": {"host": "broker", "client_id": "alertline-b"},
                              "store": {"url": STORE_URL}}, {})

    assert config.mqtt["client_id"] == "alertline-b"


@pytest.mark.parametrize(("hostname", "client_id"), [
    ("db1", "alertline-db1"),
    ("host_a.local.", "alertline-host_a-local"),
    ("ünïcode host", "alertline-n-code-host"),
    ("", "alertline"),
    ("h" * 100, "alertline-" + "h" * 54),
])
def test_the_cluster_client_id_is_a_safe_name_from_the_host(hostname: str,
                                                            client_id: str) -> None:
    assert cluster_client_id(hostname) == client_id


def test_the_cluster_section() -> None:
    config = validate_config({"store": {"url": STORE_URL},
                              "cluster": {"lease": "30s", "member": "eu-west-1a:node.7"}}, {})

    assert (config.cluster_lease, config.cluster_member) == (30.0, "eu-west-1a:node.7")


@pytest.mark.parametrize(("cluster", "path", "reason"), [
    ({"lease": 2}, "cluster.lease", "between 3 and 300 seconds"),
    ({"lease": 301}, "cluster.lease", "between 3 and 300 seconds"),
    ({"lease": "soon"}, "cluster.lease", "expected a duration such as 30s, 5m or 2h"),
    ({"member": "node 7"}, "cluster.member", "expected a name of up to 64 letters, digits and "
                                             ". - _ : (this daemon's name in the cluster)"),
    ({"member": "n" * 65}, "cluster.member", "expected a name of up to 64 letters, digits and "
                                             ". - _ : (this daemon's name in the cluster)"),
    ({"members": "node-7"}, "cluster.members", "unknown option"),
    ("yes", "cluster", "expected a dictionary"),
])
def test_cluster_problems_name_the_field(cluster: Any, path: str, reason: str) -> None:
    assert problems_of({"cluster": cluster}) == {path: reason}


@pytest.mark.parametrize(("group", "reason"), [
    ("", "expected a non-empty name for the MQTT shared subscriptions"),
    (None, "expected a non-empty name for the MQTT shared subscriptions"),
    ("a/b", "'a/b' is not a valid share group name: it cannot contain /, + or #"),
    ("all+", "'all+' is not a valid share group name: it cannot contain /, + or #"),
    ("#", "'#' is not a valid share group name: it cannot contain /, + or #"),
])
def test_a_share_group_that_cannot_be_in_a_topic_filter_is_refused(group: Any,
                                                                   reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"mqtt": {"host": "broker", "share_group": group}}, {})

    assert caught.value.problems == [("mqtt.share_group", reason)]
    assert str(caught.value).startswith("mqtt.share_group: ")


def test_the_web_page_in_cluster_mode_needs_one_secret_for_every_daemon() -> None:
    web = {"users": {"ops": {"password_hash": hash_password("correct horse")}}}
    problems = problems_of({"store": {"url": STORE_URL}, "web": web})
    assert "every daemon must sign" in problems["web.secret"]
    validate_config({"store": {"url": STORE_URL}, "web": {**web, "secret": "k" * 32}}, {})
    validate_config({"web": web}, {})  # one daemon on SQLite keeps its key file
