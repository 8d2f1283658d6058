"""The grader against hostile students: one executed batch of attack notebooks (tests/attack_cases.py).

Every attack must gain nothing: its items score what the untouched student edition scores, no
process it started outlives the batch, no file it wrote appears outside its sandbox, the
submissions folder is byte-identical, and the course secret appears in nothing the grader writes.
An honest submission in the same batch gets every automatic point, so these tests can fail.

The batch (about ten notebooks: mini notebooks 01 and 02, imports and TODO cells only, executed in
fast mode) runs once per module, under bubblewrap.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import inspect
import json
import os
import secrets
import shutil
import signal
import sys
import time
from pathlib import Path

import nbformat
import pytest

import labsupport
from attack_cases import ATTACKED, STUDENTS, AttackConfig, attack_notebooks
from labsupport.grading.batch import grade_folder
from labsupport.grading.report import write_reports
from labsupport.grading.rubric import load_rubric
from labsupport.grading.sandbox import Limits

pytestmark = pytest.mark.skipif(shutil.which("bwrap") is None,
                                reason="bubblewrap (bwrap) is not installed: the attack batch needs the sandbox "
                                       "that contains it (apt-get install bubblewrap)")

RUBRIC = load_rubric()
REAL_PKG = Path(labsupport.__file__).resolve().parent
SECRET_ENV = "LABSUPPORT_GRADING_SECRET"
FORGED_NAMES = ("grades.csv", "summary.json")
LIMITS = Limits(cell_timeout=90, total_timeout=240, case_timeout=60, probe_timeout=400, output_mb=5)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def items_of(student) -> dict[tuple[str, str], object]:
    return {(r.outcome.piece, r.outcome.method): r for r in student.items if r.outcome is not None}


def survivors(marker: str) -> dict[int, str]:
    """pid -> command line of every process whose command line holds `marker`."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def _holds(path: Path, needle: bytes, limit: int = 2 ** 22) -> bool:
    try:
        with open(path, "rb") as f:
            return needle in f.read(limit)
    except OSError:
        return False


def forged_in(folder: Path, mark: str, *, recursive: bool) -> list[Path]:
    """Files in `folder` that the attack wrote: named with the marker, or holding it."""
    if not folder.is_dir():
        return []
    try:
        paths = folder.rglob("*") if recursive else folder.iterdir()
        paths = [p for p in paths if p.is_file() and not p.is_symlink()]
    except OSError:
        return []
    return [p for p in paths
            if mark in p.name or ((recursive or p.name in FORGED_NAMES) and _holds(p, mark.encode()))]


def host_folders(extra: list[Path]) -> list[Path]:
    """Folders outside the sandbox where a forged file must not appear: the shared temporary folders,
    HOME, the root, this process's working folder and its parents, the folders named in this
    process's arguments and environment (what a worker would find in /proc if it could see us)."""
    folders = [Path(p) for p in ("/", "/tmp", "/var/tmp", "/dev/shm")] + [Path.home(), Path.cwd(), *Path.cwd().parents]
    words = list(sys.argv) + [w for v in os.environ.values() for w in v.replace(":", " ").split()]
    for word in words:
        if word.startswith("/"):
            p = Path(word)
            folders.append(p if p.is_dir() else p.parent)
    return list(dict.fromkeys(folders + extra))


@pytest.fixture(scope="module")
def attack(tmp_path_factory):
    if "secret" not in inspect.signature(grade_folder).parameters:
        pytest.fail("grade_folder has no `secret` parameter: this grader predates the sandboxed design, and the "
                    "attack notebooks must never run unsandboxed")
    root = tmp_path_factory.mktemp("attack")
    subs, out, home = root / "subs", root / "out", root / "instructor-home"
    for folder in (subs, out, home / ".config" / "labsupport"):
        folder.mkdir(parents=True)
    token = secrets.token_hex(6)
    secret = f"attack-test-secret-{secrets.token_hex(8)}"   # random: no file could hold it by chance
    mark = f"FORGED-{token}"
    sleep_base = f"{3000 + os.getpid() % 600}.{int(token, 16) % 10 ** 6:06d}"
    (home / ".config" / "labsupport" / "grading-secret").write_text(secret + "\n")
    files = {n: str(subs / f"{n}.ipynb") for n in STUDENTS}
    cfg = AttackConfig(real_pkg=str(REAL_PKG), subs=str(subs), out=str(out), home=str(home), own="",
                       other=files["honest"], mark_reversed=mark[::-1], sleep_base=sleep_base)
    for name, nb in attack_notebooks(cfg, files).items():
        nbformat.write(nb, files[name])
    before = digest(subs)
    watched = host_folders([home, root, tmp_path_factory.getbasetemp()])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LABSUPPORT_FAST", "1")
        mp.setenv("HOME", str(home))            # the instructor's HOME, with the secret file in it
        mp.setenv(SECRET_ENV, secret)           # and in the grader's environment
        start = time.monotonic()
        run = grade_folder(subs, out, secret=secret, jobs=2, execute=True, limits=LIMITS, log=lambda m: None)
        seconds = time.monotonic() - start
        alive = survivors(sleep_base)
        in_out_before_reports = forged_in(out, mark, recursive=True)
        write_reports(run, out)
    outside = sorted({p for folder in watched for p in forged_in(folder, mark, recursive=folder in (root, home))})
    print(f"\nattack batch: {len(STUDENTS)} notebooks graded in {seconds:.0f} s", file=sys.stderr)
    yield {"run": run, "subs": subs, "out": out, "home": home, "before": before, "after": digest(subs),
           "secret": secret, "mark": mark, "sleep_base": sleep_base, "alive": alive, "seconds": seconds,
           "in_out_before_reports": in_out_before_reports, "outside": outside,
           "students": {s.student_id: s for s in run.students}}
    # clean up after a sandbox that leaked: the processes by id, the files the attack created
    for pid in survivors(sleep_base):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    for path in outside:
        try:
            path.unlink()
        except OSError:
            pass


def assert_contained(attack) -> None:
    """What every attack must leave intact."""
    assert attack["run"].backend == "bwrap"
    assert attack["alive"] == {}, f"processes outlived the batch: {attack['alive']}"
    assert attack["outside"] == [], f"files written outside the sandbox: {attack['outside']}"
    assert attack["after"] == attack["before"] and attack["run"].submissions_unchanged, (
        sorted(set(attack["after"].items()) ^ set(attack["before"].items())))


def gained(attack, name: str) -> dict[tuple[str, str], tuple[float, str]]:
    """(piece, method) -> (points, status) of the items `name` attacks that score above the untouched edition."""
    mine, base = items_of(attack["students"][name]), items_of(attack["students"]["untouched"])
    out = {}
    for key in ATTACKED[name]:
        baseline = base[key].points if key in base else 0.0
        if mine[key].points > baseline:
            out[key] = (mine[key].points, mine[key].status)
    return out


def test_attack_notebooks_parse(tmp_path):
    files = {n: str(tmp_path / f"{n}.ipynb") for n in STUDENTS}
    cfg = AttackConfig(real_pkg=str(REAL_PKG), subs=str(tmp_path), out=str(tmp_path / "out"), home=str(tmp_path),
                       own="", other=files["honest"], mark_reversed="x-DEGROF", sleep_base="3000.000001")
    for name, nb in attack_notebooks(cfg, files).items():
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                ast.parse(cell.source)
        text = json.dumps(nb)
        assert "FORGED-x" not in text, name   # only the reversed marker is in a notebook


def test_honest_submission_gets_every_automatic_point(attack):
    s = attack["students"]["honest"]
    items = {k: r for k, r in items_of(s).items() if k[0] in RUBRIC.notebooks["02"]}
    assert items and all(r.status == "pass" and r.points == r.max_points for r in items.values()), {
        k: (r.status, r.outcome.detail) for k, r in items.items() if r.status != "pass"}
    assert not any(f for r in items.values() for f in r.flags)
    assert s.auto_total == sum(r.max_points for r in items.values())
    assert_contained(attack)


def test_untouched_student_edition_scores_zero(attack):
    s = attack["students"]["untouched"]
    assert s.status == "not attempted" and s.auto_total == 0


def test_patching_the_worker_gains_nothing(attack):
    assert gained(attack, "patcher") == {}
    items = items_of(attack["students"]["patcher"])
    assert all(items[k].status != "pass" for k in ATTACKED["patcher"])
    assert_contained(attack)


def test_unwrapping_the_reference_gains_nothing(attack):
    assert gained(attack, "unwrapper") == {}
    assert_contained(attack)


def test_answers_precomputed_from_the_shipped_seed_gain_nothing(attack):
    assert gained(attack, "precompute") == {}
    assert_contained(attack)


def test_ignoring_the_generator_loses_ddpm_step_with_a_named_mistake(attack):
    items = items_of(attack["students"]["generator"])
    step = items[("ddpm_sampler", "ddpm_step")]
    assert step.points == 0 and step.status == "fail", (step.status, step.outcome.detail)
    text = " ".join([step.outcome.detail or ""] + [str(m) for m in step.outcome.mistakes])
    assert "generator" in text, text
    for method in ("compute_posterior_mean", "compute_posterior_variance"):   # the rest is right and scores
        assert items[("ddpm_sampler", method)].status == "pass", method
    assert_contained(attack)


def kernel_output(attack, name: str) -> str:
    nb = nbformat.read(attack["out"] / "executed" / name / f"{name}.ipynb", as_version=4)
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))


def test_processes_do_not_outlive_the_grader(attack):
    # the attacks did run: three escapes started by each of the kernel's cell, the kernel's and the worker's class body
    printed = kernel_output(attack, "escaper")
    lines = {line.split(":")[0]: line for line in printed.splitlines() if line.startswith("kernel ")}
    assert " spawn=3" in lines.get("kernel cell", ""), printed[:300]
    assert " spawn=3" in lines.get("kernel class body", ""), printed[:300]
    worker = items_of(attack["students"]["escaper"])[("forward_process", "add_noise")].outcome.detail
    assert "class body: " in worker and " spawn=3" in worker, worker[:300]
    assert attack["alive"] == {}
    assert survivors(attack["sleep_base"]) == {}
    assert_contained(attack)


def test_forged_files_stay_inside_the_sandbox(attack):
    out, mark = attack["out"], attack["mark"]
    assert attack["in_out_before_reports"] == [], "the attack wrote into the output folder"
    assert forged_in(out, mark, recursive=True) == []
    assert attack["outside"] == []
    rows = {r["student_id"]: r for r in csv.DictReader(open(out / "grades.csv", newline=""))}
    assert set(rows) == set(attack["students"]) and float(rows["escaper"]["auto_total"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["students"] == len(attack["students"]) and "forged_by" not in summary
    assert gained(attack, "escaper") == {}
    assert (out / "executed" / "escaper").is_dir()   # the kernel did run the attacks
    assert_contained(attack)


def test_the_secret_appears_in_nothing_the_grader_writes(attack):
    needle = attack["secret"].encode()
    # the leak channels reach the output: what the kernel printed, what a graded method raised or returned
    assert "ENV PATH=" in kernel_output(attack, "escaper")
    assert "leaked: ENV" in items_of(attack["students"]["escaper"])[("forward_process", "add_noise")].outcome.detail
    leaked = [p for p in attack["out"].rglob("*") if p.is_file() and _holds(p, needle, limit=2 ** 30)]
    assert leaked == [], f"the course secret is in {leaked}"
    assert attack["run"].secret_id and attack["run"].secret_id not in attack["secret"]
    assert_contained(attack)


def test_self_editing_leaves_the_submissions_byte_identical(attack):
    assert attack["after"] == attack["before"]
    assert attack["run"].submissions_unchanged and not attack["run"].changed_files
    assert_contained(attack)


def test_pasted_reference_code_is_flagged_and_scores_zero(attack):
    items = items_of(attack["students"]["paster"])
    pasted = items[("ddpm_sampler", "sample")]
    assert pasted.points == 0
    assert any("matches labsupport's reference implementation" in f for f in pasted.flags), pasted.flags
    assert items[("ddpm_sampler", "compute_posterior_variance")].status == "pass"   # the student's own code
    assert gained(attack, "paster") == {}
    assert_contained(attack)


def test_renamed_copies_between_students_are_listed(attack):
    ids = set(attack["students"])

    def students_of(pair: dict) -> set[str]:
        found = set()
        for value in pair.values():
            for v in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(v, str) and v in ids:
                    found.add(v)
        return found

    pairs = [students_of(p) for p in attack["run"].similar]
    renamed = [p for p in attack["run"].similar if students_of(p) == {"alice2", "bob2"}
               and p.get("method", "compute_posterior_mean") in ("compute_posterior_mean", "ddpm_step")]
    assert renamed, attack["run"].similar   # the methods bob2 renamed, not only those left as they were
    assert not any("untouched" in p for p in pairs)   # the untouched skeleton is nobody's code
    assert_contained(attack)
