"""Every notebook under notebooks/ is committed clean: valid nbformat, canonical layout, no outputs,
no execution counts, and TODO cells that follow the authoring contract (docs/authoring.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

import labsupport.teaching.checks as check

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").rglob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts]


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_valid_and_without_outputs(path):
    text = path.read_text(encoding="utf-8")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.outputs == [], f"cell {k} has outputs: clear them before committing"
            assert cell.execution_count is None, f"cell {k} has an execution count"
    canonical = nbformat.writes(nb)
    assert text == (canonical if canonical.endswith("\n") else canonical + "\n"), \
        "not in nbformat's layout (save it with JupyterLab or nbformat.write), so the release could not keep its bytes"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_todo_cells_follow_the_contract(path):
    nb = nbformat.read(path, as_version=4)
    sources = [c.source for c in nb.cells if c.cell_type == "code"]
    for cell in nb.cells:
        if "todo" not in cell.metadata.get("tags", []):
            continue
        meta = cell.metadata["labsupport"]
        assert meta["piece"] in check.PIECES, meta
        defined = {n.name for n in ast.parse(cell.source).body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
        assert set(meta["defines"]) <= defined, (meta, defined)
        later = "\n".join(sources[sources.index(cell.source) + 1:])
        assert f"check.{meta['piece']}(" in later, f"no check.{meta['piece']}(...) after the TODO cell"
        assert f'"{meta["piece"]}")' in later, f"no check.or_reference(..., \"{meta['piece']}\") after the TODO cell"
