"""The README's examples are real: its configuration validates and its alert request parses."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from alertline.config.sections import validate_config
from alertline.intake.request import parse_request

README = Path(__file__).resolve().parent.parent / "README.md"
ENV = {"MQTT_PASSWORD": "mqtt-secret", "POSTBACK_TOKEN": "0123456789abcdef0123",
       "ALERTMANAGER_TOKEN": "am-token-123", "RETARUS_USER": "acme",
       "RETARUS_PASSWORD": "retarus-secret"}


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(encoding="utf-8"), re.S)


def test_the_configuration_example_validates() -> None:
    examples = [b for b in _blocks("yaml") if "providers:" in b and "contacts:" in b]
    assert examples, "the README has a full configuration example"
    escalation = next(b for b in _blocks("yaml") if b.startswith("escalations:"))
    data = yaml.safe_load(examples[0])
    data.update(yaml.safe_load(escalation))
    data["mqtt"]["tls"] = None  # the example's certificate paths do not exist here
    config = validate_config(data, ENV)
    assert set(config.providers) == {"retarus", "sim"}
    assert config.routes["leak"].escalation == "page"
    assert "retarus-secret" in config.secrets


def test_the_alert_request_example_parses() -> None:
    example = next(b for b in _blocks("json") if '"message"' in b and '"escalation"' in b)
    request = parse_request(json.loads(example))
    assert request.route == "leak" and request.escalation == "page"
    assert request.personalization["+491761234567"] == {"firstname": "Max"}
    assert request.id == "leak-basement-2026-11-23"
