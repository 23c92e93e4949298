"""The sdist and wheel that the release uploads hold the library, its data and true metadata."""

from __future__ import annotations

import email.parser
import tarfile
import tomllib
import zipfile

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from tests.e2e_homeassistant.conftest import PROJECT
from tests.e2e_homeassistant.package_index import Artefacts


def requirement(text: str) -> tuple[str, SpecifierSet]:
    """A requirement as (canonical name, specifiers): spelling and order do not matter."""
    parsed = Requirement(text)
    return canonicalize_name(parsed.name), parsed.specifier


def test_wheel_metadata_is_the_pyproject(release_artefacts: Artefacts) -> None:
    project = tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]
    with zipfile.ZipFile(release_artefacts.wheel) as wheel:
        (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(wheel.read(metadata_name).decode())
    assert metadata["Name"] == "alertline"
    assert metadata["Version"] == project["version"]
    assert metadata["Requires-Python"] == project["requires-python"]
    shipped = {requirement(r) for r in metadata.get_all("Requires-Dist", [])
               if "extra ==" not in r}
    assert shipped == {requirement(d) for d in project["dependencies"]}


def test_wheel_carries_the_package_data_and_nothing_else(release_artefacts: Artefacts) -> None:
    with zipfile.ZipFile(release_artefacts.wheel) as wheel:
        names = wheel.namelist()
    assert "alertline/py.typed" in names
    assert "alertline/providers/retarus/wsdl/retarus_voice_v3.wsdl" in names  # the bundled WSDL
    tops = {n.split("/")[0] for n in names}
    assert tops == {"alertline", "alertline-" + release_artefacts.wheel.name.split("-")[1]
                    + ".dist-info"}


def test_sdist_holds_the_library_and_readme_only(release_artefacts: Artefacts) -> None:
    with tarfile.open(release_artefacts.sdist) as sdist:
        names = [n.split("/", 1)[1] for n in sdist.getnames() if "/" in n]
    assert "README.md" in names and "pyproject.toml" in names
    assert not [n for n in names if n.startswith(("tests/", "bench/", "custom_components/"))]
