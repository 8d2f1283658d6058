"""Where student code runs: bubblewrap when it works here, else under a subreaper, else with limits only.

`choose_backend` picks one per process; `Backend.command` turns a command (a kernel, the probe) into
the command line that runs it contained, always behind the rlimits of `limits.py`:

* "bwrap" (bubblewrap, used when a trial `import torch` inside it succeeds): new user, PID, network,
  IPC, UTS and cgroup namespaces. Only the system folders (/usr, /etc, /bin, /lib...), the
  interpreter's folders and the labsupport package (or a view standing in for it) are visible, all
  read-only; the submission's folder is the one writable place that outlives the sandbox (/tmp and
  /dev/shm are small private tmpfs). No network at all, so a kernel talks over ZMQ ipc sockets in
  that folder. Every process it starts, `setsid` and double-forked ones included, ends when the
  first one ends or the grader dies (PID namespace, --die-with-parent). Works as root (the sandbox
  user is 65534 in a user namespace, with no capabilities) and as an ordinary user.
* "subreaper" (`reaper.py`): the command runs as the unprivileged user (when the grader is root) under
  a child subreaper that kills every leftover descendant. Files are protected by that user's
  permissions only; the network and other users' processes of the same user are not.
* "none": the limits only.

`containment_problems` checks by a trial run that student code cannot touch the folders the grader
must protect; the grader refuses to grade when it finds problems (unless told to trust them).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import cgroup
from .limits import LIMITS_SCRIPT, MB, Limits, owner_of, sandbox_env

__all__ = ["Backend", "choose_backend", "containment_problems", "PACKAGE_DIR"]

PACKAGE_DIR = LIMITS_SCRIPT.parents[2]                 # the real labsupport package, found without importing it
REAPER_SCRIPT = LIMITS_SCRIPT.with_name("reaper.py")
LIMITS_IN_PACKAGE = LIMITS_SCRIPT.relative_to(PACKAGE_DIR)   # where a package view must hold limits.py too
SANDBOX_ID = "65534"        # the user and group inside bubblewrap's user namespace ("nobody")
SITE_DIRS = ("site-packages", "dist-packages")
FIX = ("install bubblewrap (`apt-get install bubblewrap`) so student code runs in a sandbox, "
       "or grade in a container or under an account of its own")

NOTES = {
    "bwrap": ("student code ran in bubblewrap: no network, read-only system and package folders, only its own "
              "folder writable, nothing else of the machine visible, and every process it started ended with it"),
    "subreaper": ("student code ran as the unprivileged user {user!r} under a subreaper that ended every process "
                  "it started; it could read what that user may read, and use the network"),
    "subreaper-self": ("student code ran as {who} under a subreaper that ended every process it started; nothing "
                       "kept it from that user's files or the network"),
    "none": "student code ran as {who} with resource limits only: nothing kept it from that user's files or the network",
}


@dataclass(frozen=True)
class Backend:
    """How student code is contained. `user`: the unprivileged user of "subreaper" when the grader is
    root (None otherwise). `note`: one sentence for summary.json and feedback. `problem`: what
    `choose_backend` found missing on the way ('' when nothing)."""
    name: str                     # "bwrap" | "subreaper" | "none"
    user: str | None = None
    note: str = ""
    problem: str = ""

    def command(self, cmd: list[str], workdir: Path, limits: Limits, cpu_seconds: float, *,
                package_view: Path | None = None, readonly: tuple[Path, ...] = ()) -> list[str]:
        """`cmd` as it must be started (with cwd=`workdir` and `sandbox_env(workdir)`) to run contained.
        The rlimits wrapper runs first and sets PYTHONPATH (the package's folder and any site-packages
        this interpreter found outside its prefixes), whatever the caller's environment says.

        `package_view`: a folder laid out like the labsupport package (with its own
        `grading/sandbox/limits.py`) that stands in for it: under bwrap it is mounted over the real
        package, which is then unreadable; otherwise it only comes first on PYTHONPATH, so it must be
        named `labsupport`.
        `readonly`: grader-owned folders the command may read (bound read-only under bwrap).
        """
        workdir = Path(workdir).resolve()
        view = Path(package_view).resolve() if package_view is not None else None
        if view is not None and not (view / LIMITS_IN_PACKAGE).is_file():
            raise ValueError(f"the package view {view} lacks {LIMITS_IN_PACKAGE}, which the sandbox runs first")
        spec = limits.rlimits(cpu_seconds)
        spec["user"] = self.user if self.name == "subreaper" else None
        if self.name == "bwrap":
            spec["pythonpath"] = _pythonpath(PACKAGE_DIR.parent)   # where the view is mounted, when there is one
            extra = [a for p in readonly for a in ("--ro-bind", str(Path(p).resolve()), str(Path(p).resolve()))]
            args = _bwrap_args(workdir, view, limits)
            return [*cgroup.join_prefix(limits.memory_mb), *args[:-1], *extra, args[-1], sys.executable, "-E", "-S", str(PACKAGE_DIR / LIMITS_IN_PACKAGE),
                    json.dumps(spec), *cmd]
        if view is not None and view.name != PACKAGE_DIR.name:
            raise ValueError(f"without bubblewrap a package view must be a folder named {PACKAGE_DIR.name!r}, got {view}")
        spec["pythonpath"] = _pythonpath((view or PACKAGE_DIR).parent)
        script = REAPER_SCRIPT if self.name == "subreaper" else LIMITS_SCRIPT
        return [*cgroup.join_prefix(limits.memory_mb), sys.executable, "-E", "-S", str(script), json.dumps(spec), *cmd]


# ---- bubblewrap -----------------------------------------------------------------------------------

def _repository() -> Path | None:
    """The folder holding the real package when it is a source checkout (notebooks with solutions,
    tests, .git): never visible in the sandbox. None for an installed package."""
    return None if PACKAGE_DIR.parent.name in SITE_DIRS else PACKAGE_DIR.parent


def _inside(path: Path, folder: Path) -> bool:
    return path.is_relative_to(folder)   # equal paths included


@functools.lru_cache(maxsize=None)
def _python_roots() -> tuple[Path, ...]:
    """The interpreter's folders and the site-packages folders on sys.path outside /usr, outermost
    only. Not other sys.path entries: the current folder, a script's folder or tests/ under pytest
    may hold anything (the submissions, the repository)."""
    repo = _repository()
    needed = [Path(sys.base_prefix), Path(sys.prefix), Path(os.path.realpath(sys.executable)).parent]
    found: list[Path] = []
    for n, path in enumerate(needed + [Path(p) for p in sys.path if os.path.isabs(p)]):
        for p in dict.fromkeys([path.absolute(), path.resolve()]):
            if not p.is_dir() or _inside(p, Path("/usr")) or _inside(p, Path("/etc")):
                continue
            if n >= len(needed) and p.name not in SITE_DIRS:
                continue
            found.append(p)
    found = list(dict.fromkeys(found))

    def redundant(p: Path) -> bool:   # inside another root, and not hidden from it by the repository's cover
        return any(p != q and _inside(p, q) and not (repo is not None and _inside(repo, q) and _inside(p, repo))
                   for q in found)
    return tuple(p for p in found if not redundant(p))


@functools.lru_cache(maxsize=None)
def _extra_site_dirs() -> tuple[Path, ...]:
    """site-packages folders this interpreter found outside its own prefixes (PYTHONPATH, the user's
    site under HOME): the sandboxed interpreter, with another HOME and environment, finds them only
    on PYTHONPATH."""
    prefixes = [Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve()]
    found = [Path(p).resolve() for p in sys.path if os.path.isabs(p) and os.path.isdir(p) and Path(p).name in SITE_DIRS]
    return tuple(dict.fromkeys(p for p in found if not any(_inside(p, pre) for pre in prefixes)))


def _pythonpath(package_parent: Path) -> str:
    return os.pathsep.join(map(str, [package_parent, *_extra_site_dirs()]))


def _repo_covered() -> bool:
    """Whether a bound folder holds the repository, which must then be hidden under an empty tmpfs."""
    repo = _repository()
    if repo is None:
        return False
    tops = [Path("/usr"), Path("/etc")] + [r for r in _python_roots() if not _inside(r, repo)]
    return any(_inside(repo, top) for top in tops)


def _etc() -> list[str]:
    """/etc, minus what other users may not read (shadow, private keys): as root, the sandbox's user
    maps to root and would own those files. Listed afresh for every sandbox (some 20 ms), since a
    covered file that has gone since (a lock file) would stop bwrap."""
    args = ["--ro-bind", "/etc", "/etc"]
    for folder, dirs, files in os.walk("/etc"):
        for name in list(dirs):
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode) and mode & 0o005 != 0o005:
                args += ["--tmpfs", path, "--remount-ro", path]
                dirs.remove(name)
        for name in files:
            path = os.path.join(folder, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISREG(mode) and not mode & 0o004:
                args += ["--ro-bind", "/dev/null", path]   # on a nodev mount: opening it fails
    return args


@functools.lru_cache(maxsize=None)
def _system_binds() -> tuple[str, ...]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    repo = _repository()
    inside = [r for r in _python_roots() if repo is not None and _inside(r, repo)]   # e.g. the repository's .venv
    for root in _python_roots():
        if root not in inside:
            args += ["--ro-bind", str(root), str(root)]
    if _repo_covered():
        args += ["--tmpfs", str(repo)]
    for root in inside:
        args += ["--ro-bind", str(root), str(root)]
    return tuple(args)


@functools.lru_cache(maxsize=None)
def _bwrap_options() -> tuple[str, frozenset[str]]:
    """The bwrap program and the options it knows (--disable-userns and --size are recent: 0.8, 0.7)."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError("bubblewrap is not installed: apt-get install bubblewrap")
    try:
        text = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        text = ""
    return bwrap, frozenset(word for word in text.split() if word.startswith("--"))


def _data_binds() -> list[str]:
    """MNIST, read-only, for the notebooks that load it (the folder LABSUPPORT_DATA names)."""
    data = os.environ.get("LABSUPPORT_DATA")
    if not data or not Path(data).is_dir():
        return []
    real = str(Path(data).resolve())
    return ["--ro-bind", real, real] + (["--symlink", real, str(Path(data).absolute())]
                                        if str(Path(data).absolute()) != real else [])


def _bwrap_args(workdir: Path, view: Path | None, limits: Limits) -> list[str]:
    bwrap, known = _bwrap_options()
    size = ["--size", str(max(64, limits.file_mb) * MB)] if "--size" in known else []
    args = [bwrap, "--unshare-all", "--unshare-user", "--uid", SANDBOX_ID, "--gid", SANDBOX_ID,
            "--die-with-parent", "--new-session", "--cap-drop", "ALL",
            # a kernel whose parent is PID 1 (bwrap's init) thinks the grader died, when told a parent pid
            "--unsetenv", "JPY_PARENT_PID",
            # /proc read-only: as root the sandbox's user is root outside, which may write global sysctls
            *size, "--tmpfs", "/tmp", "--proc", "/proc", "--remount-ro", "/proc",
            "--dev", "/dev", *size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev",
            *_etc(), *_system_binds(),
            "--bind", str(workdir), str(workdir),
            "--ro-bind", str(view or PACKAGE_DIR), str(PACKAGE_DIR), *_data_binds()]
    if _repo_covered():
        args += ["--remount-ro", str(_repository())]
    if "--disable-userns" in known:   # no nested user namespace, where the sandbox's root would regain capabilities
        args.append("--disable-userns")
    return args + ["--remount-ro", "/", "--chdir", str(workdir), "--"]


# ---- choosing -------------------------------------------------------------------------------------

def _trial(backend: Backend, cmd: list[str], owner: tuple[int, int] | None = None,
           timeout: float = 180) -> subprocess.CompletedProcess:
    """Run `cmd` through `backend` in a fresh folder; a launch that fails or hangs gives rc 126/124."""
    with tempfile.TemporaryDirectory(prefix="labsupport-sandbox-trial-") as tmp:
        if owner:
            os.chown(tmp, *owner)
        try:
            full = backend.command(cmd, Path(tmp), Limits(), timeout)
            return subprocess.run(full, cwd=tmp, env=sandbox_env(Path(tmp)), stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(cmd, 124, "", f"the trial run took longer than {timeout:g} s")
        except (OSError, RuntimeError) as err:
            return subprocess.CompletedProcess(cmd, 126, "", str(err))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][-300:] if lines else "no message"


@functools.lru_cache(maxsize=None)
def _bwrap_failure() -> str:
    """'' when Python can import torch inside bubblewrap here, else why not (tried once per process)."""
    if shutil.which("bwrap") is None:
        return "bubblewrap is not installed"
    run = _trial(Backend("bwrap"), [sys.executable, "-c", "import torch"])
    return "" if run.returncode == 0 else f"bubblewrap is installed but cannot run Python here ({_last_line(run.stderr)})"


def _closed_folder() -> Path | None:
    """The first folder on the way to the interpreter or the package that others cannot enter."""
    for target in (Path(os.path.realpath(sys.executable)), Path(sys.prefix), PACKAGE_DIR):
        for folder in reversed(target.parents):
            try:
                if not os.stat(folder).st_mode & 0o001:
                    return folder
            except OSError:
                return folder
    return None


def _cannot_run(user: str, stderr: str) -> str:
    closed = _closed_folder()
    why = f"{closed} is closed to other users" if closed else _last_line(stderr)
    return (f"user {user!r} cannot run {sys.executable} or import labsupport ({why}); install the package where the "
            "sandbox user can read it (a system-wide Python), install bubblewrap (`apt-get install bubblewrap`), "
            "or run the grader in a container")


def _who() -> str:
    return "root" if os.geteuid() == 0 else f"your own user ({pwd.getpwuid(os.geteuid()).pw_name})"


def _problem(why_not_bwrap: str, reason: str = "", fix: str = FIX) -> str:
    """'what is missing; how to fix it' as one sentence."""
    return "; ".join(filter(None, [" and ".join(filter(None, [why_not_bwrap, reason])), fix]))


def _subreaper(preferred_user: str, why_not_bwrap: str) -> Backend:
    if os.geteuid() != 0:
        return Backend("subreaper", None, NOTES["subreaper-self"].format(who=_who()),
                       _problem(why_not_bwrap, "the grader is not root, so there is no user to switch to"))
    try:
        owner = owner_of(preferred_user)
    except KeyError:
        return Backend("subreaper", None, NOTES["subreaper-self"].format(who="root"),
                       _problem(why_not_bwrap, f"there is no user {preferred_user!r} to switch to"))
    run = _trial(Backend("subreaper", preferred_user), [sys.executable, "-c", "import torch, labsupport"], owner)
    if run.returncode == 0:
        return Backend("subreaper", preferred_user, NOTES["subreaper"].format(user=preferred_user), why_not_bwrap)
    reason, fix = _cannot_run(preferred_user, run.stderr).split("; ", 1)
    return Backend("subreaper", None, NOTES["subreaper-self"].format(who="root"), _problem(why_not_bwrap, reason, fix))


@functools.lru_cache(maxsize=None)
def choose_backend(preferred_user: str = "nobody", *, force: str | None = None) -> Backend:
    """bwrap when a trial run works here, else the subreaper (as `preferred_user` when root and that
    user can run this Python), else "none". Tried once per process; `force` picks one (tests), and
    raises RuntimeError when the forced one cannot run here."""
    if force not in (None, "bwrap", "subreaper", "none"):
        raise ValueError(f"force must be 'bwrap', 'subreaper' or 'none', got {force!r}")
    why_not_bwrap = ""
    if force in (None, "bwrap"):
        why_not_bwrap = _bwrap_failure()
        if not why_not_bwrap:
            return Backend("bwrap", None, NOTES["bwrap"])
        if force == "bwrap":
            raise RuntimeError(f"the bwrap backend cannot run here: {why_not_bwrap}")
    if force in (None, "subreaper"):
        if sys.platform.startswith("linux"):
            return _subreaper(preferred_user, why_not_bwrap)
        if force == "subreaper":
            raise RuntimeError(f"the subreaper backend needs Linux (prctl), this is {sys.platform}")
    return Backend("none", None, NOTES["none"].format(who=_who()), _problem(why_not_bwrap or "no sandbox was requested"))


# ---- checking -------------------------------------------------------------------------------------

# run inside the sandbox: what it sees of each protected path, and whether it could write there
_PROBE = r"""
import hashlib, json, os, sys
token, out, here = sys.argv[1], {}, os.getcwd()
for path in sys.argv[2:]:
    seen = out[path] = {"exists": os.path.lexists(path)}
    try:
        if os.path.isdir(path):   # the trial's own folder is expected where it lies
            mine = os.path.relpath(here, path).split(os.sep)[0] if here.startswith(path.rstrip("/") + "/") else None
            seen["entries"] = sorted(set(os.listdir(path)) - {mine})[:1000]
        else:
            with open(path, "rb") as f:
                seen["sha"] = hashlib.sha256(f.read(1 << 16)).hexdigest()
    except OSError:
        pass
    try:
        if os.path.isdir(path):
            os.close(os.open(os.path.join(path, token), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        else:
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))   # nothing is written
        seen["wrote"] = True
    except OSError:
        pass
print(json.dumps(out))
"""


def _host_view(path: Path) -> tuple[set[str], str]:
    if path.is_dir():
        return set(os.listdir(path)), ""
    with open(path, "rb") as f:
        return set(), hashlib.sha256(f.read(1 << 16)).hexdigest()


def _mount_points(path: Path) -> set[str]:
    """Names inside `path` that bubblewrap shows on purpose: the package and the roots bound below it."""
    bound = [PACKAGE_DIR, *_python_roots()]
    return {b.relative_to(path).parts[0] for b in bound if b != path and _inside(b, path)}


def containment_problems(backend: Backend, *, protect: list[Path]) -> list[str]:
    """Sentences naming what student code could reach among `protect` (folders or files that exist:
    the submissions, the output folder, the package, the course secret) and how to fix each; [] when
    a trial run in the sandbox could write none of them and, under bwrap, see none of them (the
    package, visible read-only on purpose, and the repository holding it are checked too)."""
    paths = list(dict.fromkeys(Path(p).resolve() for p in protect if Path(p).exists()))
    if backend.name == "none" or (backend.name == "subreaper" and backend.user is None):
        listed = ", ".join(map(str, paths)) or "your files"
        return [f"student code would run as {_who()} and could write {listed}: {backend.problem or FIX}"]
    repo = _repository()
    if backend.name == "bwrap" and repo is not None and repo not in paths:
        paths.append(repo)
    token = f".labsupport-containment-{secrets.token_hex(8)}"
    run = _trial(backend, [sys.executable, "-c", _PROBE, token, *map(str, paths)], owner_of(backend.user), timeout=120)
    written = set()
    for path in paths:   # remove what the trial may have left, whatever it printed
        if path.is_dir() and (path / token).exists():
            (path / token).unlink()
            written.add(path)
    try:
        seen = json.loads(run.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        seen = None
    if run.returncode != 0 or not isinstance(seen, dict):
        if backend.name == "subreaper":
            return [_cannot_run(backend.user, run.stderr)]
        return [f"a trial run in the {backend.name} sandbox failed ({_last_line(run.stderr)}): {FIX}"]
    problems = []
    for path in paths:
        what = seen.get(str(path), {})
        # under bwrap a folder may be a private tmpfs (/tmp): only a file that reached the host counts
        if path in written or (what.get("wrote") and (backend.name != "bwrap" or not path.is_dir())):
            fix = ("it must not lie inside the submission's folder, the interpreter's folders, /usr or /etc"
                   if backend.name == "bwrap" else "make it writable by its owner only (chmod o-w), or " + FIX)
            problems.append(f"student code could write into {path} (as {backend.user or 'the sandbox user'}): {fix}")
        elif backend.name == "bwrap" and not _inside(path, PACKAGE_DIR):
            names, digest = _host_view(path)
            if (names & (set(what.get("entries", ())) - _mount_points(path))) or (digest and digest == what.get("sha")):
                problems.append(f"student code could read {path} inside bubblewrap: it must not lie inside the "
                                "interpreter's folders, /usr or /etc")
    return problems
