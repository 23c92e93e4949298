"""alertline's dependency ranges resolve under Home Assistant's own package constraints.

Home Assistant installs a custom integration's requirements with
``uv pip install --constraint homeassistant/package_constraints.txt``; a range that excludes one
of its pins makes the install fail on every user's instance. This resolves the library's
dependencies (from ``pyproject.toml``) against the constraints of the minimum Home Assistant
version in ``hacs.json``, with uv against PyPI, as that installer would.
"""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

from tests.e2e_homeassistant.conftest import PROJECT
from tests.e2e_homeassistant.hass_venv import uv_command

_PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)")


def pins(text: str) -> dict[str, str]:
    """``name==version`` lines as {normalised name: version}."""
    found = {}
    for line in text.splitlines():
        if match := _PIN.match(line.strip()):
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def test_library_dependencies_resolve_under_home_assistant_constraints(
        hass_python: Path, tmp_path: Path) -> None:
    (constraints,) = hass_python.parent.parent.glob(
        "lib/python*/site-packages/homeassistant/package_constraints.txt")
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    requirements = tmp_path / "requirements.in"
    requirements.write_text("\n".join(project["dependencies"]) + "\n")
    resolved = subprocess.run(
        [*uv_command(), "pip", "compile", "--quiet", "--no-header", "--no-annotate",
         "--python-version", "3.13", "--constraint", str(constraints), str(requirements)],
        capture_output=True, text=True, timeout=300, check=False)
    assert resolved.returncode == 0, resolved.stderr
    chosen = pins(resolved.stdout)
    required = {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[; ]", d)[0]).lower()
                for d in project["dependencies"]}
    assert required <= set(chosen), (required - set(chosen), resolved.stdout)
    pinned = pins(constraints.read_text())
    overlap = set(chosen) & set(pinned)
    assert {"aiohttp", "httpx", "voluptuous", "pyyaml", "paho-mqtt"} <= overlap
    assert {name: chosen[name] for name in overlap} == {name: pinned[name] for name in overlap}
