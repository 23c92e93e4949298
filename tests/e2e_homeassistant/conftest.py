"""Fixtures of the real-hass test: the cached Home Assistant venv and the loopback index."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_homeassistant.hass_venv import ensure_hass_venv
from tests.e2e_homeassistant.package_index import (
    PackageIndex,
    build_wheel,
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


@pytest.fixture
def package_index(tmp_path: Path) -> Iterator[PackageIndex]:
    """The checkout's wheel, served from a simple index on loopback."""
    wheel = build_wheel(PROJECT, tmp_path / "dist")
    write_simple_index(tmp_path / "index", wheel)
    with serve_index(tmp_path / "index") as index:
        yield index
