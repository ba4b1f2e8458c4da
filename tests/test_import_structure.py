"""The house's import rules, read from the source (docs/ARCHITECTURE.md, "Layers and arrows").

- No import circles between the domain packages (``portal/<domain>/``): the arrows between
  them point one way, so each can be read, tested and changed without the others above it.
- The foundation modules (``portal/<module>.py``: the unit of work, actors, ids, time,
  config, crypto, the web helpers) and the terminology package import no domain: every
  domain may build on them.

Every import counts, wherever it stands in the file (ruff refuses imports inside functions
besides, so a circle cannot hide in one). ``portal/__init__.py`` is the composition root:
it wires every domain into the app and is left out.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PORTAL = Path(__file__).resolve().parents[1] / "portal"
# Import nothing from a domain: the ground every domain stands on.
INDEPENDENT = ("terminology",)


def _node_of(module: str) -> str | None:
    """The graph node a ``portal.…`` module belongs to: its domain package, or the
    foundation module itself (``portal.web``)."""
    parts = module.split(".")
    if parts[0] != "portal" or len(parts) < 2:
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    relative = path.relative_to(PORTAL.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[str, int]]:
    """(imported module, line) of every ``portal`` import in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "portal":  # from portal import patients
                found += [(f"portal.{alias.name}", node.lineno) for alias in node.names]
            else:
                found.append((node.module, node.lineno))
    return [(name, line) for name, line in found if name.startswith("portal.")]


def import_graph() -> dict[str, dict[str, list[str]]]:
    """node -> imported node -> the imports behind the arrow (``file:line``)."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(PORTAL.rglob("*.py")):
        if path == PORTAL / "__init__.py":
            continue
        source = _node_of(_module_name(path))
        for module, line in _imports(path):
            target = _node_of(module)
            if target and target != source:
                graph[source][target].append(f"{path.relative_to(PORTAL.parent)}:{line}")
    return graph


def _domains() -> set[str]:
    return {path.name for path in PORTAL.iterdir() if (path / "__init__.py").exists()} - {
        "templates",
        "static",
    }


def strongly_connected(graph: dict[str, dict[str, list[str]]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of nodes that reach each other (size > 1: circles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    nodes = set(graph) | {target for targets in graph.values() for target in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return [group for group in groups if len(group) > 1]


def test_no_import_circles_between_packages():
    graph = import_graph()
    circles = strongly_connected(graph)
    explained = []
    for group in circles:
        members = set(group)
        arrows = [
            f"  {source} -> {target}: {', '.join(where[:3])}"
            for source in group
            for target, where in graph[source].items()
            if target in members
        ]
        explained.append(" <-> ".join(group) + "\n" + "\n".join(arrows))
    assert not circles, "import circles:\n" + "\n".join(explained)


def test_foundation_and_terminology_import_no_domain():
    domains = _domains() - set(INDEPENDENT)
    graph = import_graph()
    foundation = {
        path.stem for path in PORTAL.glob("*.py") if path.name not in ("__init__.py", "cli.py")
    }
    wrong = [
        f"{source} -> {target}: {', '.join(where[:3])}"
        for source in sorted(foundation | set(INDEPENDENT))
        for target, where in graph.get(source, {}).items()
        if target in domains
    ]
    assert not wrong, "these must not import a domain:\n" + "\n".join(wrong)


def test_the_check_sees_a_circle():
    """The detector itself: a made-up graph with a circle is reported, one without is not."""
    circle = {"a": {"b": ["x:1"]}, "b": {"c": ["x:2"]}, "c": {"a": ["x:3"]}}
    assert strongly_connected(circle) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b": ["x:1"]}, "b": {"c": ["x:2"]}}) == []


def test_tests_import_no_conftest_or_test_module():
    """Shared test code lives in tests/support/ or a folder's helpers, never in a conftest or
    a test module that others import (pytest loads those by itself, in its own order)."""
    tests = Path(__file__).resolve().parent
    offenders = []
    for path in tests.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            for name in names:
                last = name.split(".")[-1]
                if name.startswith("tests") and (last == "conftest" or last.startswith("test_")):
                    offenders.append(f"{path.relative_to(tests.parent)} imports {name}")
    assert not offenders, "\n".join(offenders)


# Where the FHIR API sits in the order of docs/ARCHITECTURE.md: above every clinical domain
# (it reads them all), below the packages that compose pages and data (admin's API-client
# pages may import it).
ABOVE_FHIR = ("admin", "main", "demo")
BELOW_FHIR = (
    "audit",
    "auth",
    "clinic",
    "integrations",
    "patients",
    "scheduling",
    "charting",
    "prescriptions",
)


def test_fhir_sits_above_the_clinical_domains_and_below_admin_main_demo():
    graph = import_graph()
    upward = [f"fhir -> {t}" for t in graph.get("fhir", {}) if t in ABOVE_FHIR]
    downward = [f"{s} -> fhir" for s in BELOW_FHIR if "fhir" in graph.get(s, {})]
    assert not upward + downward, "arrows against the order:\n" + "\n".join(upward + downward)
