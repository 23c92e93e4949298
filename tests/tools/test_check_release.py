"""tools/check_release.py: the release files agree, and every kind of disagreement is named."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.check_release import disagreements, main

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The three release files of the checkout, in a scratch tree."""
    (tmp_path / "custom_components" / "alertline").mkdir(parents=True)
    for name in ("pyproject.toml", "hacs.json", "custom_components/alertline/manifest.json"):
        shutil.copy(PROJECT / name, tmp_path / name)
    return tmp_path


def edit_json(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_the_checkout_agrees() -> None:
    assert disagreements(PROJECT) == []
    assert main(["--root", str(PROJECT)]) == 0


def test_a_manifest_version_behind_pyproject_is_named(copy: Path) -> None:
    manifest = copy / "custom_components" / "alertline" / "manifest.json"
    edit_json(manifest, lambda m: m.update(version="0.0.9"))
    assert [p.split(":")[0] for p in disagreements(copy)] == ["manifest.json"]


def test_a_pin_to_another_version_is_named(copy: Path) -> None:
    manifest = copy / "custom_components" / "alertline" / "manifest.json"
    edit_json(manifest, lambda m: m.update(requirements=["alertline>=0.0.1"]))
    (problem,) = disagreements(copy)
    assert "requirements pin" in problem and "alertline>=0.0.1" in problem


def test_pyproject_bumped_alone_is_named(copy: Path) -> None:
    pyproject = copy / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('version = "', 'version = "9', 1))
    problems = disagreements(copy)
    assert len(problems) == 2  # manifest version and manifest pin
    assert all(p.startswith("manifest.json") for p in problems)


def test_hacs_without_the_zip_or_with_a_bad_minimum_is_named(copy: Path) -> None:
    edit_json(copy / "hacs.json", lambda h: h.update(zip_release=False, homeassistant="2026.2"))
    problems = disagreements(copy)
    assert len(problems) == 2 and all(p.startswith("hacs.json") for p in problems)


def test_a_tag_that_is_not_the_version_is_named(copy: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert disagreements(copy, tag="v0.0.0-not-it") != []
    assert main(["--root", str(copy), "--tag", "v0.0.0-not-it"]) == 1
    assert "tag 'v0.0.0-not-it'" in capsys.readouterr().err
