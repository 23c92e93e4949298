"""docs/oncall.md's alertline configuration examples are real: each validates."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from alertline.config.sections import validate_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "oncall.md"
CONTEXT: dict[str, Any] = {
    "contacts": {name: {"phone": f"+4917012345{index}0"}
                 for index, name in enumerate(["alice", "bob", "carol", "dave"])},
    "routes": {"ops": {"to": ["alice"]}, "ops-fallback": {"to": ["bob"]}},
    "schedules": {"primary": {"rotations": [
        {"members": ["alice"], "start": "2026-01-05T09:00", "shift": "1w"}]}},
}


def alertline_examples() -> list[dict[str, Any]]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    return [yaml.safe_load(b) for b in blocks if not b.startswith("# alertmanager.yml")]


def test_every_example_validates() -> None:
    examples = alertline_examples()
    assert len(examples) == 6
    for example in examples:
        data = {**CONTEXT, **example}
        for section in ("contacts", "routes", "schedules"):
            data[section] = {**CONTEXT[section], **example.get(section, {})}
        config = validate_config(data, {"RETARUS_PASSWORD": "retarus-secret-1"})
        assert config.schedules.by_name


def test_the_outage_example_prefers_the_backup_while_retarus_is_down() -> None:
    [outage] = [e for e in alertline_examples() if "watch" in e and "providers" in e]
    config = validate_config({**outage}, {"RETARUS_PASSWORD": "retarus-secret-1"})
    assert config.routes["leak"].providers == ("retarus", "backup")
    assert config.raw["watch"] == {"every": 60.0, "after": 2, "route": "ops-fallback",
                                   "enabled": True}
