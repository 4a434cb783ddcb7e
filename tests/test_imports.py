"""The package's structure: every module imports on its own, no import circle, reports never
import a stage, and the stage modules stay small."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "medcl"
MODULES = sorted(
    ".".join(p.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")
    for p in ROOT.rglob("*.py")
)


def _module_of(path: Path) -> str:
    return ".".join(path.relative_to(ROOT.parent).with_suffix("").parts).removesuffix(".__init__")


def import_graph() -> dict[str, set[str]]:
    """medcl module -> the medcl modules it imports (anywhere in the file, lazy ones too)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        name = _module_of(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                # "from medcl.stages import stratify" imports the module medcl.stages.stratify
                targets = [
                    f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                    for a in node.names
                ]
            else:
                continue
            edges |= {t for t in targets if t in MODULES and t != name}
        graph[name] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, if any. A package's __init__ importing its own submodules, which
    import siblings, is not one: only an edge back to a module already on the path is."""
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            # a submodule importing its parent package runs the package's __init__ first
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_no_import_circle():
    assert _cycle(import_graph()) is None, " -> ".join(_cycle(import_graph()) or [])


def test_the_cycle_check_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_reports_never_import_a_stage():
    graph = import_graph()
    for name, edges in graph.items():
        if name.startswith("medcl.report"):
            assert not {e for e in edges if e.startswith("medcl.stages")}, name


def test_the_cli_reaches_stratify_through_medcl_stages_only():
    edges = import_graph()["medcl.cli"]
    assert "medcl.stratify_config" not in edges
    assert not {e for e in edges if e.startswith("medcl.stages.stratify.")}


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "stages").rglob("*.py")),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_stage_modules_are_small(path):
    assert len(path.read_text().splitlines()) <= 300, f"{path} has grown past 300 lines"


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    """Each module in a fresh interpreter, so that an order that hides a circle cannot."""
    code = (
        "import importlib, sys\n"
        "bad = []\n"
        "for name in sys.argv[1:]:\n"
        "    r = __import__('subprocess').run([sys.executable, '-c', f'import {name}'],"
        " capture_output=True, text=True)\n"
        "    if r.returncode: bad.append((name, r.stderr.strip().splitlines()[-1]))\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, *MODULES], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
