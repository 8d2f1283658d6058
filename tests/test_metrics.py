"""Metrics against known answers on toy inputs and real held-out digits."""
import json

import numpy as np
import pytest
import torch

import labsupport as lab
from labsupport.tools import metrics
from labsupport.tools.data import load_mnist
from labsupport.models.pretrained import WEIGHTS_DIR


def test_frechet_distance_closed_form_for_diagonal_gaussians():
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s1, s2 = np.diag([1.0, 4.0, 9.0]), np.diag([4.0, 1.0, 9.0])
    # diagonal case: ||Δμ||² + Σ (√a − √b)²
    expected = 5.0 + (1 - 2) ** 2 + (2 - 1) ** 2 + 0.0
    assert metrics.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-9)


def test_fid_of_a_set_with_itself_is_zero():
    clf = lab.load_classifier("cpu")
    x, _ = load_mnist("heldout")
    feats = metrics.feature_stats(metrics.features(clf, x[:600]))
    assert metrics.fid(clf, x[:600], feats) == pytest.approx(0.0, abs=1e-3)


def test_accuracy_of_heldout_digits_equals_the_classifiers_recorded_accuracy():
    clf = lab.load_classifier("cpu")
    x, y = load_mnist("heldout")
    recorded = json.loads((WEIGHTS_DIR / "classifier_mnist.json").read_text())["heldout_accuracy"]
    assert metrics.label_accuracy(clf, x, y) == pytest.approx(recorded, abs=1e-3)


def test_histogram_diversity_and_nearest_neighbours_on_toy_inputs():
    x = torch.full((4, 1, 28, 28), -1.0)
    assert metrics.pixel_diversity(x) == 0.0
    x[::2] = 1.0  # two at -1, two at +1: sample std of (-1,1,-1,1) is 2/√3
    assert metrics.pixel_diversity(x) == pytest.approx(2 / 3 ** 0.5, rel=1e-6)
    train = torch.zeros(3, 1, 28, 28)
    train[1] = 1.0
    d = metrics.nearest_neighbor_distances(torch.ones(2, 1, 28, 28), train)
    assert torch.allclose(d, torch.zeros(2))
    clf = lab.load_classifier("cpu")
    h = metrics.class_histogram(clf, load_mnist("heldout")[0][:100])
    assert h.sum().item() == pytest.approx(1.0) and h.shape == (10,)


def test_bad_image_shape_is_a_clear_error():
    clf = lab.load_classifier("cpu")
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        metrics.features(clf, torch.zeros(2, 28, 28))


def test_confidence_of_real_digits_matches_export_and_is_not_capped():
    # Label smoothing ε would cap the top probability near 1 − ε·9/10; the shipped classifier has
    # none, so real digits must score well above the unconditional-sample bar of 0.90.
    clf = lab.load_classifier("cpu")
    x, _ = load_mnist("heldout")
    meta = json.loads((WEIGHTS_DIR / "classifier_mnist.json").read_text())
    conf = metrics.mean_confidence(clf, x)
    assert conf == pytest.approx(meta["heldout_confidence"], abs=1e-4)
    assert meta["label_smoothing"] == 0.0 and conf > 0.98


def test_feature_diversity_is_zero_for_copies_and_larger_across_digits_than_within_one():
    clf = lab.load_classifier("cpu")
    x, y = load_mnist("heldout")
    assert metrics.feature_diversity(clf, x[:1].repeat(8, 1, 1, 1)) == pytest.approx(0.0, abs=1e-6)
    sevens = x[y == 7][:100]
    assert metrics.feature_diversity(clf, x[:100]) > metrics.feature_diversity(clf, sevens) > 0
    with pytest.raises(ValueError, match="at least 2"):
        metrics.feature_diversity(clf, x[:1])


def test_distinct_modes_counts_separated_clusters():
    from labsupport.tools.metrics import distinct_modes
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    feats = (centres[torch.arange(30) % 3] + 0.1 * torch.randn(30, 2, generator=g))
    assert distinct_modes(feats, radius=2.0) == 3
    assert distinct_modes(feats, radius=100.0) == 1
    assert distinct_modes(feats, radius=1e-6) == 30
    with pytest.raises(ValueError, match="radius"):
        distinct_modes(feats, radius=0.0)
