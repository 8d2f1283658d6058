"""The student edition: solutions become stubs, hidden tests vanish, outputs go, all else stays byte for byte;
the workspace is made once and never overwritten, and one notebook can be restored beside the student's."""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labsupport.cli import main
from labsupport.teaching.release import (HIDDEN_BEGIN, HIDDEN_END, MARKER, SOLUTION_BEGIN, SOLUTION_END, ReleaseError,
                                add_parser, build_release, make_workspace, release_notebook, release_source,
                                restore_notebook, todo_cells)

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"

TODO_SOURCE = '''class Thing:
    """A class."""

    def method(self, x):
        """Doc stays."""
        ### BEGIN SOLUTION
        y = x + 1
        return y
        ### END SOLUTION

    def other(self):
        z = 2
        if z:
            ### BEGIN SOLUTION
            return z
            ### END SOLUTION
        return 0


def helper(a):
    ### BEGIN SOLUTION
    return a
    ### END SOLUTION'''

EXPECTED = '''class Thing:
    """A class."""

    def method(self, x):
        """Doc stays."""
        raise NotImplementedError("TODO: Thing.method")

    def other(self):
        z = 2
        if z:
            raise NotImplementedError("TODO: Thing.other")
        return 0


def helper(a):
    raise NotImplementedError("TODO: helper")'''


def toy_notebook():
    todo = new_code_cell(TODO_SOURCE, id="todo-1")
    todo.metadata.update(tags=["todo"], labsupport={"piece": "toy", "defines": ["Thing", "helper"]})
    hidden = new_code_cell(f"print('visible')\n{HIDDEN_BEGIN}\nassert secret()\n{HIDDEN_END}\nprint('after')",
                           id="hidden-1")
    ran = new_code_cell("1 + 1", id="ran-1", execution_count=3, outputs=[new_output("execute_result", {"text/plain": "2"},
                                                                                    execution_count=3)])
    return new_notebook(cells=[new_markdown_cell("# Title\n### BEGIN SOLUTION is just text here", id="md-1"), todo,
                               hidden, ran], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})


def test_solution_blocks_become_stubs_at_their_indentation():
    assert release_source(TODO_SOURCE) == EXPECTED


def test_hidden_blocks_vanish_outputs_clear_rest_untouched():
    nb = toy_notebook()
    out = release_notebook(nb)
    md, todo, hidden, ran = out.cells
    assert md == nb.cells[0]
    assert todo.source == EXPECTED and todo.metadata == nb.cells[1].metadata
    assert hidden.source == "print('visible')\nprint('after')"
    assert ran.outputs == [] and ran.execution_count is None and ran.source == "1 + 1"
    assert out.metadata == nb.metadata
    assert nb.cells[3].outputs, "the source notebook must be left as it was"


@pytest.mark.parametrize("source,message", [
    (f"{SOLUTION_BEGIN}\nx = 1", "no matching"),
    (f"x = 1\n{SOLUTION_END}", "no opening"),
    (f"{SOLUTION_BEGIN}\n{HIDDEN_BEGIN}\n{HIDDEN_END}\n{SOLUTION_END}", "nest"),
])
def test_unbalanced_markers_are_refused(source, message):
    with pytest.raises(ReleaseError, match=message):
        release_source(source)


def test_contract_violations_are_refused():
    nb = toy_notebook()
    nb.cells[2].source = f"{SOLUTION_BEGIN}\nx = 1\n{SOLUTION_END}"
    with pytest.raises(ReleaseError, match="not tagged"):
        release_notebook(nb)
    nb = toy_notebook()
    nb.cells[1].source = "x = 1"
    with pytest.raises(ReleaseError, match="no '### BEGIN SOLUTION' block"):
        release_notebook(nb)
    nb = toy_notebook()
    del nb.cells[1].metadata["labsupport"]
    with pytest.raises(ReleaseError, match="metadata.labsupport"):
        release_notebook(nb)


def _solution_blocks(source: str) -> list[list[str]]:
    return [block.split("\n")[1:-1] for block in
            re.findall(rf"^[ \t]*{SOLUTION_BEGIN}\n.*?^[ \t]*{SOLUTION_END}", source, flags=re.S | re.M)]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    out = tmp_path_factory.mktemp("rel") / "student"
    build_release(NOTEBOOKS, out)
    return out


def _sources():
    return sorted(NOTEBOOKS.glob("*.ipynb"))


@pytest.mark.parametrize("path", _sources(), ids=lambda p: p.name)
def test_release_of_the_lab_notebooks(path, release):
    text = (release / path.name).read_text()
    for marker in (SOLUTION_BEGIN, SOLUTION_END, HIDDEN_BEGIN, HIDDEN_END):
        assert marker not in text
    src = nbformat.reads(path.read_text(), as_version=nbformat.NO_CONVERT)
    out = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    assert [c.id for c in out.cells] == [c.id for c in src.cells]
    assert len(todo_cells(out)) == len(todo_cells(src)) > 0
    for s_cell, o_cell in zip(src.cells, out.cells):
        if s_cell.cell_type == "code":
            assert o_cell.outputs == [] and o_cell.execution_count is None
        if s_cell in todo_cells(src):
            blocks = _solution_blocks(s_cell.source)
            stubs = re.findall(r'raise NotImplementedError\("TODO: ([\w.]+)"\)', o_cell.source)
            assert len(stubs) == len(blocks), "one stub per solution block"
            defines = s_cell.metadata["labsupport"]["defines"]
            assert all(stub.split(".")[0] in defines for stub in stubs)
            outside = set(release_source(s_cell.source).splitlines())
            for block in blocks:
                for line in block:
                    if line.strip():
                        assert line not in o_cell.source.splitlines() or line in outside, line
    # byte for byte: the source with only the released cell sources swapped in, and outputs cleared
    for s_cell, o_cell in zip(src.cells, out.cells):
        s_cell.source = o_cell.source
        if s_cell.cell_type == "code":
            s_cell.outputs, s_cell.execution_count = [], None
    expected = nbformat.writes(src)
    assert text == (expected if expected.endswith("\n") else expected + "\n")


def test_other_files_are_copied_and_rebuild_replaces_the_release(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(toy_notebook(), src / "a.ipynb")
    (src / "data.txt").write_bytes(b"\x00raw bytes")
    (src / ".ipynb_checkpoints").mkdir()
    (src / ".ipynb_checkpoints" / "a-checkpoint.ipynb").write_text("{}")
    out = tmp_path / "out"
    build_release(src, out)
    assert (out / "data.txt").read_bytes() == b"\x00raw bytes"
    assert not (out / ".ipynb_checkpoints").exists() and (out / MARKER).exists()
    (out / "stale.txt").write_text("old")
    build_release(src, out)
    assert not (out / "stale.txt").exists()


def test_workspace_is_made_once_and_never_overwritten(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(toy_notebook(), src / "a.ipynb")
    ws = make_workspace(tmp_path / "ws", src)
    nb = json.loads((ws / "a.ipynb").read_text())
    assert "TODO: Thing.method" in "".join(nb["cells"][1]["source"])
    assert not (ws / MARKER).exists()
    (ws / "a.ipynb").write_text("my work")
    make_workspace(ws, src)
    assert (ws / "a.ipynb").read_text() == "my work"
    with pytest.raises(ReleaseError, match="never overwritten"):
        build_release(src, ws)
    assert (ws / "a.ipynb").read_text() == "my work"


def test_command_line(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(toy_notebook(), src / "a.ipynb")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["release", "--source", str(src), "--out", str(tmp_path / "rel")])
    args.func(args)
    assert (tmp_path / "rel" / "a.ipynb").exists() and "1 notebooks" in capsys.readouterr().out
    args = parser.parse_args(["workspace", "--source", str(src), "--out", str(tmp_path / "ws")])
    args.func(args)
    assert (tmp_path / "ws" / "a.ipynb").exists()


def _two_notebook_source(folder: Path) -> Path:
    folder.mkdir()
    nbformat.write(toy_notebook(), folder / "01_first.ipynb")
    nbformat.write(toy_notebook(), folder / "03_third.ipynb")
    return folder


def test_restore_writes_a_fresh_copy_beside_the_students_and_never_over_a_file(tmp_path):
    src = _two_notebook_source(tmp_path / "src")
    ws = make_workspace(tmp_path / "ws", src)
    fresh = (ws / "03_third.ipynb").read_bytes()
    (ws / "03_third.ipynb").write_text("my work")
    first = restore_notebook("03", ws, src)
    assert first == ws / "03_third.restored.ipynb" and first.read_bytes() == fresh
    assert (ws / "03_third.ipynb").read_text() == "my work"
    first.write_text("my notes in the restored copy")
    later = [restore_notebook(which, ws, src) for which in ("03_third", "03_third.ipynb", "3")]
    assert [p.name for p in later] == [f"03_third.restored-{k}.ipynb" for k in (2, 3, 4)]
    assert all(p.read_bytes() == fresh for p in later)
    assert first.read_text() == "my notes in the restored copy" and (ws / "03_third.ipynb").read_text() == "my work"
    assert sorted(p.name for p in ws.iterdir()) == ["01_first.ipynb", "03_third.ipynb", "03_third.restored-2.ipynb",
                                                    "03_third.restored-3.ipynb", "03_third.restored-4.ipynb",
                                                    "03_third.restored.ipynb"]


def test_restore_of_a_lab_notebook_is_its_student_edition(tmp_path):
    (tmp_path / "ws").mkdir()
    restored = restore_notebook("03_ddim_sampling", tmp_path / "ws", NOTEBOOKS)
    assert restored.name == "03_ddim_sampling.restored.ipynb"
    nb = nbformat.read(restored, as_version=4)
    source = "".join(cell.source for cell in todo_cells(nb))
    assert "TODO: DDIMSampler" in source and SOLUTION_BEGIN not in source


def test_restore_errors_say_what_to_do(tmp_path):
    src = _two_notebook_source(tmp_path / "src")
    with pytest.raises(FileNotFoundError, match="no workspace at .*labsupport workspace --out"):
        restore_notebook("03", tmp_path / "ws", src)
    (tmp_path / "ws").mkdir()
    with pytest.raises(ReleaseError, match=re.escape("no notebook '07'; choose one of 01 (01_first), 03 (03_third)")):
        restore_notebook("07", tmp_path / "ws", src)
    assert not any((tmp_path / "ws").iterdir())


def test_restore_from_the_command_line(tmp_path, capsys):
    src = _two_notebook_source(tmp_path / "src")
    ws = make_workspace(tmp_path / "ws", src)
    (ws / "03_third.ipynb").write_text("my work")
    capsys.readouterr()
    assert main(["workspace", "--source", str(src), "--out", str(ws), "--restore", "03"]) == 0
    out = capsys.readouterr().out
    assert str(ws / "03_third.restored.ipynb") in out and f"Your own {ws / '03_third.ipynb'} is untouched" in out
    (ws / "01_first.ipynb").unlink()
    assert main(["workspace", "--source", str(src), "--out", str(ws), "--restore", "01_first.ipynb"]) == 0
    assert "rename the restored copy" in capsys.readouterr().out
    assert main(["workspace", "--source", str(src), "--out", str(ws), "--restore", "9"]) == 2
    err = capsys.readouterr().err
    assert "labsupport workspace: error: there is no notebook '9'" in err and "01 (01_first)" in err
    assert (ws / "03_third.ipynb").read_text() == "my work"
