"""The shipped weights: hash verification, clear errors, pinned output, speed of loading."""
import json
import shutil
import time

import pytest
import torch

import labsupport as lab
from labsupport.models.pretrained import WEIGHTS_DIR, WeightsError
from labsupport.tools.train import pinned_input


def test_load_returns_eval_model_and_training_schedule():
    t0 = time.perf_counter()
    model, schedule = lab.load_pretrained(device="cpu")
    assert time.perf_counter() - t0 < 10  # generous here; the model card reports the measured time
    assert not model.training
    meta = json.loads((WEIGHTS_DIR / "unet_mnist.json").read_text())
    assert schedule.T == meta["T"] == 1000
    assert schedule.betas[0].item() == pytest.approx(1e-4) and schedule.betas[-1].item() == pytest.approx(0.02)
    assert model.null_class == model.num_classes == 10


@pytest.mark.parametrize("fast", [None, False])  # the default (fast) path and the plain model
def test_output_on_fixed_input_matches_value_pinned_at_export(fast):
    model, _ = lab.load_pretrained(device="cpu", fast=fast)
    pinned = json.loads((WEIGHTS_DIR / "unet_mnist.json").read_text())["pinned_output"]
    x, t, y = pinned_input()
    with torch.no_grad():
        out = model(x, t, y).double()
    assert out.sum().item() == pytest.approx(pinned["sum"], abs=1e-2)
    assert out.abs().sum().item() == pytest.approx(pinned["abs_sum"], rel=1e-4)
    assert out.flatten()[:4].tolist() == pytest.approx(pinned["first"], abs=1e-4)


def _copy_weights(tmp_path):
    for f in WEIGHTS_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    return tmp_path


def test_corrupted_copy_is_rejected(tmp_path):
    folder = _copy_weights(tmp_path)
    path = folder / "unet_mnist.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="corrupt"):
        lab.load_pretrained(device="cpu", folder=folder)


def test_truncated_or_missing_weights_are_rejected(tmp_path):
    folder = _copy_weights(tmp_path)
    path = folder / "classifier_mnist.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(WeightsError, match="corrupt"):
        lab.load_classifier("cpu", folder=folder)
    (folder / "unet_mnist.safetensors").unlink()
    with pytest.raises(WeightsError, match="missing"):
        lab.load_pretrained(device="cpu", folder=folder)


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'cifar'"):
        lab.load_pretrained("cifar")


def test_classifier_and_reference_stats_load():
    clf = lab.load_classifier("cpu")
    stats = lab.load_reference_stats()
    assert stats["mu"].shape == (clf.feature_dim,)
    assert stats["sigma"].shape == (clf.feature_dim, clf.feature_dim)
    assert torch.allclose(stats["sigma"], stats["sigma"].T)
