"""The student edition of the notebooks, and the student's workspace made from it (docs/authoring.md).

    labsupport release --out build/student      solutions -> stubs, hidden tests removed, outputs cleared
    labsupport workspace --dest workspace        a working copy for the student, made once, never overwritten
    labsupport workspace --restore 03            a fresh copy of one notebook beside the student's, never over it

Only what the markers enclose changes: each `### BEGIN SOLUTION` ... `### END SOLUTION` block becomes
`raise NotImplementedError("TODO: Class.method")` at the block's indentation, each
`### BEGIN HIDDEN TESTS` ... `### END HIDDEN TESTS` block disappears, and code cells lose their
outputs and execution counts. Every other byte of every notebook, and every other file, is copied as is.
"""
from __future__ import annotations

import itertools
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

__all__ = ["ReleaseError", "release_source", "release_notebook", "build_release", "make_workspace", "restore_notebook",
           "todo_cells", "add_parser", "SOLUTION_BEGIN", "SOLUTION_END", "HIDDEN_BEGIN", "HIDDEN_END", "TODO_TAG",
           "MARKER"]

SOLUTION_BEGIN, SOLUTION_END = "### BEGIN SOLUTION", "### END SOLUTION"
HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
TODO_TAG = "todo"
MARKER = ".labsupport-release"  # marks a folder this module wrote, so that rebuilding may replace it


class ReleaseError(ValueError):
    """A source notebook breaks the authoring contract (unbalanced markers, a TODO cell without a solution, ...)."""


_DEF = re.compile(r"^(\s*)(?:async\s+)?def\s+(\w+)")
_CLASS = re.compile(r"^(\s*)class\s+(\w+)")


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _enclosing_name(lines: list[str], start: int, indent: str, fallback: str) -> str:
    """'Class.method' (or 'function') of the def that holds the block starting at line `start`."""
    for i in range(start - 1, -1, -1):
        m = _DEF.match(lines[i])
        if m and len(m.group(1)) < len(indent):
            for j in range(i - 1, -1, -1):
                c = _CLASS.match(lines[j])
                if c and len(c.group(1)) < len(m.group(1)):
                    return f"{c.group(2)}.{m.group(2)}"
            return m.group(2)
    return fallback


def release_source(source: str, *, fallback: str = "this cell") -> str:
    """One cell's source with every solution block stubbed and every hidden block removed."""
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    i = 0
    while i < len(lines):
        mark = lines[i].strip()
        if mark in (SOLUTION_BEGIN, HIDDEN_BEGIN):
            end = SOLUTION_END if mark == SOLUTION_BEGIN else HIDDEN_END
            j = next((k for k in range(i + 1, len(lines)) if lines[k].strip() == end), None)
            if j is None:
                raise ReleaseError(f"{mark!r} at line {i + 1} of {fallback} has no matching {end!r}")
            inner = [k for k in range(i + 1, j) if lines[k].strip() in (SOLUTION_BEGIN, HIDDEN_BEGIN)]
            if inner:
                raise ReleaseError(f"markers nest at line {inner[0] + 1} of {fallback}; close {mark!r} first")
            if mark == SOLUTION_BEGIN:
                indent = _indent(lines[i])
                name = _enclosing_name(lines, i, indent, fallback)
                newline = "\n" if lines[j].endswith("\n") else ""
                out.append(f'{indent}raise NotImplementedError("TODO: {name}"){newline}')
            i = j + 1
            continue
        if mark in (SOLUTION_END, HIDDEN_END):
            raise ReleaseError(f"{mark!r} at line {i + 1} of {fallback} has no opening marker")
        out.append(lines[i])
        i += 1
    return "".join(out)


def _is_todo(cell) -> bool:
    return cell.get("cell_type") == "code" and TODO_TAG in cell.get("metadata", {}).get("tags", [])


def todo_cells(nb) -> list:
    """The TODO cells of a notebook (tag `todo`), in order."""
    return [c for c in nb.cells if _is_todo(c)]


def release_notebook(nb, *, name: str = "notebook"):
    """The student edition of one notebook (a new NotebookNode; `nb` is left as it is)."""
    nb = nbformat.from_dict(nb)  # a deep copy
    for k, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        where = f"cell {k} of {name}"
        has_solution = any(line.strip() == SOLUTION_BEGIN for line in cell.source.splitlines())
        if _is_todo(cell):
            meta = cell.metadata.get("labsupport", {})
            if not meta.get("piece") or not meta.get("defines"):
                raise ReleaseError(f"TODO {where} needs metadata.labsupport = {{'piece': ..., 'defines': [...]}}")
            if not has_solution:
                raise ReleaseError(f"TODO {where} has no {SOLUTION_BEGIN!r} block")
            fallback = meta["defines"][0]
        elif has_solution:
            raise ReleaseError(f"{where} holds a solution block but is not tagged {TODO_TAG!r}")
        else:
            fallback = where
        cell.source = release_source(cell.source, fallback=fallback)
        cell.outputs = []
        cell.execution_count = None
    return nb


def _notebook_text(nb) -> str:
    text = nbformat.writes(nb)
    return text if text.endswith("\n") else text + "\n"


def _write(nb, path: Path) -> None:
    path.write_text(_notebook_text(nb), encoding="utf-8")


def _skip(path: Path) -> bool:
    return any(part.startswith(".") or part == "__pycache__" for part in path.parts)


def _build_into(source: Path, out: Path) -> list[Path]:
    written = []
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source)
        if _skip(rel) or path.is_dir():
            continue
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix == ".ipynb":
            nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=nbformat.NO_CONVERT)
            _write(release_notebook(nb, name=str(rel)), target)
        else:
            shutil.copy2(path, target)
        written.append(target)
    return written


def build_release(source: str | Path = "notebooks", out: str | Path = "build/student") -> list[Path]:
    """Write the student edition of every file under `source` into `out`; returns the files written.

    `out` is replaced when it is empty or an earlier release; any other existing folder is refused.
    """
    source, out = Path(source), Path(out)
    if not source.is_dir() or not any(source.glob("*.ipynb")):
        raise ReleaseError(f"{source} holds no notebooks; pass --source with the folder of the source notebooks")
    if out.resolve() == source.resolve() or source.resolve() in out.resolve().parents:
        raise ReleaseError(f"--out {out} must lie outside the source folder {source}")
    if out.exists():
        if (out / MARKER).exists() or (out.is_dir() and not any(out.iterdir())):
            shutil.rmtree(out)
        else:
            raise ReleaseError(f"{out} exists and was not written by `labsupport release`; choose another --out "
                               "(a student workspace is never overwritten)")
    out.mkdir(parents=True)
    written = _build_into(source, out)
    (out / MARKER).write_text("written by `labsupport release`; rebuilding replaces this folder\n")
    return written


def make_workspace(dest: str | Path = "workspace", source: str | Path = "notebooks") -> Path:
    """Create the student's workspace from the release, once: an existing `dest` is never touched."""
    dest = Path(dest)
    if dest.exists():
        print(f"{dest} already exists; leaving your work as it is.")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=f".{dest.name}-") as tmp:
        staging = Path(tmp) / "student"
        build_release(source, staging)
        (staging / MARKER).unlink()  # the workspace is the student's: no later release may replace it
        staging.rename(dest)
    print(f"Created your workspace in {dest}.")
    return dest


def _find_notebook(which: str, source: Path) -> Path:
    """The source notebook that `which` names: its number ("03" or "3"), its stem or its file name."""
    notebooks = sorted(source.glob("*.ipynb")) if source.is_dir() else []
    if not notebooks:
        raise ReleaseError(f"{source} holds no notebooks; pass --source with the folder of the source notebooks")
    name = Path(which).name.removesuffix(".ipynb")
    for path in notebooks:
        number = path.stem.split("_", 1)[0]
        if name == path.stem or (name.isdigit() and number.isdigit() and int(name) == int(number)):
            return path
    choices = ", ".join(f"{p.stem.split('_', 1)[0]} ({p.stem})" for p in notebooks)
    raise ReleaseError(f"there is no notebook {which!r}; choose one of {choices}")


def restore_notebook(which: str, dest: str | Path = "workspace", source: str | Path = "notebooks") -> Path:
    """Write a fresh student-edition copy of one notebook into the workspace `dest`, beside the student's own.

    The copy is `<name>.restored.ipynb` (then `.restored-2`, `-3`, ...): no existing file is ever written over.
    """
    dest = Path(dest)
    if not dest.is_dir():
        raise FileNotFoundError(f"there is no workspace at {dest}; create it with `labsupport workspace --out {dest}` "
                                "(`make lab` does this), or pass --out with the folder your notebooks are in")
    path = _find_notebook(which, Path(source))
    nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=nbformat.NO_CONVERT)
    text = _notebook_text(release_notebook(nb, name=path.name))
    for k in itertools.count(1):
        target = dest / f"{path.stem}.restored{'' if k == 1 else f'-{k}'}.ipynb"
        try:
            with open(target, "x", encoding="utf-8") as f:  # "x" fails rather than replace a file that exists
                f.write(text)
            return target
        except FileExistsError:
            continue


# -- command line (wired into labsupport.cli) ------------------------------------------------------
def _cmd_release(args) -> None:
    written = build_release(args.source, args.out)
    n = sum(p.suffix == ".ipynb" for p in written)
    print(f"wrote the student edition to {args.out}: {n} notebooks, {len(written) - n} other files")


def _cmd_workspace(args) -> None:
    if args.restore:
        restored = restore_notebook(args.restore, args.dest, args.source)
        own = restored.with_name(restored.name.split(".restored", 1)[0] + ".ipynb")
        print(f"Wrote a fresh copy of {own.stem} (student edition) to {restored}.")
        if own.exists():
            print(f"Your own {own} is untouched: open the restored copy beside it and take what you need.")
        else:
            print(f"You have no {own}; rename the restored copy to that name to make it yours.")
        dest = Path(args.dest)
    else:
        dest = make_workspace(args.dest, args.source)
    if args.lab:
        sys.exit(subprocess.call([sys.executable, "-m", "jupyterlab", f"--notebook-dir={dest}"]))


def add_parser(subparsers) -> None:
    """Register the `release` and `workspace` subcommands on an argparse subparsers object."""
    r = subparsers.add_parser("release", help="write the student edition of the notebooks")
    r.add_argument("--source", default="notebooks", help="folder of the source notebooks (default: notebooks)")
    r.add_argument("--out", default="build/student", help="output folder (default: build/student)")
    r.set_defaults(func=_cmd_release)

    w = subparsers.add_parser("workspace", help="create the student workspace from the release (never overwrites)")
    w.add_argument("--dest", "--out", dest="dest", default="workspace", help="workspace folder (default: workspace)")
    w.add_argument("--source", default="notebooks", help="folder of the source notebooks (default: notebooks)")
    w.add_argument("--restore", metavar="NOTEBOOK", help="write a fresh copy of one notebook (03, 03_ddim_sampling "
                   "or its file name) into the workspace as <name>.restored.ipynb; your own file is never touched")
    w.add_argument("--lab", action="store_true", help="then open JupyterLab in the workspace")
    w.set_defaults(func=_cmd_workspace)
