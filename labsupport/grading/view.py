"""The package as a graded method's worker sees it: no reference, no course maths, no grader.

A worker that runs student code for a graded method must not be able to reach that method's
reference, or any package function that computes the same equation. `build_view` writes a copy of
`labsupport` made from an allowlist: modules outside it become stubs whose every name raises
`Unavailable`; inside the partly kept modules, every top-level function and class that the view
does not keep has its body replaced by `raise Unavailable(...)` (names, signatures and constants
stay, so the notebooks' imports and class statements still work). The sandbox mounts the copy over
the real package, so the real source is not on any readable path either.

Views differ where a notebook builds on the lab's own classes: notebook 04's controller inherits
`DDIMSampler` (but not its σ), notebook 06's chunked generation calls it, its cached loop may only
use its tables.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = ["VIEWS", "view_for", "build_view", "views_root", "PACKAGE_DIR"]

PACKAGE_DIR = Path(__file__).resolve().parents[1]

# modules copied whole: data structures, the network, the base class students build on, input checks, toy models
WHOLE = ("__init__", "device", "models/unet", "models/scripted", "maths/validate", "maths/guard", "teaching/notebook",
         "samplers/__init__", "samplers/base", "teaching/checks/cases", "grading/__init__", "grading/codec",
         "grading/wire", "grading/worker", "grading/unavailable", "grading/submission", "grading/sandbox/limits")
# modules kept in part: what every view keeps of them (the rest is stubbed); every equation of
# maths/ is stubbed unless a view keeps it, since those are what the students write
BASE_PARTS: dict[str, dict[str, object]] = {
    "maths/schedule": {"linear_betas": True, "cosine_betas": True, "extract": True, "NoiseSchedule": True},
    "samplers/guidance": {"check_labels": True},
    "samplers/ddim": {"check_timesteps": True},
    "samplers/ddpm": {},
    "tools/generation": {name: True for name in ("NonFiniteError", "check_finite", "sample_generators", "bytes_per_sample",
                                                 "chunk_size_for_memory")},
    "tools/timing": {"synchronize": True}, "tools/speedups": {"OptimizationUnavailable": True},
}
_DDIM_TABLES = {"__init__", "alpha_bar", "create_timestep_schedule"}
# respace([s, t]).posterior_variance[1] is σ²(t → s, η = 1): not where σ² is graded
_SCHEDULE_BUT_RESPACE = {"__init__", "linear", "cosine", "from_name", "float64", "device", "to", "snr", "check_t",
                         "__repr__"}
_DDIM_ALL_BUT_SIGMA = {"__init__", "alpha_bar", "predict_x0_from_eps", "update_coefficients", "step", "ddim_step",
                       "create_timestep_schedule", "sample", "invert"}
# the DDIM update given ε and its σ (whoever computes σ), for views whose skeleton builds on DDIMSampler
_DDIM_UPDATE = {"maths/ddim": {"ddim_coefficients": True, "ddim_step_given_eps": True, "adds_noise": True},
                "maths/predictions": {"predict_x0_from_eps": True, "predict_eps_from_x0": True}}
_ETA_VIEW = {"samplers/ddim": {"DDIMSampler": _DDIM_ALL_BUT_SIGMA, "timestep_schedule": True},
             "maths/schedule": {"NoiseSchedule": _SCHEDULE_BUT_RESPACE, "alpha_bar": True}, **_DDIM_UPDATE}
# guided ε as the samplers' predict_eps computes it (a remote network is never measured, so no timing runs)
_GUIDED_EPS = {"maths/guidance": {"cfg_blend": True},
               "samplers/guidance": {name: True for name in ("guided_eps", "guidance_batching", "_network",
                                                             "_cond_and_uncond", "batch_bucket")}}
# what a view keeps beyond the base, per graded (piece, method); absent methods get the base view
VIEWS: dict[tuple[str, str], dict[str, dict[str, object]]] = {
    ("stochasticity_controller", "compute_stochastic_variance"): _ETA_VIEW,
    ("stochasticity_controller", "analyze_eta_effects"): _ETA_VIEW,
    ("sampling_optimizer", "cached_noise_schedule_sampling"): {
        "samplers/ddim": {"DDIMSampler": _DDIM_TABLES, "timestep_schedule": True},
        "maths/schedule": {"alpha_bar": True}},
    ("sampling_optimizer", "batch_sampling_with_memory_management"): {
        "samplers/ddim": {"DDIMSampler": True, "timestep_schedule": True},
        "maths/schedule": {"alpha_bar": True},
        "maths/ddim": {"ddim_sigma": True, **_DDIM_UPDATE["maths/ddim"]},
        "maths/predictions": _DDIM_UPDATE["maths/predictions"],
        "maths/guidance": {"cfg_blend": True},
        "samplers/guidance": {"guided_eps": True}},
    ("cfg_guidance", "sample_with_guidance"): {"samplers/ddim": {"timestep_schedule": True}},
    # notebook 07's bonus loop: the lab's timesteps and guided ε (the cfg_guidance piece's equation, not
    # this one's); the DPM-Solver++ updates (maths/solvers, samplers/dpm_solver) stay stubbed
    ("few_step_solver", "sample"): {"samplers/ddim": {"timestep_schedule": True}, **_GUIDED_EPS},
}

_STUB_MODULE = '''"""Not available while a graded method runs (labsupport's grading view)."""
from labsupport.grading.unavailable import missing_attribute as _missing


def __getattr__(name):
    return _missing(__name__, name)
'''


def view_for(piece: str, method: str) -> dict[str, dict[str, object]]:
    """The parts kept in the view of one graded method: base, plus that method's extras."""
    parts = {module: dict(kept) for module, kept in BASE_PARTS.items()}
    for module, kept in VIEWS.get((piece, method), {}).items():
        parts.setdefault(module, {}).update(kept)
    return parts


def view_key(parts: dict[str, dict[str, object]]) -> str:
    text = repr(sorted((m, sorted((k, sorted(v) if isinstance(v, set) else v) for k, v in kept.items()))
                       for m, kept in parts.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _raise_body(qualname: str, lineno: int) -> list[ast.stmt]:
    body = ast.parse(f"raise __import__('labsupport.grading.unavailable', fromlist=['_']).Unavailable({qualname!r})").body
    for node in ast.walk(body[0]):
        node.lineno = node.end_lineno = lineno
        node.col_offset = node.end_col_offset = 0
    return body


def _stub_function(node: ast.FunctionDef | ast.AsyncFunctionDef, qualname: str) -> None:
    node.body = _raise_body(qualname, node.lineno)
    node.decorator_list = [d for d in node.decorator_list
                           if isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod", "property")]


def _filter_class(node: ast.ClassDef, module: str, keep: object) -> None:
    """Keep the class statement; stub the methods that `keep` does not name (True keeps them all)."""
    if keep is True:
        return
    kept = keep if isinstance(keep, (set, frozenset)) else set()
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name not in kept:
            _stub_function(item, f"labsupport.{module.replace('/', '.')}.{node.name}.{item.name}")
    if not any(isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == "__init__" for item in node.body):
        init = ast.parse("def __init__(self, *args, **kwargs):\n    pass").body[0]
        _stub_function(init, f"labsupport.{module.replace('/', '.')}.{node.name}")
        node.body.append(init)


def transform(source: str, module: str, keep: dict[str, object]) -> str:
    """`source` with every top-level function and class not in `keep` stubbed."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not keep.get(node.name):
            _stub_function(node, f"labsupport.{module.replace('/', '.')}.{node.name}")
        elif isinstance(node, ast.ClassDef):
            _filter_class(node, module, keep.get(node.name, set()))
    return ast.unparse(ast.fix_missing_locations(tree)) + "\n"


def build_view(parts: dict[str, dict[str, object]], dest: Path) -> Path:
    """Write the view into `dest`/labsupport and return that folder."""
    root = dest / "labsupport"
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        rel = path.relative_to(PACKAGE_DIR)
        if "__pycache__" in rel.parts:
            continue
        module = rel.with_suffix("").as_posix()
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if module in WHOLE:
            text = path.read_text(encoding="utf-8")
        elif module in parts:
            text = transform(path.read_text(encoding="utf-8"), module, parts[module])
        else:
            text = _STUB_MODULE
        target.write_text(text, encoding="utf-8")
    for folder in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        folder.chmod(0o755)
    for file in root.rglob("*.py"):
        file.chmod(0o644)
    return root


@functools.lru_cache(maxsize=1)
def views_root() -> Path:  # called under _LOCK
    """A folder of this grader process for its views (removed with the process's temp files)."""
    path = Path(tempfile.mkdtemp(prefix="labsupport-views-"))
    path.chmod(0o755)
    return path


_BUILT: dict[str, Path] = {}
_LOCK = threading.Lock()   # batch grades several notebooks at once


def view_dir(piece: str, method: str) -> tuple[str, Path]:
    """(key, folder holding `labsupport/`) of the view for one graded method, built once per process."""
    parts = view_for(piece, method)
    key = view_key(parts)
    with _LOCK:
        return key, _build_once(key, parts)


def _build_once(key: str, parts: dict[str, dict[str, object]]) -> Path:
    if key not in _BUILT:
        dest = views_root() / key
        if dest.exists():
            shutil.rmtree(dest)
        build_view(parts, dest)
        _BUILT[key] = dest
    return _BUILT[key]
