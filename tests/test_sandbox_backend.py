"""The sandbox backends (labsupport/grading/sandbox/backend.py, reaper.py): what student code can and
cannot do inside them. Each test runs a few short sandboxed processes (seconds)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from labsupport.grading.sandbox import Limits, choose_backend, containment_problems, execute_notebook
from labsupport.grading.sandbox.backend import PACKAGE_DIR, _mount_points
from labsupport.grading.sandbox.limits import sandbox_env

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None,
                                 reason="bubblewrap is not installed (apt-get install bubblewrap)")
needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the subreaper needs Linux (prctl)")

# leaves two orphans behind: one in a new session, one double-forked
SPAWN = """
import os, subprocess, sys
marker = sys.argv[1]
subprocess.Popen(["setsid", "sleep", marker])
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", marker])
    os._exit(0)
os.wait()
time_to_see = float(sys.argv[2]) if len(sys.argv) > 2 else 0
__import__("time").sleep(time_to_see)
"""


@pytest.fixture(scope="module")
def subreaper():
    return choose_backend(force="subreaper")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def _marker() -> str:
    return f"300.{time.time_ns()}"   # a valid argument to sleep that no other process has


def _with_marker(marker: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                cmdline = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if cmdline[:1] == [b"sleep"] and marker.encode() in cmdline:
                pids.append(int(name))
    return pids


def _gone(marker: str, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while _with_marker(marker):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _run(backend, args: list[str], workdir: Path, view: Path | None = None) -> subprocess.CompletedProcess:
    cmd = backend.command(args, workdir, Limits(), 60, package_view=view)
    return subprocess.run(cmd, cwd=workdir, env=sandbox_env(workdir), capture_output=True, text=True, timeout=120,
                          start_new_session=True)


def _python(code: str, *argv: str) -> list[str]:
    return [sys.executable, "-c", code, *argv]


def _make_view(root: Path) -> Path:
    """A stand-in package: its own __init__ and the limits script the sandbox runs first."""
    view = root / "labsupport"
    (view / "grading" / "sandbox").mkdir(parents=True)
    (view / "__init__.py").write_text("VIEW = 'the view'\n")
    shutil.copyfile(PACKAGE_DIR / "grading" / "sandbox" / "limits.py", view / "grading" / "sandbox" / "limits.py")
    return view


def _kill_the_launcher_of_orphans(backend, workdir) -> None:
    """Start two orphans under `backend`, SIGKILL the launcher's group, and check that both end."""
    marker = _marker()
    cmd = backend.command(_python(SPAWN, marker, "100"), workdir, Limits(), 60)
    proc = subprocess.Popen(cmd, cwd=workdir, env=sandbox_env(workdir), start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while len(_with_marker(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_with_marker(marker)) == 2, "the orphans did not start"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert _gone(marker)
    finally:
        proc.kill()
        proc.wait()


# ---- bubblewrap -------------------------------------------------------------------------------------

@needs_bwrap
def test_bwrap_orphans_end_with_the_sandbox(bwrap, workdir):
    marker = _marker()
    run = _run(bwrap, _python(SPAWN, marker), workdir)
    assert run.returncode == 0, run.stderr
    assert _gone(marker, within=1.0), "a setsid or double-forked child outlived the sandbox"


@needs_bwrap
def test_bwrap_killed_launcher_ends_every_process(bwrap, workdir):
    _kill_the_launcher_of_orphans(bwrap, workdir)   # what the executor does on a timeout


@needs_bwrap
def test_bwrap_writes_outside_the_folder_fail(bwrap, tmp_path, workdir):
    protected = tmp_path / "protected"
    protected.mkdir()
    marker = _marker()
    targets = [protected / "x", Path.home() / f"escape-{marker}", PACKAGE_DIR / f"escape-{marker}",
               Path("/tmp") / f"escape-{marker}", Path("/") / f"escape-{marker}"]
    code = """
import sys
for path in sys.argv[1:]:
    try:
        open(path, "w").write("x")
        print("wrote", path)
    except OSError as err:
        print("blocked", path, err.strerror)
open("mine.txt", "w").write("ok")
"""
    run = _run(bwrap, _python(code, *map(str, targets)), workdir)
    assert run.returncode == 0, run.stderr
    assert not any(path.exists() for path in targets), run.stdout
    assert (workdir / "mine.txt").read_text() == "ok"
    # /tmp inside is a private tmpfs: a write may succeed there, but never reaches the host's /tmp
    assert run.stdout.count("blocked") >= len(targets) - 1


@needs_bwrap
def test_bwrap_hides_the_machine(bwrap, workdir):
    code = """
import json, os, sys
repo, home, secret = sys.argv[1:]
out = {"uid": os.getuid(), "repo": os.listdir(repo), "home": os.listdir(home) if os.path.isdir(home) else [],
       "secret": os.path.exists(secret), "sysctl": os.access("/proc/sys/kernel/core_pattern", os.W_OK)}
try:
    open("/etc/shadow").read()
    out["shadow"] = "read"
except OSError:
    out["shadow"] = "blocked"
print(json.dumps(out))
"""
    secret = workdir.parent / "secret.txt"
    secret.write_text("the course secret")
    run = _run(bwrap, _python(code, str(PACKAGE_DIR.parent), str(Path.home()), str(secret)), workdir)
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["uid"] == 65534
    # only what is bound on purpose: the package (and the interpreter's folders), no tests, notebooks or .git
    assert set(seen["repo"]) == _mount_points(PACKAGE_DIR.parent)
    assert set(seen["home"]) <= _mount_points(Path.home())
    assert seen["shadow"] == "blocked" and seen["secret"] is False
    assert seen["sysctl"] is False   # as root the sandbox's user is root outside: /proc must be read-only


@needs_bwrap
def test_bwrap_has_no_network(bwrap, workdir):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.5)
        code = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=3)
    print("connected")
except OSError as err:
    print("failed", err)
"""
        run = _run(bwrap, _python(code, str(server.getsockname()[1])), workdir)
        assert run.stdout.startswith("failed"), run.stdout + run.stderr
        with pytest.raises(socket.timeout):
            server.accept()


@needs_bwrap
def test_bwrap_package_view_replaces_the_package(bwrap, tmp_path, workdir):
    view = _make_view(tmp_path / "view")
    code = """
import sys, labsupport
print(labsupport.VIEW, labsupport.__file__)
try:
    open(sys.argv[1]).read()
    print("read the real package")
except OSError:
    print("real package unreadable")
"""
    run = _run(bwrap, _python(code, str(PACKAGE_DIR / "samplers" / "ddpm.py")), workdir, view)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [f"the view {PACKAGE_DIR / '__init__.py'}", "real package unreadable"]


@needs_bwrap
def test_bwrap_contains_the_grader_folders(bwrap, tmp_path):
    folders = [tmp_path / "submissions", tmp_path / "out"]
    for folder in folders:
        folder.mkdir()
        (folder / "alice.ipynb").write_text("{}")
    assert containment_problems(bwrap, protect=[*folders, PACKAGE_DIR]) == []


@needs_bwrap
def test_execute_notebook_under_bwrap(bwrap, tmp_path, workdir):
    protected = tmp_path / "protected"
    protected.mkdir()
    marker = _marker()
    targets = [protected / "x", Path.home() / f"escape-{marker}"]
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(f"import os, subprocess\nsubprocess.Popen(['setsid', 'sleep', '{marker}'])\n"
                                  "print(os.getuid())"),
        nbformat.v4.new_code_cell(f"for path in {list(map(str, targets))!r}:\n"
                                  "    try:\n        open(path, 'w').write('x'); print('wrote', path)\n"
                                  "    except OSError:\n        print('blocked', path)"),
    ]
    nbformat.write(nb, workdir / "submission.ipynb")
    result = execute_notebook(workdir / "submission.ipynb", tmp_path / "executed.ipynb",
                              Limits(cell_timeout=60, total_timeout=120), backend=bwrap)
    assert result.status == "ok", result
    outputs = ["".join(o.get("text", "") for o in cell.outputs) for cell in nbformat.read(tmp_path / "executed.ipynb", 4).cells]
    assert outputs[0] == "65534\n" and outputs[1].count("blocked") == 2, outputs
    assert not any(path.exists() for path in targets)
    assert _gone(marker)


# ---- subreaper and none -----------------------------------------------------------------------------

@needs_linux
def test_subreaper_orphans_end_with_the_command(subreaper, workdir):
    marker = _marker()
    run = _run(subreaper, _python(SPAWN, marker), workdir)
    assert run.returncode == 0, run.stderr
    assert _gone(marker, within=1.0), "a setsid or double-forked child outlived the reaper"


@needs_linux
def test_subreaper_cleans_up_when_killed(subreaper, workdir):
    _kill_the_launcher_of_orphans(subreaper, workdir)   # the keeper is out of this group and cleans up


@needs_linux
def test_subreaper_passes_on_the_exit_status(subreaper, workdir):
    assert _run(subreaper, _python("import os; os._exit(3)"), workdir).returncode == 3
    assert _run(subreaper, _python("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"),
                workdir).returncode == -signal.SIGSEGV


@needs_linux
def test_subreaper_package_view_comes_first(subreaper, tmp_path, workdir):
    view = _make_view(tmp_path / "view")
    run = _run(subreaper, _python("import labsupport; print(labsupport.VIEW)"), workdir, view)
    assert run.stdout == "the view\n", run.stderr


@needs_linux
def test_without_a_sandbox_orphans_survive(workdir):
    """The control: the same command under "none" leaves its orphans (so the tests above can fail)."""
    marker = _marker()
    try:
        cmd = choose_backend(force="none").command(_python(SPAWN, marker), workdir, Limits(), 60)
        # no pipes: the orphans would hold them open
        assert subprocess.run(cmd, cwd=workdir, env=sandbox_env(workdir), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=60).returncode == 0
        assert len(_with_marker(marker)) == 2
    finally:
        for pid in _with_marker(marker):
            os.kill(pid, signal.SIGKILL)


def test_none_backend_is_not_contained(tmp_path):
    problems = containment_problems(choose_backend(force="none"), protect=[tmp_path])
    assert len(problems) == 1
    assert str(tmp_path) in problems[0] and "apt-get install bubblewrap" in problems[0]


def test_choose_backend_rejects_unknown_names():
    with pytest.raises(ValueError, match="force must be"):
        choose_backend(force="docker")
