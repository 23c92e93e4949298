"""Zip ``custom_components/alertline`` the way HACS unpacks a release asset.

With ``zip_release`` in ``hacs.json``, HACS downloads the named asset of the GitHub release and
extracts it into ``custom_components/alertline/``: the files must sit at the zip's root (a zip that
contains the folder itself ends up as ``alertline/alertline/``). Caches are left out; entries get
a fixed timestamp, so the same tree always gives the same zip.

Usage: ``python tools/build_integration_zip.py OUT.zip [--root DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import zipfile
from pathlib import Path

COMPONENT = Path("custom_components") / "alertline"
_SKIPPED_PARTS = {"__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def component_files(root: Path) -> list[Path]:
    """The component's files, relative to its folder, in a stable order."""
    folder = root / COMPONENT
    return sorted(
        path.relative_to(folder) for path in folder.rglob("*")
        if path.is_file() and not _SKIPPED_PARTS.intersection(path.relative_to(folder).parts)
        and path.suffix != ".pyc")


def build_zip(root: Path, out: Path) -> list[str]:
    """Write the zip and return the names it holds."""
    out.parent.mkdir(parents=True, exist_ok=True)
    names = []
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for relative in component_files(root):
            info = zipfile.ZipInfo(relative.as_posix(), date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, (root / COMPONENT / relative).read_bytes())
            names.append(info.filename)
    if "manifest.json" not in names:
        raise SystemExit(f"{root / COMPONENT} has no manifest.json")
    return names


def main(argv: list[str] | None = None) -> int:
    """Build the zip named on the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    args = parser.parse_args(argv)
    names = build_zip(args.root, args.out)
    print(f"{args.out}: {len(names)} files")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
