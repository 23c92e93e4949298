"""A PEP 503 "simple" package index on loopback that serves the wheel built from the checkout.

Home Assistant's installer (uv) is pointed at it with ``UV_EXTRA_INDEX_URL``, as a user's pip
would be pointed at PyPI: alertline comes from here, its dependencies from PyPI.
"""

from __future__ import annotations

import functools
import html
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.e2e_homeassistant.hass_venv import uv_command


@dataclass(frozen=True)
class Artefacts:
    """What a release uploads to PyPI: the sdist and the wheel built from it."""

    sdist: Path
    wheel: Path


def build_release(project: Path, out_dir: Path) -> Artefacts:
    """Build as the release does: the sdist from the working tree, the wheel from the sdist
    (uv's default), so a file missing from the sdist shows up as missing from the wheel."""
    subprocess.run([*uv_command(), "build", "--quiet", "--out-dir", str(out_dir), str(project)],
                   check=True, timeout=300)
    sdists = sorted(out_dir.glob("alertline-*.tar.gz"))
    wheels = sorted(out_dir.glob("alertline-*.whl"))
    if len(sdists) != 1 or len(wheels) != 1:
        raise RuntimeError(f"expected one sdist and one wheel in {out_dir}: {sdists}, {wheels}")
    return Artefacts(sdist=sdists[0], wheel=wheels[0])


def write_simple_index(root: Path, wheel: Path) -> None:
    """``root/simple/alertline/index.html`` linking to the wheel next to it (PEP 503)."""
    project_dir = root / "simple" / "alertline"
    project_dir.mkdir(parents=True)
    (project_dir / wheel.name).write_bytes(wheel.read_bytes())
    name = html.escape(wheel.name)
    (project_dir / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="{name}">{name}</a></body></html>\n')


@dataclass
class PackageIndex:
    """A running index: its URL and the paths it has served (to prove the download)."""

    url: str
    served: list[str] = field(default_factory=list)


@contextmanager
def serve_index(root: Path) -> Iterator[PackageIndex]:
    """Serve ``root`` over HTTP on a free loopback port until the block ends."""
    index = PackageIndex(url="")

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            index.served.append(self.path)

    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(Handler, directory=str(root)))
    index.url = f"http://127.0.0.1:{server.server_address[1]}/simple/"
    thread = threading.Thread(target=server.serve_forever, name="package-index", daemon=True)
    thread.start()
    try:
        yield index
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
