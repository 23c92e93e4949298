"""tools/build_integration_zip.py: the zip HACS unpacks into custom_components/alertline."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

from tools.build_integration_zip import build_zip

PROJECT = Path(__file__).resolve().parents[2]


def test_files_sit_at_the_root_without_caches(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    component = root / "custom_components" / "alertline"
    shutil.copytree(PROJECT / "custom_components" / "alertline", component)
    (component / "__pycache__").mkdir(exist_ok=True)
    (component / "__pycache__" / "const.cpython-313.pyc").write_bytes(b"cache")
    out = tmp_path / "alertline.zip"
    build_zip(root, out)
    names = zipfile.ZipFile(out).namelist()
    assert "manifest.json" in names and "__init__.py" in names
    assert "translations/en.json" in names
    assert not [n for n in names if "__pycache__" in n or n.startswith("alertline/")]
    expected = {p.relative_to(component).as_posix() for p in component.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
    assert set(names) == expected


def test_the_same_tree_gives_the_same_bytes(tmp_path: Path) -> None:
    build_zip(PROJECT, tmp_path / "a.zip")
    build_zip(PROJECT, tmp_path / "b.zip")
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
