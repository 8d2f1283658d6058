"""Training of the noise-aware classifier p(y | x_t, t) that classifier guidance differentiates.

Each batch is noised by the forward process at random t (a quarter of it kept clean, t = 0, where
the bar is highest), with the evaluation classifier's shift augmentation. Reproduce the shipped
weights with the command in docs/model_card.md.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..maths.forward import q_sample
from ..maths.schedule import NoiseSchedule
from ..models.noisy_classifier import NoisyClassifier
from .data import load_mnist
from .epochs import fit_epochs
from .train import shift_augment

__all__ = ["train_noisy_classifier", "export_noisy_classifier", "noisy_accuracy", "ACCURACY_TIMESTEPS"]

ACCURACY_TIMESTEPS = (0, 100, 200, 300, 500, 700, 900)


def train_noisy_classifier(out_dir: str | Path, *, device: torch.device, epochs: int = 20, batch_size: int = 128,
                           lr: float = 2e-3, seed: int = 0, progress: bool = True,
                           max_minutes: float | None = None) -> Path:
    """Train (or resume) on the training split; returns the checkpoint path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    x, y = (t.to(device) for t in load_mnist("train"))
    schedule = NoiseSchedule.linear().to(device)
    model = NoisyClassifier().to(device)

    def batch_loss(model, idx, g):
        x0 = shift_augment(x[idx], g)
        t = torch.randint(0, schedule.T, (len(idx),), generator=g, device=device)
        t = torch.where(torch.rand(len(idx), generator=g, device=device) < 0.25, torch.zeros_like(t), t)
        x_t = q_sample(schedule, x0, t, torch.randn(x0.shape, generator=g, device=device))
        return F.cross_entropy(model(x_t, t), y[idx])

    fit_epochs(out / "checkpoint.pt", model, batch_loss, len(x), epochs=epochs, batch_size=batch_size, lr=lr,
               seed=seed, device=device, progress=progress, max_minutes=max_minutes)
    return out / "checkpoint.pt"


@torch.no_grad()
def noisy_accuracy(model: NoisyClassifier, x0: torch.Tensor, y: torch.Tensor, t: int, *, seed: int = 0) -> float:
    """Accuracy of p(y | x_t, t) on x0 noised to step t with fixed noise (t = 0 noises a little: ᾱ_0 < 1)."""
    schedule = NoiseSchedule.linear()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    logits = torch.cat([model(q_sample(schedule, xb, t, eb), t) for xb, eb in zip(x0.split(500), eps.split(500))])
    return (logits.argmax(1) == y).float().mean().item()


def export_noisy_classifier(ckpt_path: str | Path, folder: str | Path | None = None, *, hardware: str = "") -> Path:
    """Write the shipped weights with the held-out accuracy at each of ACCURACY_TIMESTEPS."""
    from ..models.pretrained import export_model
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = NoisyClassifier()
    model.load_state_dict(ck["model"])
    model.eval()
    xh, yh = load_mnist("heldout")
    acc = {str(t): round(noisy_accuracy(model, xh, yh, t), 4) for t in ACCURACY_TIMESTEPS}
    return export_model("noisy_classifier_mnist", model.state_dict(),
                        {"schedule": "linear", "T": 1000, "heldout_accuracy_by_t": acc, "epochs": ck["epoch"],
                         "wall_s": round(ck["wall_s"], 1), "hardware": hardware}, folder)
