"""The import contract: gradcheck's modules import one way, and nothing hides a cycle.

Data flows params -> finite differences -> comparison -> diagnosis -> report, with the
front-ends on top. Each package (or top-level module) below names the packages it may import
at run time; imports under ``if TYPE_CHECKING:`` are for annotations only and are allowed
anywhere, and an import inside a function is allowed only for optional third-party
dependencies (torch, jax), never for a gradcheck module (that would be a cycle in disguise).
A new module must be placed in ``ALLOWED`` consciously: an unknown one fails the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gradcheck"

BASE = {"gradcheck.errors"}
# unit -> the units it may import at run time (a unit is a subpackage or a top-level module)
ALLOWED: dict[str, set[str]] = {
    "gradcheck.errors": set(),
    "gradcheck.protocol": BASE,
    "gradcheck.core": BASE,
    "gradcheck.fast": BASE | {"gradcheck.core"},
    "gradcheck.diagnosis": BASE | {"gradcheck.core", "gradcheck.protocol"},
    "gradcheck.report": BASE | {"gradcheck.core", "gradcheck.diagnosis", "gradcheck.fast"},
    "gradcheck.adapters": BASE | {"gradcheck.core", "gradcheck.protocol"},
    "gradcheck.options": BASE | {"gradcheck.core", "gradcheck.fast"},
    "gradcheck.api": BASE
    | {
        "gradcheck.core",
        "gradcheck.fast",
        "gradcheck.diagnosis",
        "gradcheck.report",
        "gradcheck.options",
        "gradcheck.protocol",
    },
    "gradcheck.routes": BASE
    | {"gradcheck.adapters", "gradcheck.api", "gradcheck.core", "gradcheck.report"},
    "gradcheck.progress": set(),
    "gradcheck.assertions": BASE
    | {"gradcheck.api", "gradcheck.core", "gradcheck.report", "gradcheck.options"},
    "gradcheck.plugin": BASE
    | {
        "gradcheck.api",
        "gradcheck.assertions",
        "gradcheck.core",
        "gradcheck.options",
        "gradcheck.report",
        "gradcheck.routes",
    },
    "gradcheck.cli": BASE
    | {
        "gradcheck.adapters",
        "gradcheck.api",
        "gradcheck.options",
        "gradcheck.progress",
        "gradcheck.protocol",
        "gradcheck.report",
    },
    "gradcheck.__main__": {"gradcheck.cli"},
}
PUBLIC_FRONT = "gradcheck"  # gradcheck/__init__.py re-exports; it may import anything below


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _unit(module: str) -> str:
    """``gradcheck.core.params`` -> ``gradcheck.core``; ``gradcheck.api`` -> itself."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _imports(path: Path) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """(run-time module-level imports, function-level imports) of gradcheck modules."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    module_level = {id(node) for node in tree.body}
    runtime, nested = [], []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        names = [n for n in names if n == "gradcheck" or n.startswith("gradcheck.")]
        if not names or id(node) in typing_only:
            continue
        target = [
            n
            for n in names
            if (PACKAGE.parent / (n.replace(".", "/") + ".py")).exists()
            or (PACKAGE.parent / n.replace(".", "/")).is_dir()
        ]
        bucket = runtime if id(node) in module_level else nested
        bucket.extend((n, node.lineno) for n in target)
    return runtime, nested


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_is_placed_in_the_contract():
    unplaced = sorted(m for m in MODULES if m != PUBLIC_FRONT and _unit(m) not in ALLOWED)
    assert not unplaced, f"add these to ALLOWED in {__file__}: {unplaced}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_one_way(module):
    if module == PUBLIC_FRONT:
        return
    unit = _unit(module)
    runtime, _ = _imports(MODULES[module])
    wrong = [
        f"{target} (line {line})"
        for target, line in runtime
        if _unit(target) != unit and _unit(target) not in ALLOWED.get(unit, set())
    ]
    assert not wrong, f"{module} may not import {wrong} (see ALLOWED)"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_level_import_of_gradcheck(module):
    _, nested = _imports(MODULES[module])
    assert not nested, f"{module} imports {nested} inside a function: a hidden cycle"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of ``graph`` (module -> modules it imports) as a path, or ``None``."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return [*stack[stack.index(t) :], t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_module_graph_has_no_cycle():
    graph = {
        m: {t for t, _ in _imports(p)[0] if t in MODULES and t != m} for m, p in MODULES.items()
    }
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_the_library_never_imports_the_reference_nets():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert "nets" not in roots, f"{module} imports nets (line {node.lineno})"


def test_the_contract_catches_a_cycle(tmp_path, monkeypatch):
    # the checker checks itself: two modules importing each other must be reported
    package = tmp_path / "gradcheck"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from gradcheck.b import x\n")
    (package / "b.py").write_text("def f():\n    from gradcheck.a import y\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", package)
    assert _imports(package / "a.py") == ([("gradcheck.b", 1)], [])
    assert _imports(package / "b.py") == ([], [("gradcheck.a", 2)])
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
