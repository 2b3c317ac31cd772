"""The source tree is the architecture: packages in one order, imports pointing down it only.

Every module under src/ducc is parsed (never imported) and each of its imports, wherever it
stands (top level, inside a function, under TYPE_CHECKING), is an edge. A package may import
only the packages before it in `ORDER` (and itself); the top-level modules are leaves every
layer uses; no two modules import each other, directly or round a longer cycle. The checker
is shown to flag an upward edge and a cycle on graphs made up for the purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping, Set
from pathlib import Path

import ducc

SRC = Path(ducc.__file__).parent
# Bottom to top. "" is the top-level leaf modules (errors, log, run, files, ...).
ORDER = (
    "",
    "oci",
    "recipe",
    "registry",
    "layers",
    "publish",
    "repository",
    "pipeline",
    "service",
    "cli",
)
# Third-party modules that cost start-up time, and the only places that may import them.
THIRD_PARTY_HOMES = {
    "requests": ("ducc.registry",),
    "structlog": ("ducc.log",),
    "rich": ("ducc.progress",),
    "yaml": ("ducc.recipe", "ducc.cli"),
}
MAX_LINES = 400

Graph = Mapping[str, Set[str]]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imported(tree: ast.Module, name: str, is_package: bool) -> Iterator[str]:
    """Every module `name` imports, wherever the import stands."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the importing package
                package = name.split(".") if is_package else name.split(".")[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join([*package, base] if base else package)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project's modules it imports (`from pkg import mod` names `pkg.mod`)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        found = set(imported(tree, name, path.name == "__init__.py"))
        graph[name] = {m for m in found if m in known and m != name}
    return graph


def layer_of(module: str) -> str:
    """The package of `module` in `ORDER`; top-level modules are leaves, `__main__` the CLI."""
    parts = module.split(".")
    if parts[1:] == ["__main__"]:
        return "cli"
    if len(parts) > 1 and parts[1] in ORDER:
        return parts[1]
    return ""


def upward_imports(graph: Graph) -> list[str]:
    """Each import that runs against `ORDER`, and any import the error module makes."""
    problems = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            low, high = ORDER.index(layer_of(target)), ORDER.index(layer_of(source))
            if low > high:
                problems.append(f"{source} imports {target}: {layer_of(target)!r} is above")
            elif source == "ducc.errors":
                problems.append(f"ducc.errors imports {target}: it must import nothing of ducc")
    return problems


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_package_of_the_tree_has_its_place_in_the_order() -> None:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(ORDER) - {""}


def test_no_import_runs_up_the_package_order() -> None:
    assert upward_imports(import_graph()) == []


def test_no_modules_import_each_other() -> None:
    assert cycles(import_graph()) == []


def test_the_checker_flags_an_upward_import_and_a_cycle() -> None:
    graph = import_graph()
    graph["ducc.oci.digest"] = {*graph["ducc.oci.digest"], "ducc.pipeline.convert"}
    assert upward_imports(graph) == [
        "ducc.oci.digest imports ducc.pipeline.convert: 'pipeline' is above"
    ]
    graph["ducc.errors"] = {"ducc.log"}
    assert "ducc.errors imports ducc.log: it must import nothing of ducc" in upward_imports(graph)
    made_up = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(made_up) == [["a", "b", "c"]]


def test_imports_are_resolved_as_python_resolves_them() -> None:
    tree = ast.parse("from ducc import log\nfrom . import model\nfrom ..registry import client")
    found = set(imported(tree, "ducc.oci.reference", is_package=False))
    assert {"ducc.log", "ducc.oci.model", "ducc.registry.client"} <= found
    assert layer_of("ducc.__main__") == "cli"
    assert layer_of("ducc.interrupts") == ""


def test_packages_init_files_only_say_what_they_hold() -> None:
    """An `__init__` that imported its modules would cost every command their start-up."""
    for name, path in modules().items():
        if path.name != "__init__.py":
            continue
        tree = ast.parse(path.read_text())
        assert ast.get_docstring(tree), f"{name}: say what the package holds and may import"
        assert not [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)], name


def test_costly_libraries_are_imported_only_where_they_are_used() -> None:
    for name, path in modules().items():
        tree = ast.parse(path.read_text())
        roots = {m.split(".")[0] for m in imported(tree, name, path.name == "__init__.py")}
        for library, homes in THIRD_PARTY_HOMES.items():
            if library in roots:
                assert name.startswith(homes), f"{name} imports {library}; only {homes} may"


def test_every_module_says_what_it_owns_and_stays_small() -> None:
    for name, path in modules().items():
        text = path.read_text()
        assert ast.get_docstring(ast.parse(text)), f"{name}: no docstring"
        lines = text.count("\n")
        assert lines <= MAX_LINES, f"{name}: {lines} lines; split it along a natural seam"
