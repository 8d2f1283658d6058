"""Sample-quality metrics for MNIST, all driven by the shipped evaluation classifier (notebooks 03-05).

FID here is the Fréchet distance between Gaussian fits of the classifier's 128-d penultimate
features ("classifier-feature FID"); it is comparable within this lab, not to published
Inception FIDs.
"""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["features", "feature_stats", "frechet_distance", "fid", "class_probabilities", "label_accuracy",
           "mean_confidence", "class_histogram", "pixel_diversity", "feature_diversity",
           "distinct_modes", "nearest_neighbor_distances"]


def _check_images(x: torch.Tensor) -> torch.Tensor:
    if not torch.is_tensor(x) or x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"images must be a (N, 1, 28, 28) tensor in [-1, 1], got "
                         f"{tuple(x.shape) if torch.is_tensor(x) else type(x).__name__}")
    return x


@torch.inference_mode()
def _batched(fn, x: torch.Tensor, batch: int = 500) -> torch.Tensor:
    dev = next(fn.__self__.parameters()).device if hasattr(fn, "__self__") else x.device
    return torch.cat([fn(x[i:i + batch].to(dev).float().clamp(-1, 1)).float().cpu() for i in range(0, len(x), batch)])


def features(classifier, x: torch.Tensor) -> torch.Tensor:
    """(N, 128) penultimate features."""
    return _batched(classifier.features, _check_images(x))


def feature_stats(feats: torch.Tensor) -> dict[str, torch.Tensor]:
    """Mean and covariance (float64) of a feature set."""
    f = feats.double()
    return {"mu": f.mean(0), "sigma": torch.cov(f.T)}


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """||μ1−μ2||² + Tr(Σ1 + Σ2 − 2(Σ1Σ2)^½), the trace term through eigenvalues of Σ1^½ Σ2 Σ1^½."""
    mu1, mu2, s1, s2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, sigma1, sigma2))
    w, v = np.linalg.eigh(s1)
    sqrt_s1 = (v * np.sqrt(w.clip(min=0))) @ v.T
    covmean_eigs = np.linalg.eigvalsh(sqrt_s1 @ s2 @ sqrt_s1).clip(min=0)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(covmean_eigs).sum())


def fid(classifier, samples: torch.Tensor, reference: dict[str, torch.Tensor] | torch.Tensor) -> float:
    """Classifier-feature FID of samples against reference stats (or reference images)."""
    ref = reference if isinstance(reference, dict) else feature_stats(features(classifier, reference))
    st = feature_stats(features(classifier, samples))
    return frechet_distance(st["mu"], st["sigma"], ref["mu"], ref["sigma"])


def class_probabilities(classifier, x: torch.Tensor) -> torch.Tensor:
    return _batched(classifier, _check_images(x)).softmax(1)


def label_accuracy(classifier, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images the classifier assigns to their requested label."""
    return (class_probabilities(classifier, x).argmax(1) == labels.cpu()).float().mean().item()


def mean_confidence(classifier, x: torch.Tensor) -> float:
    """Mean of the classifier's top probability: how digit-like the samples look."""
    return class_probabilities(classifier, x).max(1).values.mean().item()


def class_histogram(classifier, x: torch.Tensor) -> torch.Tensor:
    """Share of samples classified as each digit, (10,)."""
    pred = class_probabilities(classifier, x).argmax(1)
    return torch.bincount(pred, minlength=10).float() / len(pred)


def pixel_diversity(x: torch.Tensor) -> float:
    """Seed 000's measure: per-pixel standard deviation across samples, averaged over pixels."""
    if len(x) < 2:
        raise ValueError(f"pixel_diversity needs at least 2 samples, got {len(x)}")
    return x.float().std(dim=0).mean().item()


def feature_diversity(classifier, x: torch.Tensor) -> float:
    """Per-feature standard deviation of the classifier's features across samples, averaged.

    Pixel diversity also counts speckle and stroke thickness as variety; in feature space a set of
    near-identical digits with scattered artefacts still scores low.
    """
    if len(x) < 2:
        raise ValueError(f"feature_diversity needs at least 2 samples, got {len(x)}")
    return features(classifier, x).double().std(dim=0).mean().item()


def distinct_modes(feats: torch.Tensor, radius: float) -> int:
    """Number of modes in a set of feature vectors (N, D): greedy leader clustering.

    Each vector, in order, joins the first leader within `radius` (Euclidean), or becomes a new
    leader; the count of leaders is the number of distinct modes (seed 004, exercise 4). The count
    depends on the order only at the margins, and never exceeds N.
    """
    if feats.ndim != 2 or len(feats) == 0:
        raise ValueError(f"feats must be a non-empty (N, D) tensor, got shape {tuple(feats.shape)}")
    if not radius > 0:
        raise ValueError(f"radius must be > 0, got {radius}")
    leaders: list[torch.Tensor] = []
    for f in feats.double():
        if not leaders or torch.cdist(f[None], torch.stack(leaders)).min() > radius:
            leaders.append(f)
    return len(leaders)


def nearest_neighbor_distances(x: torch.Tensor, train: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Euclidean distance from each image to its nearest training image (memorization probe)."""
    a, b = x.flatten(1).float(), train.flatten(1).float()
    return torch.cat([torch.cdist(a[i:i + batch], b).min(1).values for i in range(0, len(a), batch)])
