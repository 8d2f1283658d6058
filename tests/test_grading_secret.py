"""The course secret and failing closed: the grader refuses what it cannot do safely, and says how to fix it."""
from __future__ import annotations

import stat

import pytest

from labsupport.grading import secret as sec
from labsupport.grading.batch import NotContained, grade_folder
from labsupport.grading.cli import main
from labsupport.grading.hidden import hidden_cases
from labsupport.grading.codec import fingerprint
from labsupport.grading.sandbox.backend import Backend


@pytest.fixture
def no_secret(monkeypatch, tmp_path):
    monkeypatch.delenv(sec.ENV_VAR, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_init_secret_writes_a_private_file_once(no_secret):
    path = sec.init_secret()
    assert path == no_secret / "home" / ".config" / "labsupport" / "grading-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().strip()) == 64
    assert sec.read_secret() == path.read_text().strip()
    with pytest.raises(FileExistsError, match="--force"):
        sec.init_secret()
    first = path.read_text()
    sec.init_secret(force=True)
    assert path.read_text() != first


def test_without_a_secret_the_grader_refuses_and_says_how(no_secret):
    subs = no_secret / "subs"
    subs.mkdir()
    with pytest.raises(sec.SecretMissing, match="--init-secret"):
        grade_folder(subs, no_secret / "out", log=lambda m: None)
    assert main([str(subs), "--out", str(no_secret / "out")]) == 2
    assert not (no_secret / "out" / "grades.csv").exists()


def test_practice_mode_is_labelled(no_secret):
    subs = no_secret / "subs"
    subs.mkdir()
    run = grade_folder(subs, no_secret / "out", practice=True, log=lambda m: None)
    assert run.mode == "practice" and run.secret_id == ""


def test_a_short_secret_is_refused(no_secret, monkeypatch):
    monkeypatch.setenv(sec.ENV_VAR, "short")
    with pytest.raises(sec.SecretMissing, match="too short"):
        sec.read_secret()


def test_hidden_inputs_depend_on_the_secret_not_on_the_shipped_seed():
    a = [fingerprint(c.inputs) for c in hidden_cases("ddpm_sampler", "compute_posterior_variance", "secret-one-0123456789")]
    b = [fingerprint(c.inputs) for c in hidden_cases("ddpm_sampler", "compute_posterior_variance", "secret-two-0123456789")]
    assert all(x != y for x, y in zip(a, b))


def test_no_containment_means_no_grading_unless_trusted(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    none = Backend("none", note="student code runs as the grader's own user")
    with pytest.raises(NotContained, match="bubblewrap"):
        grade_folder(subs, tmp_path / "out", secret="a-test-secret-0123456789", backend=none, log=lambda m: None)
    run = grade_folder(subs, tmp_path / "out", secret="a-test-secret-0123456789", backend=none,
                       trust_submissions=True, log=lambda m: None)
    assert run.trusted and run.backend == "none" and "NOT CONTAINED" in run.sandbox_note


def test_linked_notebooks_and_folders_are_not_read(tmp_path):
    from labsupport.grading.batch import _find_notebooks
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    (subs / "alice" / "01.ipynb").write_text("{}")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "02.ipynb").write_text("{}")
    (subs / "alice" / "02.ipynb").symlink_to(outside / "02.ipynb")   # could name any file of the machine
    (subs / "bob").symlink_to(outside, target_is_directory=True)
    assert _find_notebooks(subs) == [subs / "alice" / "01.ipynb"]
