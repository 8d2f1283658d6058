"""Reading one submitted file: is it a Lab 5 notebook, whose is it, where are its pieces.

Student id, in this order:
1. `metadata.labsupport.student_id` in the notebook, when it is a non-empty string;
2. the name of the folder directly inside SUBMISSIONS_DIR that holds the file (`alice/02.ipynb`);
3. the file name up to its first underscore (`alice_02_ddpm.ipynb` and `alice.ipynb` give `alice`).
Ids keep letters, digits, `.`, `-` and `@`; anything else becomes `-`.

A pair (or team) declares its members, all of them, the submitter included, by
- `metadata.labsupport.team = ["alice", "bob"]` in the notebook, or else
- a `team.txt` in the notebook's folder or a folder above it inside SUBMISSIONS_DIR (the nearest
  counts): ids separated by commas, semicolons or white space, `#` starting a comment. The helper
  `labsupport.teaching.notebook.team("alice", "bob")` writes one. A team.txt directly in SUBMISSIONS_DIR is
  ignored, since it would speak for every student whose files lie there.
An id set by `metadata.labsupport.student_id` names a person and joins the declared team; a folder or
file name does not (it may name the team, `team7/`). teams.py turns declarations into members.

Pieces are found by the TODO cells' `metadata.labsupport.piece`; a piece whose cell lost its
metadata is found by the names it defines (`class DDPMSampler`), as docs/authoring.md says. Cells may
be reordered or duplicated (the last definition wins, as in a kernel).
"""
from __future__ import annotations

import ast
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Submission", "PieceSource", "read_submission", "student_id_for", "probe_cells", "definitions",
           "probe_signature", "split_team", "MAX_NOTEBOOK_MB", "MAX_TEAM", "TEAM_FILE"]

MAX_NOTEBOOK_MB = 50
LAB = 5
MAX_TEAM = 4                 # Lab 5 is a pair assignment; larger teams are flagged, not refused
TEAM_FILE = "team.txt"
_MAX_TEAM_FILE_BYTES = 10_000
_MAX_TEAM_READ = 16          # ids read from one declaration; the rest is dropped with a note


@dataclass
class PieceSource:
    """Where a piece's code is: its cells, how they were found, and what they define."""
    piece: str
    cells: list[int]
    found_by: str                # "metadata" or "name"
    defines: list[str]           # top-level class/def names in those cells
    syntax_error: str = ""


@dataclass
class Submission:
    path: Path
    sha256: str
    student_id: str
    status: str = "ok"           # ok | not json | not a notebook | wrong lab | too large
    detail: str = ""
    nb: object | None = None     # the NotebookNode when it parsed
    pieces: dict[str, PieceSource] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    team: list[str] = field(default_factory=list)   # declared members (cleaned ids); [] when none
    team_source: str = ""        # "metadata", the team file's path relative to SUBMISSIONS_DIR, or ""

    @property
    def readable(self) -> bool:
        return self.status == "ok"


def _clean_id(raw: str) -> str:
    return re.sub(r"[^A-Za-z0-9.@-]+", "-", raw.strip()).strip("-.") or "unknown"


def student_id_for(path: Path, root: Path, metadata_id: object = None) -> str:
    """The student id rule of this module's docstring."""
    if isinstance(metadata_id, str) and metadata_id.strip():
        return _clean_id(metadata_id)
    rel = Path(path).resolve().relative_to(Path(root).resolve())
    if len(rel.parts) > 1:
        return _clean_id(rel.parts[0])
    return _clean_id(rel.stem.split("_", 1)[0])


def _python_source(cell_source: str) -> str:
    """Cell source with IPython syntax (%magics, !shell) turned into plain Python calls."""
    from IPython.core.inputtransformer2 import TransformerManager
    try:
        return TransformerManager().transform_cell(cell_source)
    except Exception:  # noqa: BLE001 - leave it to ast.parse to report
        return cell_source


def _top_level_names(source: str) -> tuple[list[str], str]:
    """(class/def names at the top of `source`, syntax error message or '')."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        line = getattr(err, "lineno", None)
        return [], f"{type(err).__name__}: {getattr(err, 'msg', err)}" + (f" (line {line})" if line else "")
    return [n.name for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))], ""


def _as_notebook(data: dict):
    """A NotebookNode, tolerating what editors commonly drop (outputs, ids, metadata)."""
    import nbformat  # here, not at the top: the probe imports this module and needs no nbformat
    if not isinstance(data.get("cells"), list) or int(data.get("nbformat", 0) or 0) < 4:
        raise ValueError("no list of cells in nbformat 4")
    for cell in data["cells"]:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise ValueError("a cell is not a code, markdown or raw cell")
        if isinstance(cell.get("source"), list):
            cell["source"] = "".join(map(str, cell["source"]))
        if not isinstance(cell.get("source", ""), str):
            raise ValueError("a cell's source is not text")
        cell.setdefault("source", "")
        cell.setdefault("metadata", {})
        if cell["cell_type"] == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
    data.setdefault("metadata", {})
    data["nbformat"], data["nbformat_minor"] = 4, max(int(data.get("nbformat_minor", 5) or 5), 5)
    nb = nbformat.from_dict(data)
    nbformat.validator.normalize(nb)
    nbformat.validate(nb)
    return nb


def read_submission(path: Path, root: Path, pieces: dict[str, tuple[str, ...]]) -> Submission:
    """Parse `path` and locate `pieces` (piece id -> names it defines). Never raises for bad input."""
    path = Path(path)
    raw = path.read_bytes()
    sub = Submission(path=path, sha256=hashlib.sha256(raw).hexdigest(), student_id=student_id_for(path, root))
    _read_team_file(sub, root)   # before parsing: a broken notebook's team still names its members
    if len(raw) > MAX_NOTEBOOK_MB * 2 ** 20:
        sub.status, sub.detail = "too large", f"the file is larger than {MAX_NOTEBOOK_MB} MB"
        return sub
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        sub.status, sub.detail = "not json", f"the file is not a JSON document ({str(err)[:120]})"
        return sub
    if not isinstance(data, dict) or "cells" not in data:
        sub.status, sub.detail = "not a notebook", "the file is JSON but has no notebook cells"
        return sub
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    lab_meta = meta.get("labsupport") if isinstance(meta.get("labsupport"), dict) else {}
    sub.student_id = student_id_for(path, root, lab_meta.get("student_id"))
    _read_team_metadata(sub, lab_meta)
    try:
        nb = _as_notebook(data)
    except Exception as err:  # noqa: BLE001 - any schema problem means "not a notebook we can run"
        sub.status, sub.detail = "not a notebook", f"the file is JSON but not a valid notebook ({str(err)[:160]})"
        return sub
    sub.nb = nb
    if "lab" in lab_meta and str(lab_meta["lab"]) != str(LAB):
        sub.status, sub.detail = "wrong lab", f"the notebook belongs to lab {lab_meta['lab']}, not to Lab {LAB}"
        return sub
    _locate(sub, pieces)
    if not sub.pieces:
        sub.status = "wrong lab"
        sub.detail = ("no Lab 5 piece was found (no TODO cell of this lab and no class or function it asks for): "
                      "is this the right notebook?")
    return sub


def split_team(text: str) -> list[str]:
    """The ids of a team declaration, as written: separated by commas, semicolons or white space;
    `#` starts a comment that runs to the end of its line."""
    return [tok for line in text.splitlines() for tok in re.split(r"[\s,;]+", line.split("#", 1)[0]) if tok]


def _team_ids(raw: list[str], where: str, notes: list[str]) -> list[str]:
    """Cleaned ids, each once, in the order written; what cleaning changed or dropped goes to `notes`."""
    ids: list[str] = []
    if len(raw) > _MAX_TEAM_READ:
        notes.append(f"team ({where}): {len(raw)} ids declared; read the first {_MAX_TEAM_READ}")
    for tok in raw[:_MAX_TEAM_READ]:
        cleaned = _clean_id(tok)
        if cleaned == "unknown" and tok != "unknown":
            notes.append(f"team ({where}): {tok!r} is not a student id; skipped it")
            continue
        if cleaned != tok:
            notes.append(f"team ({where}): read {tok!r} as {cleaned!r}")
        if cleaned not in ids:
            ids.append(cleaned)
    return ids


def _read_team_file(sub: Submission, root: Path) -> None:
    """The nearest team.txt from the notebook's folder up to, not including, SUBMISSIONS_DIR."""
    root = Path(root).resolve()
    folder = sub.path.resolve().parent
    if folder == root and (root / TEAM_FILE).is_file():
        sub.notes.append(f"{TEAM_FILE} directly in the submissions folder is ignored: it would speak for every "
                         f"student whose files lie there; put each team's files and {TEAM_FILE} in a folder")
    while folder != root and root in folder.parents:
        path = folder / TEAM_FILE
        if path.is_file() and not path.is_symlink():
            where = str(path.relative_to(root))
            try:
                with open(path, "rb") as f:
                    text = f.read(_MAX_TEAM_FILE_BYTES).decode("utf-8-sig", errors="replace")
            except OSError as err:
                sub.notes.append(f"team ({where}): could not read it ({err})")
                return
            sub.team = _team_ids(split_team(text), where, sub.notes)
            sub.team_source = where if sub.team else ""
            if not sub.team:
                sub.notes.append(f"team ({where}): the file names no student id")
            return
        folder = folder.parent


def _read_team_metadata(sub: Submission, lab_meta: dict) -> None:
    """`metadata.labsupport.team` (it counts over a team.txt), then the explicit student_id joins the team."""
    declared = lab_meta.get("team")
    if declared is not None:
        if isinstance(declared, str):
            raw = split_team(declared)
        elif isinstance(declared, list) and all(isinstance(x, str) for x in declared):
            raw = list(declared)   # one id per entry, cleaned as student_id is
        else:
            raw = None
            sub.notes.append('team (metadata): metadata.labsupport.team should be a list of student ids, such as '
                             '["alice", "bob"]; ignored it')
        team = _team_ids(raw, "metadata", sub.notes) if raw is not None else []
        if team:
            if sub.team and sub.team != team:
                sub.notes.append(f"team: the notebook's metadata ({', '.join(team)}) and {sub.team_source} "
                                 f"({', '.join(sub.team)}) differ; the metadata counts")
            sub.team, sub.team_source = team, "metadata"
    own = lab_meta.get("student_id")
    if sub.team and isinstance(own, str) and own.strip() and sub.student_id not in sub.team:
        sub.team.append(sub.student_id)
        sub.notes.append(f"team: added {sub.student_id} (metadata.labsupport.student_id) to the declared team")


def _locate(sub: Submission, pieces: dict[str, tuple[str, ...]]) -> None:
    by_meta: dict[str, list[int]] = {}
    names: dict[int, tuple[list[str], str]] = {}
    for idx, cell in enumerate(sub.nb.cells):
        if cell.cell_type != "code":
            continue
        names[idx] = _top_level_names(_python_source(cell.source))
        piece = cell.metadata.get("labsupport", {}).get("piece") if isinstance(cell.metadata.get("labsupport"), dict) else None
        if piece in pieces:
            by_meta.setdefault(piece, []).append(idx)
    for piece, defines in pieces.items():
        cells, found_by = by_meta.get(piece, []), "metadata"
        if not cells:
            cells = [i for i, (n, _) in names.items() if any(d in n for d in defines)]
            found_by = "name"
            if cells:
                sub.notes.append(f"{piece}: its TODO cell lost its metadata; found it by the name {defines[0]}")
        if not cells:
            continue
        for name in defines:
            holders = [i for i in cells if name in names[i][0]]
            if len(holders) > 1:
                sub.notes.append(f"{piece}: {len(holders)} cells define {name} (cells {holders}); the last one "
                                 "counts, as it would in a kernel run from the top")
        defined = sorted({n for i in cells for n in names[i][0]})
        error = next((names[i][1] for i in reversed(cells) if names[i][1]), "")
        sub.pieces[piece] = PieceSource(piece, cells, found_by, defined, error)


def probe_cells(sub: Submission) -> list[dict]:
    """Every code cell as plain Python for the probe, tagged with its piece (None for other cells)."""
    owner = {i: p.piece for p in sub.pieces.values() for i in p.cells}
    return [{"index": i, "piece": owner.get(i), "source": _python_source(c.source)}
            for i, c in enumerate(sub.nb.cells) if c.cell_type == "code"]


_KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _keep(node: ast.stmt) -> bool:
    if isinstance(node, _KEEP):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        try:
            ast.literal_eval(node.value)
            return True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return False
    return False


def definitions(source: str, filename: str = "<cell>") -> list[ast.stmt]:
    """What the probe runs of a cell: its imports, classes, functions and literal constants.

    Raises SyntaxError (or ValueError, RecursionError) when the cell does not parse.
    """
    return [node for node in ast.parse(source, filename).body if _keep(node)]


def probe_signature(cells: list[dict]) -> str:
    """A hash of exactly what the probe would define (cell numbers and line numbers included).

    Notebooks that differ only in other statements, outputs or markdown give the same probe results.
    """
    h = hashlib.sha256()
    for cell in cells:
        try:
            kept = "".join(ast.dump(n, include_attributes=True) for n in definitions(cell["source"]))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            kept = "unparsable:" + cell["source"]
        if kept:  # a cell without definitions changes nothing the probe does
            h.update(f"{cell['index']}:{cell['piece']}:{kept}".encode())
    return h.hexdigest()
