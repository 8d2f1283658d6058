"""`labsupport doctor`: is this machine ready for the lab? One line per check, and what to do when it fails.

    labsupport doctor              Python, torch and the device, the shipped weights, MNIST, JupyterLab, fast mode,
                                   bubblewrap (instructors)
    labsupport doctor --sandbox    also try the grader's bubblewrap sandbox (a few seconds more)

Nothing heavy runs: no model is built and no notebook is executed; the weights are hashed and MNIST's
files are read. The exit status is 1 when a check fails (✗), else 0; a warning (⚠) does not fail.
"""
from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "run_checks", "check_python", "check_torch", "check_device", "check_weights", "check_mnist",
           "check_jupyter", "check_fast_mode", "check_bubblewrap", "report", "add_parser"]

OK, WARN, FAIL = "ok", "warn", "fail"
MARKS = {OK: "✓", WARN: "⚠", FAIL: "✗"}
PLAIN_MARKS = {OK: "ok", WARN: "warning", FAIL: "FAIL"}  # for a terminal that cannot print the symbols
SHIPPED_WEIGHTS = ("unet_mnist", "classifier_mnist", "heldout_stats")  # pretrained.py's files, as in its docstring
MNIST_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
MNIST_TRAIN = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),   # the full 60k split
               "train5k": ("train5k-images-idx3-ubyte", "train5k-labels-idx1-ubyte")}  # or the course's sample
SETUP = "run `make setup` (or `.venv/bin/python -m pip install -e '.[lab,test]'`)"


@dataclass
class Finding:
    status: str   # OK | WARN | FAIL
    what: str     # the thing checked: "Python", "weights unet_mnist", ...
    detail: str   # what was found
    fix: str = ""  # what to do, when status is not OK


def check_python(version: tuple[int, ...] | None = None) -> Finding:
    """Python 3.10 or newer (pyproject's requires-python)."""
    version = tuple(version or sys.version_info[:3])
    text = ".".join(map(str, version))
    if version < (3, 10):
        return Finding(FAIL, "Python", f"{text} at {sys.executable} is too old",
                       "install Python 3.10 or newer and run `make lab` again (PYTHON=python3.11 make lab)")
    return Finding(OK, "Python", f"{text} at {sys.executable}")


def check_torch() -> Finding:
    """torch's version, what it was built for, and the GPUs it sees."""
    import torch
    build = f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        seen = f"{n} CUDA GPU{'s' if n > 1 else ''} ({torch.cuda.get_device_name(0)}{', ...' if n > 1 else ''})"
    else:
        seen = "no CUDA GPU available"
    return Finding(OK, "torch", f"{torch.__version__}, {build}; {seen}")


def check_device() -> Finding:
    """The device `labsupport.get_device()` picks (LABSUPPORT_DEVICE overrides), and that a tensor runs on it."""
    import torch

    from ..device import get_device
    env = os.environ.get("LABSUPPORT_DEVICE")
    try:
        device = get_device()
    except (ValueError, RuntimeError) as err:
        return Finding(FAIL, "device", f"LABSUPPORT_DEVICE={env!r} cannot be used: {err}",
                       "unset LABSUPPORT_DEVICE, or set it to cpu")
    try:
        (torch.ones(2, device=device) + 1).sum().item()
    except Exception as err:  # a GPU this torch build has no kernels for, a broken driver, ...
        return Finding(FAIL, "device", f"a tensor operation on {device} failed ({type(err).__name__}: {err})",
                       "LABSUPPORT_DEVICE=cpu runs everything on the CPU; or install a torch build for this GPU "
                       "(make setup TORCH=...)")
    if env:
        why = f"LABSUPPORT_DEVICE={env}"
    else:
        why = "CUDA is available; LABSUPPORT_DEVICE=cpu forces the CPU" if device.type == "cuda" else "no CUDA GPU here"
    return Finding(OK, "device", f"the notebooks will use {device} ({why})")


def check_weights(folder: str | Path | None = None) -> list[Finding]:
    """Each shipped weights file against the SHA-256 recorded beside it, with the loaders' own verification."""
    from ..models.pretrained import WeightsError, _read_verified
    findings = []
    for stem in SHIPPED_WEIGHTS:
        try:
            meta, _ = _read_verified(stem, folder)
        except WeightsError as err:  # its message says what to do
            findings.append(Finding(FAIL, f"weights {stem}", str(err)))
        except (OSError, ValueError, KeyError) as err:  # metadata that is not JSON, or lacks its hash
            findings.append(Finding(FAIL, f"weights {stem}", f"{stem}.json cannot be read ({type(err).__name__}: "
                                    f"{err})", "reinstall the package (pip install -e .) or restore the file from "
                                    "the repository"))
        else:
            findings.append(Finding(OK, f"weights {stem}", f"{stem}.safetensors matches its recorded SHA-256 "
                                                           f"({meta['sha256'][:12]}...)"))
    return findings


def check_mnist(folder: str | Path | None = None) -> Finding:
    """The MNIST files under $LABSUPPORT_DATA (or the default cache folder), found and readable."""
    from ..tools.data import _find, data_dir, load_mnist
    if folder is None:
        folder = data_dir()
        named = "LABSUPPORT_DATA" if "LABSUPPORT_DATA" in os.environ else "the default: LABSUPPORT_DATA is not set"
        where = f"{folder} ({named})"
    else:
        folder = Path(folder)
        where = str(folder)
    files = (f"{MNIST_TEST[0]}.gz, {MNIST_TEST[1]}.gz and either {MNIST_TRAIN['train'][0]}.gz + "
             f"{MNIST_TRAIN['train'][1]}.gz or {MNIST_TRAIN['train5k'][0]}.gz + {MNIST_TRAIN['train5k'][1]}.gz "
             "(unpacked files work too)")
    fix = (f"set LABSUPPORT_DATA to a folder holding {files}; in the course repository "
           "export LABSUPPORT_DATA=../shared/data/mnist (make lab and make test set it so when that folder exists). "
           f"Online, the notebooks download MNIST into {folder} on first use")
    if not folder.is_dir():
        return Finding(FAIL, "MNIST", f"the folder {where} does not exist", fix)
    missing = [stem for stem in MNIST_TEST if _find(folder, stem) is None]
    if all(any(_find(folder, stem) is None for stem in pair) for pair in MNIST_TRAIN.values()):
        missing.append("a train or train5k pair")
    if missing:
        listed = ", ".join(missing[:-1]) + " and " + missing[-1] if len(missing) > 1 else missing[0]
        return Finding(FAIL, "MNIST", f"{where} lacks {listed}", fix)
    try:
        n_train, n_heldout = (len(load_mnist(split, folder, download=False)[1]) for split in ("train", "heldout"))
    except (ValueError, OSError, EOFError) as err:  # bad magic, truncated, not gzip
        return Finding(FAIL, "MNIST", f"a file in {where} cannot be read ({err})",
                       f"replace the damaged file with a fresh copy ({files})")
    return Finding(OK, "MNIST", f"{where}: {n_train:,} training and {n_heldout:,} held-out digits")


def _version(module: str) -> str | None:
    """The module's version when it imports, else None."""
    try:
        return getattr(importlib.import_module(module), "__version__", "(version unknown)")
    except Exception:  # not installed, or broken: either way the notebooks cannot use it
        return None


def check_jupyter() -> list[Finding]:
    """JupyterLab, and ipywidgets with its JupyterLab side (without it the notebooks' sliders stay blank)."""
    lab, widgets, frontend = _version("jupyterlab"), _version("ipywidgets"), _version("jupyterlab_widgets")
    findings = [Finding(OK, "JupyterLab", lab) if lab else
                Finding(FAIL, "JupyterLab", "not importable in this Python", SETUP)]
    if widgets and frontend:
        findings.append(Finding(OK, "ipywidgets", f"{widgets} (JupyterLab extension jupyterlab_widgets {frontend})"))
    else:
        lacking = " and ".join(name for name, v in (("ipywidgets", widgets), ("jupyterlab_widgets", frontend)) if not v)
        findings.append(Finding(FAIL, "ipywidgets", f"{lacking} not importable in this Python: the sliders will not "
                                                    "show", SETUP))
    return findings


def check_fast_mode() -> Finding:
    """LABSUPPORT_FAST: only "1" turns fast mode on; anything else set is probably a mistake."""
    from .notebook import fast_mode
    value = os.environ.get("LABSUPPORT_FAST")
    if fast_mode():
        return Finding(OK, "fast mode", "on (LABSUPPORT_FAST=1): the notebooks run smaller batches, fewer samples "
                                        "and fewer steps")
    if value not in (None, "", "0"):
        return Finding(WARN, "fast mode", f"off: LABSUPPORT_FAST={value!r} counts as off", "use LABSUPPORT_FAST=1 to "
                       "turn it on, or unset it")
    return Finding(OK, "fast mode", "off (LABSUPPORT_FAST=1 makes every notebook's runs smaller)")


def check_bubblewrap(trial: bool = False) -> Finding:
    """bubblewrap, which the grader's sandbox needs (instructors only); `trial`: also run Python inside it."""
    who = "instructors only: the grader's sandbox"
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return Finding(WARN, "bubblewrap", f"not installed ({who}; students need not care)",
                       "apt-get install bubblewrap before grading")
    try:
        version = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as err:
        return Finding(WARN, "bubblewrap", f"{bwrap} does not run ({err}; {who})", "reinstall bubblewrap")
    if trial:
        from ..grading.sandbox.backend import _bwrap_failure
        failure = _bwrap_failure()
        if failure:
            return Finding(WARN, "bubblewrap", f"{failure} ({who})", "see 'The sandbox' in docs/grading.md")
        return Finding(OK, "bubblewrap", f"{version or bwrap}: Python and torch run inside it ({who})")
    return Finding(OK, "bubblewrap", f"{version or bwrap} ({who}; `labsupport doctor --sandbox` tries it)")


def run_checks(*, sandbox: bool = False) -> list[Finding]:
    """Every check, in the order a student meets them."""
    return [check_python(), check_torch(), check_device(), *check_weights(), check_mnist(), *check_jupyter(),
            check_fast_mode(), check_bubblewrap(trial=sandbox)]


def _marks() -> dict[str, str]:
    try:
        "".join(MARKS.values()).encode(sys.stdout.encoding or "ascii")
    except (UnicodeEncodeError, LookupError):
        return PLAIN_MARKS
    return MARKS


def report(findings: list[Finding]) -> str:
    """One line per finding, then a summary line."""
    marks = _marks()
    lines = [f"{marks[f.status]} {f.what}: {f.detail}" + (f". Fix: {f.fix}" if f.fix else "") for f in findings]
    failed = sum(f.status == FAIL for f in findings)
    warned = sum(f.status == WARN for f in findings)
    if failed:
        lines.append(f"{failed} problem{'s' if failed > 1 else ''} to fix: see the lines marked {marks[FAIL]} above.")
    else:
        lines.append("Ready for the lab." + (f" ({warned} warning{'s' if warned > 1 else ''}, marked {marks[WARN]})"
                                             if warned else ""))
    return "\n".join(lines)


# -- command line (wired into labsupport.cli) ------------------------------------------------------
def _cmd_doctor(args) -> int:
    findings = run_checks(sandbox=args.sandbox)
    print(report(findings))
    return 1 if any(f.status == FAIL for f in findings) else 0


def add_parser(subparsers) -> None:
    """Register the `doctor` subcommand on an argparse subparsers object."""
    d = subparsers.add_parser("doctor", help="check that this machine is ready for the lab, and say what to fix")
    d.add_argument("--sandbox", action="store_true", help="also try the grader's bubblewrap sandbox (instructors)")
    d.set_defaults(func=_cmd_doctor)
