"""How many one-term slips of the TODO solutions the self-checks catch, name, and name wrongly.

    labsupport slips [--piece ddim_sampler] [--list unnamed|wrong|missed|all] [--json FILE]

Each TODO cell of the source notebooks is changed in one place of a solution block by every slip of
`checks.slipgen` (a wrong table, a dropped root, s/t swapped, t ± 1, a dropped term, a sign, × for
÷, a constant, η left out), then checked as a student's cell would be:
- caught: the check does not pass;
- raised: caught because the slipped code raises; the check then shows the exception and its line,
  which is the feedback, and no mistake is named;
- named: a method that fails on its own (not only through a method it uses) names a known mistake;
- named wrongly: a named mistake does not reproduce the slipped code on a second, independently
  drawn set of case tensors (`cases.reseeded`) and at other timesteps, so it explained the check's
  cases by coincidence.
"""
from __future__ import annotations

import ast
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
import torch

from ..teaching.checks import core
from ..teaching.checks.cases import reseeded
from ..teaching.checks.catalog import _safe, _tells
from ..teaching.checks.report import FAIL
from ..teaching.checks.slipgen import slips
from ..teaching.release import SOLUTION_BEGIN, SOLUTION_END, TODO_TAG

__all__ = ["Outcome", "survey", "summarize", "add_parser"]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
_RESEED = 7919


@dataclass
class Outcome:
    piece: str
    method: str
    kind: str
    change: str
    caught: bool = False
    raised: bool = False   # caught because the slipped code raises (the check shows the exception and its line)
    names: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    detail: str = ""


def _prelude(nb) -> str:
    """The import lines of the notebook's first code cell: what a TODO cell's definitions refer to."""
    first = next(c for c in nb.cells if c.cell_type == "code")
    return "\n".join(line for line in first.source.splitlines() if re.match(r"(import|from)\s", line))


def _solution_lines(source: str) -> list[int]:
    lines, inside = [], False
    for n, line in enumerate(source.splitlines(), 1):
        if SOLUTION_BEGIN in line:
            inside = True
        elif SOLUTION_END in line:
            inside = False
        elif inside:
            lines.append(n)
    return lines


def _functions(tree: ast.Module):
    """(function node, its parent body list, index) of every def, methods included."""
    for body in [tree.body] + [n.body for n in tree.body if isinstance(n, ast.ClassDef)]:
        for k, node in enumerate(body):
            if isinstance(node, ast.FunctionDef):
                yield node, body, k


def todo_cells(notebooks: Path = NOTEBOOKS):
    """(notebook, cell, piece id, defines) of every TODO cell, in notebook order."""
    for path in sorted(notebooks.glob("0*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and TODO_TAG in cell.metadata.get("tags", []):
                meta = cell.metadata["labsupport"]
                yield nb, cell, meta["piece"], tuple(meta["defines"])


def _check(piece: str, ns: dict, defines: tuple[str, ...], method: str):
    """The check as the notebook calls it: a class piece whole, a piece of functions one function at a time."""
    if len(core.PIECES[piece].defines) > 1:
        return ns[method], core.run_piece(piece, ns[method], methods=[method], quiet=True)
    return ns[defines[0]], core.run_piece(piece, ns[defines[0]], quiet=True)


def _moved(case_inputs: dict) -> list[dict]:
    """The case itself and copies at other timesteps (t, and s with it, moved by the same amount)."""
    out = [case_inputs]
    t, s, sched = case_inputs.get("t"), case_inputs.get("s"), case_inputs.get("schedule")
    if type(t) is not int or sched is None:
        return out
    for delta in (-7, 5, 123, -311):
        t2 = t + delta
        s2 = s if not isinstance(s, int) or s < 0 else s + delta
        lowest = s2 + 1 if isinstance(s2, int) else 0
        if lowest <= t2 < sched.T and (not isinstance(s2, int) or -1 <= s2):
            out.append({**case_inputs, "t": t2, **({"s": s2} if isinstance(s, int) else {})})
    return out


def _wrongly_named(piece_id: str, method: str, obj, mistake) -> bool:
    """The mistake fails to reproduce the student's output on freshly drawn tensors and other timesteps."""
    piece = core.PIECES[piece_id]
    spec = piece.method(method)
    if mistake.test is not None:
        return False   # judged from the output alone; nothing to recompute
    with reseeded(_RESEED), core.quiet_sampling():
        for case in spec.cases():
            for inputs in _moved(case.inputs):
                try:
                    out = spec.call(piece.build(obj, inputs), inputs)
                except Exception:
                    continue   # the check skips a case the student's code cannot run, and so does this
                if torch.is_tensor(out) and not bool(torch.isfinite(out).all()):
                    continue   # NaN where the package clamps a root: the same slip, told apart by nothing
                wrong = _safe(lambda: mistake.fn(**inputs))
                # tenfold the check's own widening: long loops amplify rounding differently in two codes
                if wrong is not None and not _safe(lambda: _tells(out, wrong, None, 10 * spec.rtol, 10 * spec.atol)):
                    return True
    return False


def survey(pieces: list[str] | None = None, notebooks: Path = NOTEBOOKS) -> list[Outcome]:
    """Every slip of every selected TODO, checked (see the module docstring)."""
    outcomes, preludes = [], {}
    for nb, cell, piece, defines in todo_cells(notebooks):
        if pieces and piece not in pieces:
            continue
        if id(nb) not in preludes:   # the imports, then each TODO cell of the notebook in turn
            preludes[id(nb)] = {}
            exec(compile(_prelude(nb), "<prelude>", "exec"), preludes[id(nb)])
        prelude = dict(preludes[id(nb)])
        lines = set(_solution_lines(cell.source))
        tree = ast.parse(cell.source)
        for fn, body, k in list(_functions(tree)):
            own = range(fn.lineno, fn.end_lineno + 1)
            span = [n for n in own if n in lines]
            if not span:
                continue
            for slip in slips(fn, range(span[0], span[-1] + 1)):
                body[k] = slip.tree
                source = ast.unparse(tree)
                body[k] = fn
                outcomes.append(_one(piece, defines, fn.name, slip, source, prelude))
        exec(compile(cell.source, f"<{piece}>", "exec"), preludes[id(nb)])  # later cells build on this one
    return outcomes


def _one(piece, defines, method, slip, source, prelude) -> Outcome:
    res = Outcome(piece, method, slip.kind, f"{slip.before}  ->  {slip.after}")
    ns = dict(prelude)
    try:
        exec(compile(source, f"<slip {piece}.{method}>", "exec"), ns)
        obj, report = _check(piece, ns, defines, method)
    except Exception as err:  # a slip that breaks the cell itself is caught at once
        res.caught, res.raised, res.detail = True, True, f"the cell raises {type(err).__name__}"
        return res
    res.caught = not report.passed
    res.raised = res.caught and all(r.status != FAIL for r in report.results)
    own = [r for r in report.results if r.status == FAIL and not r.inherited and r.mistakes]
    for r in own:
        for m in r.mistakes[:1]:
            res.names.append(f"{r.method}:{m.name}")
            if _wrongly_named(piece, r.method, obj, m):
                res.wrong.append(f"{r.method}:{m.name}")
    bad = [r for r in report.results if not r.passed]
    res.detail = "; ".join(f"{r.method} {r.status}: {r.detail.splitlines()[0][:100] if r.detail else ''}" for r in bad)
    return res


def summarize(outcomes: list[Outcome]) -> dict[str, dict[str, int]]:
    """{piece.method: {tried, caught, named, wrong}} and a 'total' row."""
    table: dict[str, Counter] = {}
    for o in outcomes:
        for key in (f"{o.piece}.{o.method}", "total"):
            c = table.setdefault(key, Counter())
            c["tried"] += 1
            c["caught"] += o.caught
            c["raised"] += o.raised
            c["named"] += bool(o.caught and o.names)
            c["wrong"] += bool(o.wrong)
    return {k: dict(v) for k, v in table.items()}


def _table(summary: dict[str, dict[str, int]]) -> str:
    rows = ["| method | slips | caught | of which raise | named | named, of the wrong values | named wrongly |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key, c in sorted(summary.items(), key=lambda kv: kv[0] == "total"):
        caught, raised, named = c.get("caught", 0), c.get("raised", 0), c.get("named", 0)
        rows.append(f"| {key} | {c['tried']} | {caught} ({caught / c['tried']:.0%}) | {raised} | {named} "
                    f"({named / max(caught, 1):.0%}) | {named / max(caught - raised, 1):.0%} | {c.get('wrong', 0)} |")
    return "\n".join(rows)


def _cmd(a) -> int:
    outcomes = survey(a.piece or None)
    summary = summarize(outcomes)
    print(_table(summary))
    show = {"unnamed": lambda o: o.caught and not o.names, "wrong": lambda o: bool(o.wrong),
            "missed": lambda o: not o.caught, "all": lambda o: True, "none": lambda o: False}[a.list]
    for o in filter(show, outcomes):
        print(f"- {o.piece}.{o.method} [{o.kind}] {o.change}\n    names={o.names} wrong={o.wrong} {o.detail[:160]}")
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "outcomes": [asdict(o) for o in outcomes]}, indent=1))
    return 0


def add_parser(subparsers) -> None:
    """Register `labsupport slips` (for the lab's authors: how well the checks name one-term slips)."""
    p = subparsers.add_parser("slips", help="authors: apply one-term slips to each TODO's solution and count what "
                                            "the checks catch and name")
    p.add_argument("--piece", action="append", help="only this piece id (repeatable)")
    p.add_argument("--list", default="none", choices=["none", "unnamed", "wrong", "missed", "all"])
    p.add_argument("--json", help="also write every outcome to this file")
    p.set_defaults(func=_cmd)
