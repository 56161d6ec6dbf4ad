"""The engine's layering, read from the source with `ast`: no import cycle inside the
packages, passes below the frontend, `common` below both engines, the engines apart."""

from __future__ import annotations

import ast
import pathlib

import networkx as nx
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGES = ("common", "eager", "symbolic")


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path, modules: set[str]) -> set[str]:
    """Project modules the file imports, at the top or inside a function alike."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from package import module` imports the module; `from module import name`, the module
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        found |= {t for t in targets if t in modules and t != name}
    return found


def _import_graph() -> nx.DiGraph:
    paths = [p for pkg in (*PACKAGES, "compare") for p in sorted((ROOT / pkg).rglob("*.py"))]
    modules = {_module_name(p) for p in paths}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for path in paths:
        graph.add_edges_from((_module_name(path), t) for t in _imports(path, modules))
    return graph


def _in(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _edges(source: str, target: str) -> list[tuple[str, str]]:
    return sorted((a, b) for a, b in _import_graph().edges if _in(a, source) and _in(b, target))


def test_no_import_cycle_inside_symbolic():
    graph = _import_graph().subgraph(n for n in _import_graph() if _in(n, "symbolic"))
    cycles = sorted(c + c[:1] for c in nx.simple_cycles(graph))
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles[:20])


def test_passes_never_import_the_frontend():
    assert not _edges("symbolic.passes", "symbolic.symbol")
    assert not _edges("symbolic.passes", "symbolic.tracing")


def test_code_generation_takes_liveness_from_the_graph():
    assert not _edges("symbolic.codegen", "symbolic.passes")


def test_graph_module_imports_no_other_symbolic_module():
    assert not [b for a, b in _edges("symbolic.graph", "symbolic") if a == "symbolic.graph"]


@pytest.mark.parametrize(
    "source, target",
    [
        ("common", "eager"),
        ("common", "symbolic"),
        ("eager", "symbolic"),
        ("symbolic", "eager"),
        *((engine, "compare") for engine in PACKAGES),  # compare sits on top of them all
    ],
)
def test_layers_stay_apart(source, target):
    assert not _edges(source, target)
