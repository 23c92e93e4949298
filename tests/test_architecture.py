"""The rules of the house (DESIGN.md "Layout", STYLE.md "Size"), held against the real tree.

One test per rule over ``daemon/alertline`` and ``custom_components/alertline``, each failing with
the list of offenders; then each checker of :mod:`tests.architecture` is shown to fail on a small
synthetic tree, so a green rule means the tree obeys it, not that the checker cannot see.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.architecture import (
    ENGINE,
    INTEGRATION,
    LIBRARY,
    MAX_MODULE_LINES,
    SQL_DRIVERS,
    STORE,
    Module,
    engine_outside_hosts,
    foreign_private_attributes,
    import_cycles,
    imports_of,
    integration_reaches_in,
    load_tree,
    oversized,
    private_access,
)

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def library() -> dict[str, Module]:
    """``daemon/alertline``, parsed."""
    return load_tree(REPO / "daemon", LIBRARY)


@pytest.fixture(scope="module")
def integration() -> dict[str, Module]:
    """``custom_components/alertline``, parsed."""
    return load_tree(REPO, INTEGRATION)


def offenders(lines: list[str]) -> str:
    """A failure message: one offender a line."""
    return "\n  " + "\n  ".join(lines)


# ---- the real tree ------------------------------------------------------------------------


def test_the_trees_are_found(library: dict[str, Module], integration: dict[str, Module]) -> None:
    """Guards the rules below against passing on an empty tree."""
    assert {"alertline", "alertline.providers._http", ENGINE} <= library.keys()
    assert INTEGRATION in integration


def test_no_import_cycles(library: dict[str, Module], integration: dict[str, Module]) -> None:
    """(a) Modules that import each other at load time cannot be read, or loaded, one by one."""
    cycles = import_cycles({**library, **integration})
    assert not cycles, "import cycles:" + offenders([" -> ".join(c) for c in cycles])


def test_no_module_reaches_into_another_modules_private_names(
        library: dict[str, Module], integration: dict[str, Module]) -> None:
    """(b) A private name is private to its module, a private module to its package's tree."""
    found = private_access({**library, **integration}, (LIBRARY, INTEGRATION))
    assert not found, "private names used from outside:" + offenders(found)


def test_no_object_reaches_into_anothers_private_attributes(
        library: dict[str, Module]) -> None:
    """(b') Helpers take what they need as arguments; nobody calls ``engine._save`` & co."""
    found = foreign_private_attributes(library)
    assert not found, "private attributes used from outside their object:" + offenders(found)


def test_only_the_hosts_import_the_engine(library: dict[str, Module]) -> None:
    """(c) Helpers decide and return decisions; only the hosts hold the Engine."""
    found = engine_outside_hosts(library)
    assert not found, f"{ENGINE} imported outside its hosts:" + offenders(found)


def test_the_library_knows_nothing_of_home_assistant(library: dict[str, Module]) -> None:
    """(d) The library is the product; Home Assistant is one of its hosts."""
    found = imports_of(library, ["homeassistant"])
    assert not found, "daemon/alertline imports homeassistant:" + offenders(found)


def test_only_the_store_speaks_sql(library: dict[str, Module],
                                   integration: dict[str, Module]) -> None:
    """(e) Only the store implementations write SQL."""
    found = imports_of({**library, **integration}, SQL_DRIVERS, allowed_in=STORE)
    assert not found, "SQL outside daemon/alertline/store/:" + offenders(found)


def test_no_module_is_over_the_size_limit(library: dict[str, Module],
                                          integration: dict[str, Module]) -> None:
    """(f) A module does one thing and stays around 400 lines or less."""
    found = oversized({**library, **integration})
    assert not found, f"modules over {MAX_MODULE_LINES} lines:" + offenders(
        [line.removeprefix(REPO.as_posix() + "/") for line in found])


def test_the_integration_uses_only_the_public_face(
        library: dict[str, Module], integration: dict[str, Module]) -> None:
    """(g) The integration is a shell over ``from alertline import ...``."""
    found = integration_reaches_in(integration, library)
    assert not found, "custom_components/alertline reaches into alertline:" + offenders(found)


# ---- each rule can fail -------------------------------------------------------------------


def write(root: Path, files: dict[str, str]) -> None:
    """Write a synthetic tree: path -> source (``__init__.py`` files as named)."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def tree(tmp_path: Path, files: dict[str, str], package: str = "alertline"
         ) -> dict[str, Module]:
    """``files`` written under ``tmp_path`` and parsed as ``package``."""
    write(tmp_path, files)
    return load_tree(tmp_path, package)


def test_a_cycle_is_found_and_type_checking_or_function_imports_are_not_edges(
        tmp_path: Path) -> None:
    modules = tree(tmp_path, {
        "alertline/__init__.py": "",
        "alertline/a.py": "from alertline.b import B\n",
        "alertline/b.py": "from alertline import c\n",
        "alertline/c.py": "import alertline.a\n",
        "alertline/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                          "    from alertline.e import E\n",
        "alertline/e.py": "from alertline.d import D\n"
                          "def later() -> None:\n    from alertline.f import F\n",
        "alertline/f.py": "try:\n    from alertline.e import E\nexcept ImportError:\n"
                          "    pass\n",
    })
    assert import_cycles(modules) == [["alertline.a", "alertline.b", "alertline.c"]]


def test_a_package_importing_its_own_re_export_is_a_cycle(tmp_path: Path) -> None:
    modules = tree(tmp_path, {
        "alertline/__init__.py": "from alertline.api import Api\n",
        "alertline/api.py": "from alertline import errors\nfrom alertline import VERSION\n",
        "alertline/errors.py": "",
    })
    assert import_cycles(modules) == [["alertline", "alertline.api"]]


def test_private_names_and_private_modules_outside_their_package_are_found(
        tmp_path: Path) -> None:
    modules = tree(tmp_path, {
        "alertline/__init__.py": "",
        "alertline/providers/__init__.py": "",
        "alertline/providers/_http.py": "_LOG = 1\nRETRY = 2\n",
        "alertline/providers/retarus/__init__.py": "",
        "alertline/providers/retarus/sms.py":
            "from alertline.providers._http import RETRY\n"
            "from alertline.providers import _http\n"
            "from alertline.providers.retarus import wire\n"
            "import os\n"
            "x = (_http.RETRY, wire.SHAPE, os._exit, wire.__name__)\n",
        "alertline/providers/retarus/wire.py": "SHAPE = 1\n_HIDDEN = 2\n",
        "alertline/engine/__init__.py": "",
        "alertline/engine/dispatch.py":
            "from alertline.providers._http import RETRY\n"
            "from alertline.providers.retarus.wire import _HIDDEN\n",
        "alertline/engine/tracking.py":
            "import alertline.providers.retarus.wire as wire\n"
            "from alertline.providers import _http\n"
            "def f() -> object:\n    return wire._HIDDEN\n",
    })
    found = private_access(modules, ["alertline"])
    assert found == [
        "alertline.engine.dispatch:1: from alertline.providers._http import RETRY "
        "(private module alertline.providers._http)",
        "alertline.engine.dispatch:2: from alertline.providers.retarus.wire import _HIDDEN "
        "(private name)",
        "alertline.engine.tracking:2: from alertline.providers import _http "
        "(private module alertline.providers._http)",
        "alertline.engine.tracking:4: wire._HIDDEN "
        "(private name of alertline.providers.retarus.wire)",
    ]


def test_the_engine_outside_its_hosts_is_found(tmp_path: Path) -> None:
    modules = tree(tmp_path, {
        "alertline/__init__.py": "from alertline.engine.core import Engine\n",
        "alertline/daemon.py": "from alertline.engine.core import Engine\n",
        "alertline/cli/__init__.py": "",
        "alertline/cli/main.py": "from alertline.engine.core import Engine\n",
        "alertline/engine/__init__.py": "from alertline.engine.core import Engine\n",
        "alertline/engine/core.py": "class Engine: ...\n",
        "alertline/engine/dispatch.py": "from typing import TYPE_CHECKING\n"
                                        "if TYPE_CHECKING:\n"
                                        "    from alertline.engine.core import Engine\n",
        "alertline/http/__init__.py": "",
        "alertline/http/server.py": "from typing import TYPE_CHECKING\n"
                                    "if TYPE_CHECKING:\n"
                                    "    from alertline.engine.core import Engine\n",
        "alertline/http/web.py": "from alertline.engine import Engine\n",
        "alertline/mqtt/__init__.py": "from alertline import Engine\n",
        "alertline/mqtt/bridge.py": "from alertline.engine import core\n",
    })
    assert engine_outside_hosts(modules) == [
        "alertline.engine.dispatch:3: from alertline.engine.core import Engine "
        "(type-only or in a function)",
        "alertline.http.web:1: from alertline.engine import Engine",
        "alertline.mqtt.bridge:1: from alertline.engine import core",
        "alertline.mqtt:1: from alertline import Engine",
    ]


def test_reaching_into_another_objects_private_attribute_is_found(tmp_path: Path) -> None:
    modules = tree(tmp_path, {
        "alertline/__init__.py": "",
        "alertline/escalation.py": "class Runner:\n"
                                   "    def __init__(self, engine: object) -> None:\n"
                                   "        self._engine = engine\n"
                                   "    def go(self) -> None:\n"
                                   "        self._engine._emit()\n"
                                   "        super()._go()\n"
                                   "        type(self).__name__\n",
    })
    assert foreign_private_attributes(modules) == ["alertline.escalation:5: ._emit"]


def test_home_assistant_and_sql_imports_are_found(tmp_path: Path) -> None:
    modules = tree(tmp_path, {
        "alertline/__init__.py": "",
        "alertline/web.py": "def f() -> None:\n"
                            "    from homeassistant.core import HomeAssistant\n",
        "alertline/records.py": "import sqlite3\n",
        "alertline/store/__init__.py": "",
        "alertline/store/sqlite.py": "import sqlite3\n",
    })
    assert imports_of(modules, ["homeassistant"]) == [
        "alertline.web:2: from homeassistant.core import HomeAssistant "
        "(type-only or in a function)"]
    assert imports_of(modules, SQL_DRIVERS, allowed_in=STORE) == [
        "alertline.records:1: import sqlite3"]


def test_a_module_over_the_limit_is_found(tmp_path: Path) -> None:
    modules = tree(tmp_path, {
        "alertline/__init__.py": "",
        "alertline/at_limit.py": "x = 1\n" * MAX_MODULE_LINES,
        "alertline/over.py": "\n" * (MAX_MODULE_LINES + 1),  # blank lines count too
    })
    assert [line.rsplit("/", 1)[-1] for line in oversized(modules)] == [
        f"over.py: {MAX_MODULE_LINES + 1} lines"]


def test_the_integration_reaching_past_the_public_face_is_found(tmp_path: Path) -> None:
    library = tree(tmp_path, {
        "alertline/__init__.py": "from alertline.engine import Engine\n",
        "alertline/engine.py": "class Engine: ...\n",
    })
    integration = tree(tmp_path, {
        "custom_components/alertline/__init__.py":
            "import alertline\nfrom alertline import Engine, create_engine\n"
            "from .const import DOMAIN\n",
        "custom_components/alertline/const.py": "DOMAIN = 'alertline'\n",
        "custom_components/alertline/sensor.py":
            "from alertline import engine\nimport alertline.engine\n"
            "from alertline.engine import Engine\n",
    }, package=INTEGRATION)
    assert integration_reaches_in(integration, library) == [
        "custom_components.alertline.sensor:1: from alertline import engine",
        "custom_components.alertline.sensor:2: import alertline.engine",
        "custom_components.alertline.sensor:3: from alertline.engine import Engine",
    ]


def test_a_pep_695_type_alias_is_read_on_any_python(tmp_path: Path) -> None:
    """The integration (Home Assistant runs it on 3.13) uses ``type X = ...``; its imports
    are still seen when the tests run on 3.11."""
    integration = tree(tmp_path, {
        "custom_components/alertline/__init__.py":
            "from typing import Any\n"
            "type Entry = dict[str, Any]\n"
            "from alertline.engine import Engine\n",
    }, package=INTEGRATION)
    assert integration_reaches_in(integration, {}) == [
        "custom_components.alertline:3: from alertline.engine import Engine"]
