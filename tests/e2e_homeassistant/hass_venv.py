"""A virtual environment with only Home Assistant in it, cached per Home Assistant version.

The cold path (``uv`` from the test venv, wheels from PyPI) takes well under a minute with a warm
uv cache and a few minutes without one; a rerun only checks the marker file. Home Assistant's own
requirement installer later adds alertline to this venv, so every run removes it first: the test
must see the installer fetch it again from the loopback index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Home Assistant 2026.2 declares Requires-Python >=3.13.2; this machine (and CI's pyenv) may have
# 3.13.0. Resolving as if for 3.13.2 is the only check bypassed at install time.
RESOLVE_AS_PYTHON = "3.13.2"


def uv_command() -> list[str]:
    """The uv that comes with the test venv (a Home Assistant dependency), else one on PATH."""
    bundled = Path(sys.executable).with_name("uv")
    if bundled.exists():
        return [str(bundled)]
    found = shutil.which("uv")
    if found is None:
        raise RuntimeError("uv not found: install it in the test venv or on PATH")
    return [found]


def base_python() -> str:
    """Python 3.13 for the venv: ``ALERTLINE_HASS_PYTHON`` (set by the Makefile) or the
    interpreter the test venv was made from."""
    return os.environ.get("ALERTLINE_HASS_PYTHON") or str(
        getattr(sys, "_base_executable", sys.executable))


def ensure_hass_venv(root: Path, version: str) -> Path:
    """The venv's python, with ``homeassistant==version`` installed and alertline absent."""
    venv = root / f"homeassistant-{version}"
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    uv = uv_command()
    if not marker.exists():
        if venv.exists():
            shutil.rmtree(venv)
        subprocess.run([*uv, "venv", "--quiet", "--python", base_python(), str(venv)],
                       check=True, timeout=300)
        subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(python),
                        "--python-version", RESOLVE_AS_PYTHON, f"homeassistant=={version}"],
                       check=True, timeout=600)
        marker.write_text(version + "\n")
    subprocess.run([*uv, "pip", "uninstall", "--quiet", "--python", str(python), "alertline"],
                   check=False, timeout=120, capture_output=True)
    return python
