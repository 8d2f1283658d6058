"""The package's shape: its roles show in the tree, no module imports in a circle, modules stay small."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "labsupport"
ROLES = ("maths", "models", "samplers", "lab5", "teaching", "grading", "tools")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules of labsupport imported when `path` is imported (top-level statements, not those inside functions)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        out |= {c for c in candidates if c.startswith("labsupport") and c in MODULES}
    return out - {name}


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}


def test_each_role_is_a_documented_folder():
    for role in ROLES:
        init = PACKAGE / role / "__init__.py"
        assert init.exists(), f"labsupport/{role}/ should be a package"
        assert ast.get_docstring(ast.parse(init.read_text())), f"labsupport/{role}/__init__.py should say what the folder is for"


def test_no_module_imports_in_a_circle():
    graph = {name: {m for m in _imports(path) if not name.startswith(m + ".")} for name, path in MODULES.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join(trail[trail.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_stay_small(name):
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= 450, f"{name} has {lines} lines; split it by concept"


def test_the_maths_imports_nothing_but_torch_and_itself():
    for name, path in MODULES.items():
        if name.startswith("labsupport.maths"):
            assert all(m.startswith("labsupport.maths") for m in _imports(path)), (name, _imports(path))
