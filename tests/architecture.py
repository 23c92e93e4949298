"""The rules of the house (DESIGN.md, "Layout"), read from the source with :mod:`ast`.

Each checker takes parsed module trees and returns its offenders as readable lines, so
``tests/test_architecture.py`` can hold the real tree to the rules and prove, on small synthetic
trees, that each rule can fail. Nothing here imports the code it checks: a module that cannot be
imported (a cycle, a missing dependency) is still read.

What counts as an import, for every rule: ``import a.b``, ``from a.b import c`` and relative
imports, wherever they stand (inside functions and ``if TYPE_CHECKING:`` too: a type-only
import still couples a module to the other's shape) — except for the cycle rule, which follows
Python's own load order (see :func:`import_cycles`).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_MODULE_LINES = 400
"""STYLE.md: "A module does one thing and stays around 400 lines or less" (every line counts)."""

LIBRARY = "alertline"
INTEGRATION = "custom_components.alertline"
ENGINE = "alertline.engine.core"
ENGINE_NAME = "Engine"
ENGINE_HOST_MODULES = frozenset({"alertline", "alertline.daemon", "alertline.factory",
                                 "alertline.engine", ENGINE})
ENGINE_HOST_TREES = ("alertline.cli",)
"""Who may build or hold the Engine at run time: the public face (``alertline/__init__.py``),
the composition root, the factory, the CLI, and the engine package's own face."""
ENGINE_HELPERS = "alertline.engine"
"""The engine's helpers (ledger, dispatch, tracking, failover, recovery, escalation, policy, ...)
decide and return decisions: they do not import the Engine at all, not even for annotations."""
STORE = "alertline.store"
SQL_DRIVERS = frozenset({"sqlite3", "aiosqlite", "psycopg", "psycopg2", "asyncpg"})


@dataclass(frozen=True, slots=True)
class Module:
    """One parsed source file: its dotted name, whether it is a package, its text and tree."""

    name: str
    path: Path
    is_package: bool
    lines: int
    tree: ast.Module

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module, or one name imported from a module, with where it is written."""

    importer: str
    module: str          # the absolute dotted module named after ``from`` / ``import``
    name: str | None     # the imported name (``from module import name``); None for ``import``
    line: int
    load_time: bool      # runs when the importer is loaded (module level, not TYPE_CHECKING)

    def where(self) -> str:
        """``importer:line`` for a message."""
        return f"{self.importer}:{self.line}"

    def text(self) -> str:
        """The import as written, made absolute."""
        return f"from {self.module} import {self.name}" if self.name else f"import {self.module}"


def load_tree(source_root: Path, package: str) -> dict[str, Module]:
    """Every ``.py`` file of ``package`` (a dotted name, found under ``source_root``), by name."""
    base = source_root.joinpath(*package.split("."))
    modules: dict[str, Module] = {}
    for path in sorted(base.rglob("*.py")):
        parts = list(path.relative_to(source_root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        text = path.read_text(encoding="utf-8")
        name = ".".join(parts)
        modules[name] = Module(name, path, is_package, len(text.splitlines()),
                               _parse(text, path))
    return modules


_TYPE_STATEMENT = re.compile(r"^(\s*)type\s+(\w+)(?:\[[^\]=]*\])?\s*=", re.MULTILINE)


def _parse(text: str, path: Path) -> ast.Module:
    """The module's tree, on any Python the tests run with.

    The integration runs inside Home Assistant (Python 3.13) and uses PEP 695 ``type X = ...``
    aliases, which Python 3.11 cannot parse. An alias holds no import, so where the running
    Python refuses one it is read as the plain assignment ``X = ...`` (same line numbers).
    """
    try:
        return ast.parse(text, filename=str(path))
    except SyntaxError:
        if sys.version_info >= (3, 12):
            raise
        return ast.parse(_TYPE_STATEMENT.sub(r"\1\2 =", text), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _absolute(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.package.split(".")
    if node.level > 1:
        base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def _walk(module: Module, body: Iterable[ast.stmt], load_time: bool) -> Iterator[Import]:
    """The imports of ``body``; a function's body runs later, a TYPE_CHECKING block never."""
    for node in body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module.name, alias.name, None, node.lineno, load_time)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                yield Import(module.name, source, alias.name, node.lineno, load_time)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from _walk(module, node.body, False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _walk(module, node.body, False)
            yield from _walk(module, node.orelse, load_time)
        else:  # class bodies, if/for/while/with/try/match blocks run at load time
            for field in ("body", "orelse", "finalbody"):
                yield from _walk(module, getattr(node, field, []), load_time)
            for holder in (*getattr(node, "handlers", ()), *getattr(node, "cases", ())):
                yield from _walk(module, holder.body, load_time)


def imports(module: Module) -> list[Import]:
    """Every import ``module`` writes, absolute."""
    return list(_walk(module, module.tree.body, True))


def statements(found: Iterable[Import]) -> list[str]:
    """One line per import statement, ``importer:line: from m import a, b``, sorted."""
    grouped: dict[tuple[str, int, str, bool, bool], list[str]] = {}
    for imp in found:
        key = (imp.importer, imp.line, imp.module, imp.name is None, imp.load_time)
        grouped.setdefault(key, []).append(imp.name or "")
    return sorted((f"{importer}:{line}: import {module}" if bare else
                   f"{importer}:{line}: from {module} import {', '.join(names)}")
                  + ("" if load_time else " (type-only or in a function)")
                  for (importer, line, module, bare, load_time), names in grouped.items())


def _target(imp: Import, known: Mapping[str, Module]) -> str:
    """The module an import makes the importer depend on: the imported submodule if the name is
    one, else the module named."""
    if imp.name is not None and f"{imp.module}.{imp.name}" in known:
        return f"{imp.module}.{imp.name}"
    return imp.module


def _within(name: str, tree: str) -> bool:
    return name == tree or name.startswith(tree + ".")


def _private(part: str) -> bool:
    return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))


def import_cycles(modules: Mapping[str, Module]) -> list[list[str]]:
    """The strongly connected groups of modules that import each other at load time.

    An edge is an import that runs when its module loads: at module level, in a class body or a
    ``try``, not inside a function and not under ``if TYPE_CHECKING:``. It points at the
    imported module (``from a.b import c`` at ``a.b.c`` when that is a module, else at ``a.b``);
    the packages above it are not edges, or every re-export by ``alertline/__init__`` would
    count as a cycle. Only modules of ``modules`` are nodes.
    """
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for module in modules.values():
        for imp in imports(module):
            target = _target(imp, modules)
            if imp.load_time and target in modules:
                graph[module.name].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph[node]):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(groups)


def private_access(modules: Mapping[str, Module], first_party: Iterable[str]) -> list[str]:
    """Reaches into another module's private names.

    The rule: a name with one leading underscore (``_x``, not ``__x__``) is private to the module
    that defines it. No module imports it (``from m import _x``) or reads it off an imported
    module (``m._x``). A *private module* (``pkg/_m.py``) is private to its package: it may be
    imported only by modules of that package's tree (``pkg.*``, ``pkg.sub.*``), e.g.
    ``providers/retarus/sms.py`` may import ``providers/_http``, ``engine/dispatch.py`` may not.
    Only first-party modules (``first_party`` trees) are checked as targets.
    """
    roots = tuple(first_party)
    offenders: list[str] = []

    def private_module(path: str, importer: str) -> str | None:
        """The first private component of ``path`` whose package ``importer`` is outside."""
        parts = path.split(".")
        for depth, part in enumerate(parts):
            owner = ".".join(parts[:depth])
            if _private(part) and depth and not _within(importer, owner):
                return ".".join(parts[: depth + 1])
        return None

    for module in modules.values():
        for imp in imports(module):
            if not any(_within(imp.module, root) for root in roots):
                continue
            target = _target(imp, modules)
            hidden = private_module(target, module.name)
            if hidden is not None:
                offenders.append(f"{imp.where()}: {imp.text()} (private module {hidden})")
            elif imp.name is not None and target == imp.module and _private(imp.name):
                offenders.append(f"{imp.where()}: {imp.text()} (private name)")
        aliases = _alias_map(module, modules)
        inner = {id(node.value) for node in ast.walk(module.tree)
                 if isinstance(node, ast.Attribute)}
        for node in ast.walk(module.tree):
            chain = None if id(node) in inner else _attribute_chain(node)
            if chain is None or not any(_within(aliases.get(chain[0], ""), root)
                                        for root in roots):
                continue
            dotted, rest = aliases[chain[0]], chain[1:]
            while rest and f"{dotted}.{rest[0]}" in modules:  # down the known modules
                dotted, rest = f"{dotted}.{rest[0]}", rest[1:]
            line = f"{module.name}:{getattr(node, 'lineno', 0)}: {'.'.join(chain)}"
            hidden = private_module(dotted, module.name)
            if hidden is not None:
                offenders.append(f"{line} (private module {hidden})")
            elif rest and _private(rest[0]) and dotted != module.name:
                offenders.append(f"{line} (private name of {dotted})")
    return sorted(set(offenders))


def _attribute_chain(node: ast.AST) -> list[str] | None:
    """``["m", "a", "b"]`` for the outermost attribute access ``m.a.b``, else None."""
    if not isinstance(node, ast.Attribute):
        return None
    parts: list[str] = []
    current: ast.expr = node
    while isinstance(current, ast.Attribute):
        parts.append(current.attr)
        current = current.value
    if not isinstance(current, ast.Name):
        return None
    return [current.id, *reversed(parts)]


def _alias_map(module: Module, known: Mapping[str, Module]) -> dict[str, str]:
    """Local name -> first-party module, for names an import binds to a module."""
    bound: dict[str, str] = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                if f"{source}.{alias.name}" in known:
                    bound[alias.asname or alias.name] = f"{source}.{alias.name}"
    return bound


def engine_outside_hosts(modules: Mapping[str, Module]) -> list[str]:
    """Imports of the Engine by modules that are not its hosts (:data:`ENGINE_HOST_TREES`).

    The Engine is ``alertline.engine.core`` itself, or the name ``Engine`` imported from the
    engine package or the public face (a re-export is the same dependency). Modules the Engine
    is handed to (the MQTT inbound handler, the HTTP server, on-call) may name it in annotations
    (``if TYPE_CHECKING:``); the engine's own helpers may not import it in any way.
    """
    offenders: list[Import] = []
    for module in modules.values():
        if module.name in ENGINE_HOST_MODULES or any(
                _within(module.name, tree) for tree in ENGINE_HOST_TREES):
            continue
        helper = _within(module.name, ENGINE_HELPERS)
        for imp in imports(module):
            target = _target(imp, modules)
            if not (_within(target, ENGINE) or (
                    imp.name == ENGINE_NAME and imp.module in (LIBRARY, ENGINE_HELPERS))):
                continue
            if helper or imp.load_time:
                offenders.append(imp)
    return statements(offenders)


def imports_of(modules: Mapping[str, Module], top_levels: Iterable[str],
               allowed_in: str | None = None) -> list[str]:
    """Imports of the packages ``top_levels`` (e.g. ``homeassistant``, ``sqlite3``), except by
    modules of the tree ``allowed_in``."""
    wanted = frozenset(top_levels)
    offenders: list[Import] = []
    for module in modules.values():
        if allowed_in is not None and _within(module.name, allowed_in):
            continue
        for imp in imports(module):
            if imp.module.split(".")[0] in wanted:
                offenders.append(imp)
    return statements(offenders)


def oversized(modules: Mapping[str, Module], limit: int = MAX_MODULE_LINES) -> list[str]:
    """Modules longer than ``limit`` lines (every line counts: code, docstrings, blanks)."""
    return sorted(f"{m.path.as_posix()}: {m.lines} lines" for m in modules.values()
                  if m.lines > limit)


def integration_reaches_in(integration: Mapping[str, Module],
                           library: Mapping[str, Module]) -> list[str]:
    """Imports by the integration of anything but the library's public face.

    Allowed: ``import alertline`` and ``from alertline import name`` where ``name`` is not a
    submodule (``from alertline import engine`` reaches in as surely as ``alertline.engine``).
    """
    offenders: list[Import] = []
    for module in integration.values():
        for imp in imports(module):
            if not _within(imp.module, LIBRARY):
                continue
            if imp.module != LIBRARY or _target(imp, library) != LIBRARY:
                offenders.append(imp)
    return statements(offenders)


FOREIGN_PRIVATES = frozenset({"_content", "_max_inflight_messages", "_SubParsersAction"})
"""Private names of third-party objects the library must touch (httpx's response body for zeep's
transport, paho's in-flight window from the broker's Receive Maximum, argparse's subparsers type
for an annotation): no alertline module owns these names."""


def foreign_private_attributes(modules: Mapping[str, Module]) -> list[str]:
    """``something._name`` where ``something`` is not ``self``/``cls``: one object reaching into
    another's private state (``engine._emit(...)``) instead of asking it through its interface."""
    found: list[str] = []
    for module in modules.values():
        for node in ast.walk(module.tree):
            if not isinstance(node, ast.Attribute) or not _private(node.attr):
                continue
            if node.attr.startswith("__") or node.attr in FOREIGN_PRIVATES:
                continue
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in {"self", "cls"}:
                continue
            if isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) \
                    and owner.func.id == "super":
                continue
            found.append(f"{module.name}:{node.lineno}: .{node.attr}")
    return sorted(found)
