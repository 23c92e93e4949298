"""Check that the three files a release is made of agree, before anything is built or published.

Home Assistant installs what ``manifest.json`` pins (``alertline==<version>``), PyPI gets what
``pyproject.toml`` builds, and HACS reads ``hacs.json`` for the minimum Home Assistant version and
the name of the zip attached to the GitHub release. A release whose files disagree installs a
library other than the one it was tested with, or nothing at all.

Usage: ``python tools/check_release.py [--tag v1.2.3] [--root DIR]``; exit status 1 lists every
disagreement. ``make test`` runs it; the release workflow runs it with the pushed tag.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

PACKAGE = "alertline"
ZIP_NAME = "alertline.zip"
_VERSION = re.compile(r"^\d+\.\d+\.\d+([.-]?(a|b|rc|post|dev)\d+)?$")
_HA_VERSION = re.compile(r"^\d{4}\.\d{1,2}\.\d+$")


def _load_json(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def disagreements(root: Path, tag: str | None = None) -> list[str]:
    """Every way in which pyproject.toml, manifest.json, hacs.json (and the tag) disagree."""
    pyproject = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    manifest = _load_json(root / "custom_components" / PACKAGE / "manifest.json")
    hacs = _load_json(root / "hacs.json")
    version = str(pyproject["project"]["version"])
    found = []
    if pyproject["project"]["name"] != PACKAGE:
        found.append(f"pyproject.toml: project.name is {pyproject['project']['name']!r}, "
                     f"not {PACKAGE!r}")
    if not _VERSION.match(version):
        found.append(f"pyproject.toml: version {version!r} is not a release version")
    if manifest.get("version") != version:
        found.append(f"manifest.json: version {manifest.get('version')!r} != "
                     f"pyproject.toml {version!r}")
    pins = [r for r in manifest.get("requirements", []) if re.split(r"[=<>!~\[ ]", r)[0].lower()
            == PACKAGE]
    if pins != [f"{PACKAGE}=={version}"]:
        found.append(f"manifest.json: requirements pin {pins!r}, expected "
                     f"['{PACKAGE}=={version}'] (Home Assistant installs exactly this)")
    minimum = str(hacs.get("homeassistant", ""))
    if not _HA_VERSION.match(minimum):
        found.append(f"hacs.json: homeassistant {minimum!r} is not a Home Assistant version")
    if hacs.get("zip_release") is not True or hacs.get("filename") != ZIP_NAME:
        found.append(f"hacs.json: needs zip_release true and filename {ZIP_NAME!r} "
                     "(the release workflow attaches that zip)")
    if hacs.get("name") != manifest.get("name"):
        found.append(f"hacs.json: name {hacs.get('name')!r} != manifest.json name "
                     f"{manifest.get('name')!r}")
    if tag is not None and tag != f"v{version}":
        found.append(f"tag {tag!r} != v{version} (pyproject.toml)")
    return found


def main(argv: list[str] | None = None) -> int:
    """Print the disagreements; 0 when there are none."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", help="the release tag, e.g. v0.1.0")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    found = disagreements(args.root, args.tag)
    for problem in found:
        print(f"release check: {problem}", file=sys.stderr)  # noqa: T201
    if not found:
        print("release check: pyproject.toml, manifest.json and hacs.json agree")  # noqa: T201
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
