"""`labsupport doctor`: every check passes on a ready machine, and each broken thing is a ✗ that names it."""
from __future__ import annotations

import io
import shutil
import sys

import pytest

import labsupport.models.pretrained
from conftest import data_folder
from labsupport.teaching import doctor
from labsupport.cli import main
from labsupport.teaching.doctor import FAIL, OK, WARN, Finding


@pytest.fixture
def ready(monkeypatch):
    """The environment of a ready machine: the course's MNIST, no device or fast-mode overrides."""
    folder = data_folder()
    if folder is None:
        pytest.skip("no MNIST folder: set LABSUPPORT_DATA (in the course repo: ../shared/data/mnist)")
    monkeypatch.setenv("LABSUPPORT_DATA", str(folder))
    for name in ("LABSUPPORT_DEVICE", "LABSUPPORT_FAST"):
        monkeypatch.delenv(name, raising=False)
    return folder


def run_doctor(capsys) -> tuple[int, dict[str, str]]:
    """The exit status, and each output line keyed by the thing it checked."""
    code = main(["doctor"])
    lines = capsys.readouterr().out.splitlines()
    return code, {line.split(":", 1)[0][2:]: line for line in lines[:-1]}


def test_passes_on_this_machine_without_running_a_model(ready, capsys, monkeypatch):
    def no_forward(*args, **kwargs):
        raise AssertionError("doctor ran the network")
    monkeypatch.setattr(labsupport.models.unet.UNet, "forward", no_forward)
    code, lines = run_doctor(capsys)
    assert code == 0
    expected = {"Python", "torch", "device", "weights unet_mnist", "weights classifier_mnist", "weights heldout_stats",
                "MNIST", "JupyterLab", "ipywidgets", "fast mode", "bubblewrap"}
    assert set(lines) == expected
    assert not any(line.startswith("✗") for line in lines.values())
    assert str(ready) in lines["MNIST"] and "13,000 training and 2,000 held-out" in lines["MNIST"]


def test_a_missing_data_folder_names_the_variable_and_the_files(ready, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("LABSUPPORT_DATA", str(tmp_path / "nowhere"))
    code, lines = run_doctor(capsys)
    assert code == 1
    line = lines["MNIST"]
    assert line.startswith("✗") and str(tmp_path / "nowhere") in line and "does not exist" in line
    assert "LABSUPPORT_DATA" in line
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train5k-images-idx3-ubyte.gz"):
        assert name in line


def test_an_incomplete_or_damaged_data_folder(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04")
    lacking = doctor.check_mnist(tmp_path)
    assert lacking.status == FAIL and "t10k-labels-idx1-ubyte" in lacking.detail and "train or train5k" in lacking.detail
    assert "t10k-images" not in lacking.detail
    for name in ("t10k-labels-idx1-ubyte", "train5k-images-idx3-ubyte", "train5k-labels-idx1-ubyte"):
        (tmp_path / name).write_bytes(b"\x01\x02\x03\x04")
    damaged = doctor.check_mnist(tmp_path)
    assert damaged.status == FAIL and "cannot be read" in damaged.detail and "magic" in damaged.detail


def test_a_corrupted_weights_file_is_named(ready, capsys, monkeypatch, tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(labsupport.models.pretrained.WEIGHTS_DIR, folder)
    data = bytearray((folder / "unet_mnist.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (folder / "unet_mnist.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(labsupport.models.pretrained, "WEIGHTS_DIR", folder)
    code, lines = run_doctor(capsys)
    assert code == 1
    assert lines["weights unet_mnist"].startswith("✗") and "unet_mnist.safetensors" in lines["weights unet_mnist"]
    assert "corrupt or was changed" in lines["weights unet_mnist"]
    assert lines["weights classifier_mnist"].startswith("✓") and lines["weights heldout_stats"].startswith("✓")


def test_missing_or_unreadable_weights_metadata(tmp_path):
    shutil.copytree(labsupport.models.pretrained.WEIGHTS_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "classifier_mnist.json").unlink()
    (tmp_path / "heldout_stats.json").write_text("{not json")
    found = {f.what: f for f in doctor.check_weights(tmp_path)}
    assert found["weights unet_mnist"].status == OK
    assert found["weights classifier_mnist"].status == FAIL and "missing" in found["weights classifier_mnist"].detail
    assert found["weights heldout_stats"].status == FAIL and "heldout_stats.json" in found["weights heldout_stats"].detail


def test_python_version():
    assert doctor.check_python((3, 10, 0)).status == OK
    old = doctor.check_python((3, 9, 18))
    assert old.status == FAIL and "3.9.18" in old.detail and "3.10" in old.fix


def test_a_device_that_cannot_be_used(monkeypatch):
    monkeypatch.setenv("LABSUPPORT_DEVICE", "no-such-device")
    found = doctor.check_device()
    assert found.status == FAIL and "no-such-device" in found.detail and "LABSUPPORT_DEVICE" in found.fix
    monkeypatch.setenv("LABSUPPORT_DEVICE", "cpu")
    found = doctor.check_device()
    assert found.status == OK and "cpu" in found.detail and "LABSUPPORT_DEVICE=cpu" in found.detail


def test_jupyterlab_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "jupyterlab", None)  # makes `import jupyterlab` fail
    lab, widgets = doctor.check_jupyter()
    assert lab.status == FAIL and "make setup" in lab.fix
    assert widgets.status == OK


@pytest.mark.parametrize("value, status, word", [(None, OK, "off"), ("0", OK, "off"), ("1", OK, "on"),
                                                 ("true", WARN, "counts as off")])
def test_fast_mode(monkeypatch, value, status, word):
    if value is None:
        monkeypatch.delenv("LABSUPPORT_FAST", raising=False)
    else:
        monkeypatch.setenv("LABSUPPORT_FAST", value)
    found = doctor.check_fast_mode()
    assert found.status == status and word in found.detail


def test_a_missing_bubblewrap_is_a_warning_not_a_failure(ready, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap on it
    code, lines = run_doctor(capsys)
    assert code == 0
    assert lines["bubblewrap"].startswith("⚠") and "apt-get install bubblewrap" in lines["bubblewrap"]


def test_report_falls_back_to_words_where_the_terminal_cannot_print_the_marks(monkeypatch):
    findings = [Finding(OK, "a", "fine"), Finding(FAIL, "b", "broken", "mend it")]
    text = doctor.report(findings)
    assert text.splitlines() == ["✓ a: fine", "✗ b: broken. Fix: mend it", "1 problem to fix: see the lines marked ✗ above."]
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BytesIO(), encoding="ascii"))
    assert doctor.report(findings).splitlines()[1] == "FAIL b: broken. Fix: mend it"
