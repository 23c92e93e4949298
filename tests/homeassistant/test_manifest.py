"""Packaging: manifest, HACS metadata, quality scale and brand icon."""

from __future__ import annotations

import json
import logging
import struct
from importlib.metadata import packages_distributions, requires
from pathlib import Path

import yaml
from homeassistant.const import __version__ as HA_VERSION
from homeassistant.core import HomeAssistant
from homeassistant.loader import async_get_custom_components
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from alertline import __version__ as library_version
from alertline import adapter_class, adapter_types
from custom_components.alertline.const import DOMAIN

ROOT = Path(__file__).parents[2]
INTEGRATION = ROOT / "custom_components" / DOMAIN
TIERS = {
    "bronze": {
        "action-setup", "appropriate-polling", "brands", "common-modules",
        "config-flow-test-coverage", "config-flow", "dependency-transparency", "docs-actions",
        "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry"},
    "silver": {
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage"},
    "gold": {
        "devices", "diagnostics", "discovery-update-info", "discovery", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
        "entity-category", "entity-device-class", "entity-disabled-by-default",
        "entity-translations", "exception-translations", "icon-translations",
        "reconfiguration-flow", "repair-issues", "stale-devices"},
    "platinum": {"async-dependency", "inject-websession", "strict-typing"},
}
RULES = set().union(*TIERS.values())


async def test_manifest_is_loaded_by_home_assistant(hass: HomeAssistant) -> None:
    integrations = await async_get_custom_components(hass)
    integration = integrations[DOMAIN]

    assert integration.version is not None
    assert str(integration.version) == library_version
    assert integration.requirements == [f"alertline=={library_version}"]
    assert integration.config_flow is True
    assert integration.integration_type == "service"
    assert integration.manifest["iot_class"] == "cloud_push"
    assert integration.dependencies == ["webhook"]  # postbacks need it, as twilio's do
    assert integration.after_dependencies == ["mqtt"]
    # every library that logs, so its records are attributed to alertline
    assert integration.loggers == ["alertline", "apscheduler", "httpcore", "httpx", "paho",
                                   "tzlocal", "zeep"]
    for key in ("documentation", "issue_tracker", "codeowners"):
        assert integration.manifest[key]


def test_every_library_that_logs_is_in_the_loggers() -> None:
    for provider_type in adapter_types():
        adapter_class(provider_type)  # imports zeep, httpx and the rest, as a setup does

    # aiohttp is Home Assistant's own web server: its records are Home Assistant's
    dependencies = {canonicalize_name(Requirement(line).name)
                    for line in requires("alertline") or [] if "extra ==" not in line}
    dependencies -= {"aiohttp"}
    distributions = packages_distributions()
    logging_packages = {name.split(".")[0] for name in logging.Logger.manager.loggerDict}
    logging_dependencies = {
        package for package in logging_packages
        if any(canonicalize_name(d) in dependencies for d in distributions.get(package, []))}
    manifest = json.loads((INTEGRATION / "manifest.json").read_text(encoding="utf-8"))

    assert {"httpx", "zeep", "apscheduler"} <= logging_dependencies  # the check can see them
    assert logging_dependencies <= set(manifest["loggers"])


def test_hacs_metadata_names_the_tested_home_assistant() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text(encoding="utf-8"))
    assert hacs["name"] == "alertline"
    assert hacs["homeassistant"] == HA_VERSION  # the version these tests run against


def test_quality_scale_lists_every_rule_with_a_reason_for_exemptions() -> None:
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]

    assert set(rules) == RULES
    for name, status in rules.items():
        if isinstance(status, dict):  # exempt or todo: the reason is given
            assert status["status"] in ("exempt", "todo", "done"), name
            assert len(status["comment"]) > 20, name
        else:
            assert status == "done", name


def test_the_manifest_claims_no_tier_the_rules_do_not_reach() -> None:
    rules = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())["rules"]
    manifest = json.loads((INTEGRATION / "manifest.json").read_text(encoding="utf-8"))
    todo = {name for name, status in rules.items()
            if isinstance(status, dict) and status["status"] == "todo"}

    claimed = manifest.get("quality_scale")
    tiers = ["bronze", "silver", "gold", "platinum"]
    if claimed in tiers:
        reached = [rule for tier in tiers[:tiers.index(claimed) + 1] for rule in TIERS[tier]]
        assert not todo & set(reached), claimed


def test_brand_icon_is_a_square_png() -> None:
    data = (INTEGRATION / "brand" / "icon.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == height == 256
