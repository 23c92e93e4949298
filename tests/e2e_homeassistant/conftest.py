"""Fixtures of the real-hass test: the cached Home Assistant venv and the loopback index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_homeassistant.hass_venv import ensure_hass_venv
from tests.e2e_homeassistant.package_index import (
    Artefacts,
    PackageIndex,
    build_release,
    serve_index,
    write_simple_index,
)
from tools.build_integration_zip import build_zip

PROJECT = Path(__file__).resolve().parents[2]


def minimum_hass_version() -> str:
    """The Home Assistant version HACS installs the integration on at the least."""
    version: str = json.loads((PROJECT / "hacs.json").read_text())["homeassistant"]
    return version


@pytest.fixture(scope="session")
def hass_python() -> Path:
    """Python of a venv with only ``homeassistant==<hacs.json minimum>`` (cached)."""
    return ensure_hass_venv(PROJECT / ".venv-hass", minimum_hass_version())


@pytest.fixture
def integration_zip(tmp_path: Path) -> Path:
    """The zip the release attaches for HACS, built from the checkout."""
    out = tmp_path / "release" / "alertline.zip"
    build_zip(PROJECT, out)
    return out


@pytest.fixture(scope="session")
def release_artefacts(tmp_path_factory: pytest.TempPathFactory) -> Artefacts:
    """The sdist and wheel of the checkout, built once per session."""
    return build_release(PROJECT, tmp_path_factory.mktemp("dist"))


@pytest.fixture
def package_index(release_artefacts: Artefacts, tmp_path: Path) -> Iterator[PackageIndex]:
    """The checkout's wheel, served from a simple index on loopback."""
    write_simple_index(tmp_path / "index", release_artefacts.wheel)
    with serve_index(tmp_path / "index") as index:
        yield index
