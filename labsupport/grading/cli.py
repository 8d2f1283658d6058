"""`labsupport grade SUBMISSIONS_DIR --out DIR`: the command line of the grader.

labsupport/cli.py registers it with `grading.cli.add_parser(subparsers)`; `python -m labsupport.grading
SUBMISSIONS_DIR ...` runs the same command on its own (the Gradescope script uses that).
"""
from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run_grade", "main"]


DESCRIPTION = ("Run every notebook under SUBMISSIONS_DIR in a fresh limited kernel, call its graded pieces on hidden "
               "inputs in a separate process, and write grades.csv, feedback/, summary.json (docs/grading.md).")


def run_grade(args: argparse.Namespace) -> None:
    from .batch import grade_folder
    from .report import write_reports
    from .sandbox import Limits
    from .secret import init_secret, read_secret

    if args.init_secret is not None:
        path = init_secret(args.init_secret or None, force=args.force)
        print(f"wrote a new course secret to {path} (mode 600). Keep it private and keep it all term: the hidden "
              "inputs, and so every grade, depend on it. For Gradescope put it in the autograder zip "
              "(docs/grading.md).")
        return
    if args.submissions is None:
        raise ValueError("give SUBMISSIONS_DIR (or --init-secret to create the course secret)")
    secret = None if args.practice else read_secret(args.secret_file)

    limits = Limits(cell_timeout=args.cell_timeout, total_timeout=args.total_timeout, case_timeout=args.case_timeout,
                    probe_timeout=args.probe_timeout, memory_mb=args.memory_mb, output_mb=args.output_mb)
    run = grade_folder(args.submissions, args.out, secret=secret, practice=args.practice,
                       trust_submissions=args.trust_submissions, jobs=args.jobs, regrade=args.regrade,
                       execute=not args.no_execute, limits=limits, rubric=args.rubric, sandbox_user=args.user)
    paths = write_reports(run, args.out, gradescope=args.gradescope)
    statuses = ", ".join(f"{n} {s}" for s, n in sorted(
        {s: sum(x.status == s for x in run.students) for s in {x.status for x in run.students}}.items()))
    print(f"graded {len(run.students)} students in {run.seconds:.0f} s ({run.graded_now} notebooks run, "
          f"{run.from_cache} from earlier runs): {statuses or 'nothing found'}")
    print(f"wrote {paths['csv']}, {paths['summary']} and {paths['feedback']}/"
          + (f", {paths['gradescope']}/" if "gradescope" in paths else ""))
    if not run.submissions_unchanged:
        print(f"WARNING: files in {args.submissions} changed while grading: {run.changed_files[:5]}")


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the `grade` subcommand on an argparse subparsers object."""
    g = subparsers.add_parser("grade", help="grade a folder of submitted notebooks", description=DESCRIPTION)
    _add_arguments(g)
    return g


def _add_arguments(g: argparse.ArgumentParser) -> None:
    g.add_argument("submissions", metavar="SUBMISSIONS_DIR", type=Path, nargs="?",
                   help="folder of .ipynb files (<id>.ipynb, <id>_anything.ipynb) or of one folder per student")
    s = g.add_argument_group("the course secret (the hidden inputs are drawn from it)")
    s.add_argument("--init-secret", nargs="?", const="", metavar="FILE",
                   help="create a new secret (default file ~/.config/labsupport/grading-secret) and stop")
    s.add_argument("--force", action="store_true", help="with --init-secret: replace an existing secret")
    s.add_argument("--secret-file", type=Path, help="read the secret from FILE (default: $LABSUPPORT_GRADING_SECRET, "
                   "then ~/.config/labsupport/grading-secret)")
    s.add_argument("--practice", action="store_true",
                   help="grade without the secret, on public inputs; every output says PRACTICE (not valid grades)")
    g.add_argument("--trust-submissions", action="store_true",
                   help="grade even when no sandbox can contain student code (bubblewrap missing...); recorded in "
                        "every output")
    g.add_argument("--out", type=Path, default=Path("grades"), help="output folder (default: grades)")
    g.add_argument("--jobs", type=int, default=1, help="notebooks graded at the same time (default: 1)")
    g.add_argument("--regrade", action="store_true", help="run every notebook again, even those graded before")
    g.add_argument("--gradescope", action="store_true", help="also write gradescope/<id>/results.json")
    g.add_argument("--rubric", type=Path, help="rubric TOML file (default: the package's rubric.toml)")
    g.add_argument("--no-execute", action="store_true",
                   help="skip running whole notebooks; only call the graded pieces (faster, no executed copies)")
    t = g.add_argument_group("limits")
    t.add_argument("--cell-timeout", type=float, default=120.0, help="seconds per notebook cell (default: 120)")
    t.add_argument("--total-timeout", type=float, default=900.0, help="seconds per notebook (default: 900)")
    t.add_argument("--case-timeout", type=float, default=60.0, help="seconds per graded call (default: 60)")
    t.add_argument("--probe-timeout", type=float, default=600.0,
                   help="seconds for all graded calls of one notebook (default: 600)")
    t.add_argument("--memory-mb", type=int, default=6144, help="address-space limit per process (default: 6144)")
    t.add_argument("--output-mb", type=float, default=20.0, help="output a notebook may print (default: 20)")
    t.add_argument("--user", default="nobody", help="without bubblewrap, as root: run student code as this user "
                   "(default: nobody)")
    g.set_defaults(func=run_grade)


def main(argv: list[str] | None = None) -> int:
    """`python -m labsupport.grading SUBMISSIONS_DIR ...`"""
    parser = argparse.ArgumentParser(prog="python -m labsupport.grading", description=DESCRIPTION)
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        run_grade(args)
    except (ValueError, FileNotFoundError, FileExistsError, RuntimeError) as err:
        print(f"labsupport grade: error: {err}")
        return 2
    return 0
