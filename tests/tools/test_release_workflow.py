"""The release workflow does what docs/homeassistant.md promises, in the promised order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

PROJECT = Path(__file__).resolve().parents[2]


def workflow() -> dict[Any, Any]:
    data: dict[Any, Any] = yaml.safe_load(
        (PROJECT / ".github" / "workflows" / "release.yml").read_text())
    return data


def commands(job: dict[str, Any]) -> str:
    return "\n".join(str(step.get("run", "")) for step in job["steps"])


def test_runs_on_version_tags_only() -> None:
    assert workflow()[True] == {"push": {"tags": ["v*"]}}  # YAML reads the key `on` as True


def test_checks_the_tag_then_builds_sdist_wheel_and_the_hacs_zip() -> None:
    build = commands(workflow()["jobs"]["build"])
    assert 'tools/check_release.py --tag "$GITHUB_REF_NAME"' in build
    assert "python -m build --outdir dist/" in build  # sdist, then the wheel from it
    filename = json.loads((PROJECT / "hacs.json").read_text())["filename"]
    assert f"tools/build_integration_zip.py release/{filename}" in build


def test_publishes_to_pypi_by_trusted_publishing_after_the_tests() -> None:
    publish = workflow()["jobs"]["publish-pypi"]
    assert set(publish["needs"]) == {"test", "build"}
    assert publish["permissions"] == {"id-token": "write"}
    assert publish["environment"]["name"] == "pypi"
    uses = [step.get("uses", "") for step in publish["steps"]]
    assert "pypa/gh-action-pypi-publish@release/v1" in uses
    assert "make test" in commands(workflow()["jobs"]["test"])


def test_the_github_release_comes_after_pypi_and_carries_the_zip() -> None:
    release = workflow()["jobs"]["github-release"]
    assert release["needs"] == "publish-pypi"
    assert release["permissions"] == {"contents": "write"}
    filename = json.loads((PROJECT / "hacs.json").read_text())["filename"]
    assert f"release/{filename}" in commands(release)
