"""Packaging: manifest, HACS metadata, quality scale and brand icon."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import yaml
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_custom_components

from alertline import __version__ as library_version
from custom_components.alertline.const import DOMAIN

ROOT = Path(__file__).parents[2]
INTEGRATION = ROOT / "custom_components" / DOMAIN
RULES = {
    "action-setup", "appropriate-polling", "brands", "common-modules",
    "config-flow-test-coverage", "config-flow", "dependency-transparency", "docs-actions",
    "docs-high-level-description", "docs-installation-instructions",
    "docs-removal-instructions", "entity-event-setup", "entity-unique-id", "has-entity-name",
    "runtime-data", "test-before-configure", "test-before-setup", "unique-config-entry",
    "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
    "docs-installation-parameters", "entity-unavailable", "integration-owner",
    "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    "devices", "diagnostics", "discovery-update-info", "discovery", "docs-data-update",
    "docs-examples", "docs-known-limitations", "docs-supported-devices",
    "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
    "entity-category", "entity-device-class", "entity-disabled-by-default",
    "entity-translations", "exception-translations", "icon-translations",
    "reconfiguration-flow", "repair-issues", "stale-devices", "async-dependency",
    "inject-websession", "strict-typing",
}


async def test_manifest_is_loaded_by_home_assistant(hass: HomeAssistant) -> None:
    integrations = await async_get_custom_components(hass)
    integration = integrations[DOMAIN]

    assert integration.version is not None
    assert str(integration.version) == library_version
    assert integration.requirements == [f"alertline=={library_version}"]
    assert integration.config_flow is True
    assert integration.integration_type == "service"
    assert integration.manifest["iot_class"] == "cloud_push"
    assert set(integration.after_dependencies) == {"mqtt", "webhook"}
    for key in ("documentation", "issue_tracker", "codeowners"):
        assert integration.manifest[key]


def test_hacs_metadata_names_the_tested_home_assistant() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["name"] == "alertline"
    assert hacs["homeassistant"] == HA_VERSION  # the version these tests run against


def test_quality_scale_lists_every_rule_with_a_reason_for_exemptions() -> None:
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]

    assert set(rules) == RULES
    for name, status in rules.items():
        if isinstance(status, dict):
            assert status["status"] == "exempt", name
            assert len(status["comment"]) > 20, name
        else:
            assert status == "done", name


def test_brand_icon_is_a_square_png() -> None:
    data = (INTEGRATION / "brand" / "icon.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == height == 256
