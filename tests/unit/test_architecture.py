"""The layout's rules, read from the source with ``ast`` (nothing is imported):

- ``shared/domain`` is pure: no I/O or framework module, nothing from the adapters, the HTTP
  pieces, the services, tools or deploy;
- nothing in ``services/`` or ``shared/`` imports ``tools/`` or ``deploy/`` (they are built on
  the services, not the other way round);
- the project's modules import each other without cycles (imports run at import time; those under
  ``if TYPE_CHECKING:`` and inside functions aside);
- no function or method outside ``tests/`` is longer than 80 lines, its ``def`` line to its last.

The first tests check the checker itself on small trees written to a temporary folder.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("shared", "services", "tools", "deploy", "bench")
# Folders that hold no project source: virtualenv, caches, run state, build output.
NOT_SOURCE = {".git", ".venv", ".cache", ".run", "build", "__pycache__", "node_modules", "tests"}
MAX_FUNCTION_LINES = 80

DOMAIN = "shared.domain"
# What the pure domain may not import: I/O clients, web frameworks, metrics, sockets, and the
# project's layers around it.
NOT_IN_DOMAIN = (
    "aiokafka",
    "kafka",
    "faust",
    "pymongo",
    "fastapi",
    "starlette",
    "uvicorn",
    "httpx",
    "prometheus_client",
    "socket",
    "shared.adapters",
    "shared.http",
    "services",
    "tools",
    "deploy",
)


@dataclass(frozen=True)
class Import:
    """One import statement of a module: the module it names (relative imports made absolute),
    the names a ``from`` import takes, and whether it runs when the module is imported."""

    module: str
    names: tuple[str, ...]
    line: int
    at_import_time: bool

    def targets(self) -> set[str]:
        """What it may load: the module, and for ``from m import n`` also ``m.n``."""
        return {self.module} | {f"{self.module}.{n}" for n in self.names if n != "*"}


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def python_files(root: Path, folders: tuple[str, ...] | None = None) -> Iterator[Path]:
    """The ``.py`` files under ``root`` (or only under ``folders`` of it), outside NOT_SOURCE."""
    starts = [root / f for f in folders] if folders is not None else [root]
    for start in starts:
        for here, dirs, files in os.walk(start):
            dirs[:] = sorted(d for d in dirs if d not in NOT_SOURCE and not d.endswith(".egg-info"))
            yield from (Path(here) / f for f in sorted(files) if f.endswith(".py"))


def project_modules(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    return {module_name(p, root): p for p in python_files(root, packages)}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(path: Path, module: str) -> list[Import]:
    """Every import in the file at ``path`` (module ``module``), except those under
    ``if TYPE_CHECKING:``, which never run."""
    is_package = path.name == "__init__.py"
    found: list[Import] = []

    def visit(node: ast.AST, at_import_time: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for statement in node.orelse:
                visit(statement, at_import_time)
            return
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            at_import_time = False
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, (), node.lineno, at_import_time) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, *([base] if base else [])])
            found.append(Import(base, tuple(a.name for a in node.names), node.lineno, at_import_time))
        for child in ast.iter_child_nodes(node):
            visit(child, at_import_time)

    visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)), True)
    return found


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_imports(
    modules: Mapping[str, Path], importer_prefix: str, forbidden: tuple[str, ...], root: Path
) -> list[str]:
    """``file:line imports x`` for each import, by a module under ``importer_prefix``, of a
    module under one of ``forbidden``."""
    found = []
    for name, path in sorted(modules.items()):
        if not _within(name, importer_prefix):
            continue
        for imp in imports_of(path, name):
            bad = sorted(t for t in imp.targets() if any(_within(t, f) for f in forbidden))
            if bad:
                found.append(f"{path.relative_to(root)}:{imp.line} imports {bad[0]}")
    return found


def _longest_module(name: str, modules: Mapping[str, Path]) -> str | None:
    """The longest of ``name``, its parent, its grandparent... that is a project module."""
    parts = name.split(".")
    return next((m for n in range(len(parts), 0, -1) if (m := ".".join(parts[:n])) in modules), None)


def import_graph(modules: Mapping[str, Path]) -> dict[str, set[str]]:
    """Module -> the project modules it imports when imported: for each name the longest module it
    reaches (``from shared.domain import reports`` is an edge to ``shared.domain.reports`` alone,
    not to the package, which is initialised first whatever the order)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        edges = graph.setdefault(name, set())
        for imp in imports_of(path, name):
            if not imp.at_import_time:
                continue
            names = [f"{imp.module}.{n}" for n in imp.names if n != "*"] or [imp.module]
            for target in names:
                reached = _longest_module(target, modules)
                if reached is not None and reached != name:
                    edges.add(reached)
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def long_functions(files: list[Path], root: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``file:line name (n lines)`` for each function or method longer than ``limit`` lines."""
    found = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > limit:
                    found.append(f"{path.relative_to(root)}:{node.lineno} {node.name} ({length} lines)")
    return found


# The checker on small trees.


def _tree(root: Path, files: Mapping[str, str]) -> dict[str, Path]:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return project_modules(root, ("pkg",))


def test_the_checker_finds_a_cycle_through_relative_and_from_imports(tmp_path: Path) -> None:
    modules = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from pkg import b\n",
            "pkg/b.py": "from .sub import c\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "from .. import a\nimport pkg.d\n",
            "pkg/d.py": "import os\n",
        },
    )
    assert cycles(import_graph(modules)) == [["pkg.a", "pkg.b", "pkg.sub.c"]]


def test_a_package_that_imports_its_modules_is_no_cycle(tmp_path: Path) -> None:
    modules = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\n",
            "pkg/a.py": "from pkg import b\nA = b.B\n",
            "pkg/b.py": "B = 1\n",
        },
    )
    assert import_graph(modules) == {"pkg": {"pkg.a"}, "pkg.a": {"pkg.b"}, "pkg.b": set()}


def test_the_checker_leaves_out_type_checking_and_function_level_imports(tmp_path: Path) -> None:
    modules = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import b\n",
            "pkg/b.py": "def f():\n    from pkg import a\n    return a\n",
        },
    )
    assert cycles(import_graph(modules)) == []
    # a function-level import still counts as a dependency for the layering rules
    assert forbidden_imports(modules, "pkg.b", ("pkg.a",), tmp_path) == ["pkg/b.py:2 imports pkg.a"]
    assert forbidden_imports(modules, "pkg.a", ("pkg.b",), tmp_path) == []


def test_the_checker_finds_a_forbidden_import_in_any_form(tmp_path: Path) -> None:
    modules = _tree(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/domain/__init__.py": "",
            "pkg/domain/x.py": (
                "import socket\nfrom pkg import io\nfrom pymongo.errors import PyMongoError\nimport sockets\n"
            ),
            "pkg/io.py": "",
        },
    )
    assert forbidden_imports(modules, "pkg.domain", ("socket", "pkg.io", "pymongo"), tmp_path) == [
        "pkg/domain/x.py:1 imports socket",
        "pkg/domain/x.py:2 imports pkg.io",
        "pkg/domain/x.py:3 imports pymongo.errors",
    ]


def test_the_checker_counts_a_function_from_its_def_line_to_its_last(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(79))
    (tmp_path / "m.py").write_text(f"@decorator\ndef fits():\n{body}\n\ndef over():\n{body}    return 1\n")
    assert long_functions([tmp_path / "m.py"], tmp_path) == ["m.py:84 over (81 lines)"]


# The project.


def test_the_domain_imports_no_io_framework_or_outer_layer() -> None:
    modules = project_modules(ROOT)
    assert f"{DOMAIN}.rollup" in modules  # the rule checks the folder it names
    assert forbidden_imports(modules, DOMAIN, NOT_IN_DOMAIN, ROOT) == []


def test_services_and_shared_import_neither_tools_nor_deploy() -> None:
    modules = project_modules(ROOT)
    found = forbidden_imports(modules, "services", ("tools", "deploy"), ROOT)
    found += forbidden_imports(modules, "shared", ("tools", "deploy"), ROOT)
    assert found == []


def test_no_import_cycles_among_the_project_modules() -> None:
    assert cycles(import_graph(project_modules(ROOT))) == []


def test_no_function_outside_tests_is_over_80_lines() -> None:
    assert long_functions(sorted(python_files(ROOT)), ROOT) == []
