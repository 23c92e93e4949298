"""Translations: the same keys in every language, a label for every generated form field, and
forms the frontend can render for every adapter."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import voluptuous_serialize
import yaml
from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv

from alertline import AlertState, DeliveryState, adapter_class, adapter_types
from custom_components.alertline.const import DOMAIN
from custom_components.alertline.provider_form import field_keys

INTEGRATION = Path(__file__).parents[2] / "custom_components" / DOMAIN
LANGUAGES = ("en", "de", "ru")
# placeholders the frontend fills; any other brace would break its message formatter
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _load(language: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (INTEGRATION / "translations" / f"{language}.json").read_text(encoding="utf-8"))
    return data


def _keys(tree: Any, prefix: str = "") -> set[str]:
    if not isinstance(tree, dict):
        return {prefix}
    return {key for name, sub in tree.items() for key in _keys(sub, f"{prefix}/{name}")}


def _strings(tree: Any) -> list[str]:
    if isinstance(tree, dict):
        return [text for sub in tree.values() for text in _strings(sub)]
    return [tree]


@pytest.mark.parametrize("language", ["de", "ru"])
def test_every_language_has_the_same_keys_and_placeholders(language: str) -> None:
    english, other = _load("en"), _load(language)
    assert _keys(other) == _keys(english)
    for key in _keys(english):
        path = key.strip("/").split("/")
        en_text, other_text = english, other
        for part in path:
            en_text, other_text = en_text[part], other_text[part]
        assert set(PLACEHOLDER.findall(str(other_text))) == \
            set(PLACEHOLDER.findall(str(en_text))), key


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_stray_braces_or_tags(language: str) -> None:
    for text in _strings(_load(language)):
        assert "<" not in text and ">" not in text, text
        assert "{" not in PLACEHOLDER.sub("", text), text


def test_every_provider_field_has_a_label() -> None:
    labels = _load("en")["config"]["step"]["provider"]["data"]
    reauth = _load("en")["config"]["step"]["reauth_confirm"]["data"]
    for adapter_type in adapter_types():
        adapter = adapter_class(adapter_type)
        for key in [*field_keys(adapter), "advanced_options"]:
            assert key in labels, f"{adapter_type}.{key}"
        for key in field_keys(adapter, secrets_only=True):
            assert key in reauth, f"{adapter_type}.{key}"
    assert set(_load("en")["selector"]["provider_type"]["options"]) == set(adapter_types())


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_flow_field_has_a_description(language: str) -> None:
    translations = _load(language)
    steps = {f"config.{name}": step for name, step in translations["config"]["step"].items()}
    steps |= {f"options.{name}": step for name, step in translations["options"]["step"].items()}
    for kind, subentry in translations["config_subentries"].items():
        steps |= {f"{kind}.{name}": step for name, step in subentry["step"].items()}
    for name, step in steps.items():
        labels = set(step.get("data", {}))
        assert set(step.get("data_description", {})) == labels, name
        assert all(step["data_description"].values()), name


def test_states_and_services_are_translated() -> None:
    english = _load("en")
    sensors = english["entity"]["sensor"]
    assert set(sensors["last_alert"]["state"]) == {state.value for state in AlertState}
    for state in DeliveryState:
        assert f"deliveries_{state.value}" in sensors
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text(encoding="utf-8"))
    for service, spec in services.items():
        fields = dict(spec["fields"])
        for section in [k for k, v in fields.items() if "fields" in v]:
            fields.update(fields.pop(section)["fields"])
            assert section in english["services"][service]["sections"]
        assert set(english["services"][service]["fields"]) == set(fields), service
    icons = json.loads((INTEGRATION / "icons.json").read_text(encoding="utf-8"))
    assert set(icons["services"]) == set(services)
    assert set(icons["entity"]["sensor"]) == set(sensors)


@pytest.mark.parametrize("adapter_type", adapter_types())
async def test_every_adapter_form_can_be_rendered(hass: HomeAssistant,
                                                  adapter_type: str) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"provider_type": adapter_type})

    assert result["step_id"] == "provider"
    serialized = voluptuous_serialize.convert(result["data_schema"],
                                              custom_serializer=cv.custom_serializer)
    assert isinstance(serialized, list)
    names = [field["name"] for field in serialized]
    assert names[-1] == "advanced_options"
    for field in serialized:
        assert "selector" in field, field
        assert isinstance(field.get("description", {}), dict), field
    options = (result["description_placeholders"] or {})["options"]
    for marker in adapter_class(adapter_type).options_schema:
        assert f"`{marker.schema}`" in options
    hass.config_entries.flow.async_abort(result["flow_id"])
