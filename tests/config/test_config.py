"""The YAML configuration: defaults, every problem by its path, ``${ENV}`` secrets never echoed."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from alertline.config.sections import load_config, validate_config
from alertline.errors import ConfigError
from alertline.model import Channel, Priority

SECRET = "hunter2-Very-Secret"
TOKEN = "tok-4f9a1c77e0b2d3aa"


def problems_of(data: Any, env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(ConfigError) as caught:
        validate_config(data, env or {})
    return dict(caught.value.problems)


def test_empty_config_gets_the_embedded_defaults() -> None:
    config = validate_config(None, {})
    assert list(config.providers) == ["sim"]
    assert config.providers["sim"].type == "simulator"
    assert config.default_provider == "sim"
    assert config.default_channel is Channel.SMS
    assert config.store_path == "alertline.db"
    assert config.mqtt.get("host") is None, "no mqtt section means the embedded broker"
    assert config.mqtt["base_topic"] == "alertline"
    assert config.http["port"] == 8787
    assert config.secrets == ()


def test_the_design_sketch_validates(tmp_path: Path) -> None:
    path = tmp_path / "alertline.yaml"
    path.write_text(textwrap.dedent("""\
        mqtt:
          host: 127.0.0.1
          port: 1883
          username: alertline
          password: ${MQTT_PASSWORD}
          tls: {ca_certs: /etc/ssl/ca.pem, certfile: null, keyfile: null}
        store:
          path: ./state/alertline.db
        providers:
          sim: {type: simulator, sms_delay: 0.5}
          retarus:
            type: retarus_sms
            username: ${RETARUS_USER}
            password: ${RETARUS_PASSWORD}
            sender: ACME
        contacts:
          alice: {phone: "+491701234560", locale: de_DE, quiet_hours: ["22:00/07:00"],
                  personalization: {firstname: Alice}}
          bob: {phone: "0049 170 1234561"}
        groups:
          oncall: [alice, bob]
          everyone: [oncall, "+491701234562"]
        routes:
          leak: {channel: [sms, voice], provider: [retarus, sim], to: [oncall], escalation: page,
                 priority: high}
        escalations:
          page:
            repeat: 2
            steps:
              - {to: [alice], channel: sms, wait: 5m}
              - {to: [bob], channel: voice, wait: 10m}
        limits:
          allow: ["+49", "+43"]
        """), encoding="utf-8")
    env = {"MQTT_PASSWORD": SECRET, "RETARUS_USER": "acme", "RETARUS_PASSWORD": "pw-" + SECRET}
    config = load_config(path, env)
    assert config.mqtt["password"] == SECRET
    assert config.store_path == "./state/alertline.db"
    assert config.providers["retarus"].options["password"] == "pw-" + SECRET
    assert config.providers["sim"].options["sms_delay"] == 0.5
    assert config.default_provider == "sim", "the first provider is the default"
    assert config.contacts["bob"].phone == "+491701234561"
    assert config.contacts["alice"].personalization == {"firstname": "Alice"}
    assert config.groups["everyone"] == ("oncall", "+491701234562")
    route = config.routes["leak"]
    assert route.channels == (Channel.SMS, Channel.VOICE)
    assert route.providers == ("retarus", "sim")
    assert route.priority is Priority.HIGH
    assert SECRET in config.secrets and "pw-" + SECRET in config.secrets
    assert [step["wait"] for step in config.escalations["page"]["steps"]] == [300.0, 600.0]


def test_every_problem_is_reported_by_its_path() -> None:
    problems = problems_of({
        "mqtt": {"port": "abc", "bogus": 1},
        "providers": {
            "retarus": {"type": "retarus_sms", "username": "acme"},
            "fax": {"type": "telefax"},
            "sim": {"type": "simulator", "sms_delay": -1},
        },
        "contacts": {"alice": {"phone": "12"}, "bob": {}},
        "groups": {"oncall": ["alice", "carol"]},
        "routes": {
            "leak": {"to": ["oncall"], "channel": "fax"},
            "door": {"to": ["alice", "dave"], "provider": "nothere", "escalation": "page"},
        },
        "http": {"postback_token": "short", "port": 70000},
        "defaults": {"region": "germany"},
        "colour": "blue",
    })
    assert problems.pop("providers.retarus.password") == "required"
    assert problems.pop("providers.fax.type").startswith("value must be one of")
    assert "at least 0" in problems.pop("providers.sim.sms_delay")
    assert problems.pop("mqtt.port") == "expected int"
    assert problems.pop("mqtt.bogus") == "unknown option"
    assert "needs an international prefix" in problems.pop("contacts.alice.phone")
    assert problems.pop("contacts.bob.phone") == "required"
    assert problems.pop("groups.oncall.1") == "unknown contact or group 'carol'"
    assert "unknown channel 'fax'" in problems.pop("routes.leak.channel")
    assert problems.pop("routes.door.to.1") == "unknown contact or group 'dave'"
    assert problems.pop("routes.door.provider") == "unknown provider 'nothere'"
    assert problems.pop("routes.door.escalation") == "unknown escalation policy 'page'"
    assert problems.pop("http.postback_token") == "at least 16 characters"
    assert "70000" not in problems.pop("http.port")
    assert problems.pop("defaults.region") == "a country code like DE"
    assert problems.pop("colour") == "unknown section"
    assert problems == {}, "a broken entry causes no follow-up problems elsewhere"


def test_error_message_lists_path_and_reason() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"providers": {"retarus": {"type": "retarus_sms", "username": "u"}}}, {})
    assert str(caught.value) == "providers.retarus.password: required"


def test_route_to_an_unconfigured_provider_is_a_problem_without_providers() -> None:
    problems = problems_of({"routes": {"leak": {"to": ["+491701234560"], "provider": "retarus"}}})
    assert problems == {"routes.leak.provider": "unknown provider 'retarus'"}


def test_default_provider_must_exist() -> None:
    assert problems_of({"defaults": {"provider": "retarus"}}) == {
        "defaults.provider": "unknown provider 'retarus'"}


def test_invalid_names_and_section_shapes() -> None:
    problems = problems_of({"contacts": {"al ice": {"phone": "+491701234560"}},
                            "groups": ["alice"]})
    assert problems == {"contacts.al ice": "names may use letters, digits, _ and - only",
                        "groups": "expected a mapping of names to entries"}


def test_top_level_must_be_a_mapping() -> None:
    assert problems_of(["mqtt"]) == {"": "the configuration must be a mapping of sections"}


@pytest.mark.parametrize(("value", "env", "expected"), [
    ("${PASS}", {"PASS": SECRET}, SECRET),
    ("user-${USER_NAME}-x", {"USER_NAME": "acme"}, "user-acme-x"),
    ("${MISSING:-fallback}", {}, "fallback"),
    ("${PASS:-fallback}", {"PASS": "set"}, "set"),
    ("$PASS and ${not valid}", {"PASS": "x"}, "$PASS and ${not valid}"),
])
def test_environment_substitution(value: str, env: dict[str, str], expected: str) -> None:
    config = validate_config({"mqtt": {"host": "127.0.0.1", "password": value}}, env)
    assert config.mqtt["password"] == expected


def test_substitution_reaches_nested_lists() -> None:
    config = validate_config({"groups": {"oncall": ["${FIRST}"]}}, {"FIRST": "+491701234560"})
    assert config.groups["oncall"] == ("+491701234560",)


def test_missing_environment_variable_is_a_problem_at_its_path() -> None:
    problems = problems_of({"mqtt": {"host": "h", "password": "${MQTT_PASSWORD}"},
                            "groups": {"oncall": ["${FIRST}"]}})
    assert problems == {"mqtt.password": "environment variable MQTT_PASSWORD is not set",
                        "groups.oncall.0": "environment variable FIRST is not set"}


def test_substituted_values_are_known_secrets() -> None:
    config = validate_config({"mqtt": {"host": "h", "password": "${P}"}}, {"P": SECRET})
    assert SECRET in config.secrets


def test_secrets_are_never_echoed_in_errors() -> None:
    data = {
        "mqtt": {"host": "h", "password": SECRET, "port": "x"},
        "providers": {"retarus": {"type": "retarus_sms", "username": "acme",
                                  "password": "pw-" + SECRET, "base_url": "not a url"}},
        # a secret that ends up where the reason quotes the value
        "contacts": {"eve": {"phone": "${ALERTMANAGER_TOKEN}"}},
        "alertmanager": {"token": "${ALERTMANAGER_TOKEN}"},
        "routes": {"leak": {"to": ["+491701234560"], "channel": SECRET}},
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(data, {"ALERTMANAGER_TOKEN": TOKEN})
    paths = {path for path, _ in caught.value.problems}
    assert {"mqtt.port", "providers.retarus.base_url", "contacts.eve.phone",
            "routes.leak.channel"} <= paths
    text = str(caught.value) + repr(caught.value.problems)
    assert SECRET not in text
    assert TOKEN not in text
    assert "**REDACTED**" in text


def test_load_config_reports_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("mqtt:\n  host: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_config(broken)


def test_load_config_without_a_file_is_the_default() -> None:
    assert list(load_config(None, {}).providers) == ["sim"]


def test_durations_accept_units() -> None:
    config = validate_config({"defaults": {"tracking_deadline": "2h"}}, {})
    assert config.tracking_deadline() == 7200.0
    assert problems_of({"defaults": {"tracking_deadline": "soon"}}) == {
        "defaults.tracking_deadline": "expected a duration such as 30s, 5m or 2h"}


# -- store.url: the PostgreSQL store ------------------------------------------------------------

PG_PASSWORD = "pg:Secret@word/1"
PG_URL = f"postgresql://alertline:{quote(PG_PASSWORD, safe='')}@db.example:5432/alertline"


@pytest.mark.parametrize("url", [PG_URL, PG_URL.replace("postgresql://", "postgres://")])
def test_a_store_url_selects_postgresql_and_its_password_is_a_secret(url: str) -> None:
    config = validate_config({"store": {"url": url}}, {})
    assert config.store_url == url
    assert PG_PASSWORD in config.secrets
    assert validate_config(None, {}).store_url is None


def test_a_store_url_password_from_the_environment_is_a_secret() -> None:
    config = validate_config({"store": {"url": "postgresql://a:${PG}@db/alertline"}},
                             {"PG": "env-Secret-pw"})
    assert config.store_url == "postgresql://a:env-Secret-pw@db/alertline"
    assert "env-Secret-pw" in config.secrets


@pytest.mark.parametrize(("store", "reason"), [
    ({"url": PG_URL, "path": "alertline.db"}, "exclude each other"),
    ({"url": PG_URL.replace("postgresql", "mysql")}, "expected a PostgreSQL URL"),
    ({"url": PG_URL.replace(":5432", ":port")}, "port of this PostgreSQL URL is not a number"),
    ({"url": 5432}, "expected a PostgreSQL URL"),
])
def test_a_wrong_store_url_is_named_without_its_password(store: dict[str, Any],
                                                         reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"store": store}, {})
    problems = dict(caught.value.problems)
    assert reason in problems["store.url"]
    text = str(caught.value) + repr(caught.value.problems)
    for form in (PG_PASSWORD, quote(PG_PASSWORD, safe="")):
        assert form not in text


def test_a_store_url_password_is_masked_in_other_sections_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"store": {"url": PG_URL},
                         "routes": {"leak": {"to": ["+491701234560"], "channel": PG_PASSWORD}}},
                        {})
    assert "routes.leak.channel" in dict(caught.value.problems)
    assert PG_PASSWORD not in str(caught.value)
