"""Latent diffusion's two networks (seed 000, notebook 07): the autoencoder, then the ε-model on
its scaled latents (the shipped U-Net's architecture at 7x7, class-conditional with a null class).

Reproduce the shipped weights with the commands in docs/model_card.md.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from ..models.autoencoder import Autoencoder
from .data import load_mnist
from .epochs import fit_epochs
from .train import TrainConfig, export_unet, train_unet

__all__ = ["train_autoencoder", "export_autoencoder", "latent_dataset", "train_latent_unet", "export_latent_unet",
           "LATENT_UNET", "latent_scale"]

# no downsampling (7 is odd) and attention over the 49 latent pixels; p_uncond as the pixel model's
LATENT_UNET = {"in_channels": 4, "base_channels": 64, "channel_mults": [1], "num_res_blocks": 2,
               "num_classes": 10, "mid_attention": True, "dropout": 0.0, "groups": 8}


def train_autoencoder(out_dir: str | Path, *, device: torch.device, epochs: int = 12, batch_size: int = 128,
                      lr: float = 2e-3, seed: int = 0, progress: bool = True, max_minutes: float | None = None) -> Path:
    """Train (or resume) on reconstruction error; a small penalty on the latents keeps their size bounded."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    x = load_mnist("train")[0].to(device)
    model = Autoencoder().to(device)

    def batch_loss(model, idx, g):
        z = model.encode(x[idx])
        return F.mse_loss(model.decode(z), x[idx]) + 1e-4 * z.pow(2).mean()

    fit_epochs(out / "checkpoint.pt", model, batch_loss, len(x), epochs=epochs, batch_size=batch_size, lr=lr,
               seed=seed, device=device, progress=progress, max_minutes=max_minutes)
    return out / "checkpoint.pt"


def _autoencoder_from(ckpt_path: str | Path) -> Autoencoder:
    model = Autoencoder()
    model.load_state_dict(torch.load(ckpt_path, map_location="cpu", weights_only=False)["model"])
    return model.eval()


@torch.no_grad()
def _encode_all(model: Autoencoder, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.encode(b) for b in x.split(500)])


def latent_scale(model: Autoencoder, x: torch.Tensor) -> float:
    """1 / std of the latents of x: the factor that gives the ε-model unit-variance data."""
    return 1.0 / _encode_all(model, x).std().item()


def latent_dataset(autoencoder: Autoencoder, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(scaled latents (N, 4, 7, 7), labels) of the training digits."""
    x, y = load_mnist("train")
    return _encode_all(autoencoder, x) * scale, y


def export_autoencoder(ckpt_path: str | Path, folder: str | Path | None = None, *, hardware: str = "") -> Path:
    """Write the shipped autoencoder with its latent scale and held-out reconstruction error."""
    from ..models.pretrained import export_model
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = _autoencoder_from(ckpt_path)
    xh = load_mnist("heldout")[0]
    with torch.no_grad():
        mse = torch.cat([(model(b) - b).pow(2).mean((1, 2, 3)) for b in xh.split(500)]).mean().item()
    return export_model("autoencoder_mnist", model.state_dict(),
                        {"latent_shape": [model.latent_channels, 7, 7], "scale": latent_scale(model, load_mnist("train")[0]),
                         "heldout_mse": mse, "epochs": ck["epoch"], "wall_s": round(ck["wall_s"], 1),
                         "hardware": hardware}, folder)


def train_latent_unet(out_dir: str | Path, *, device: torch.device, steps: int = 8000, batch_size: int = 128,
                      lr: float = 1e-3, seed: int = 0, max_minutes: float | None = None, progress: bool = True,
                      weights_folder: str | Path | None = None) -> Path:
    """Train (or resume) the latent ε-model on the shipped autoencoder's latents (load_autoencoder)."""
    from ..models.pretrained import load_autoencoder
    autoencoder, scale = load_autoencoder("cpu", folder=weights_folder)
    data = latent_dataset(autoencoder, scale)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, p_uncond=0.2, seed=seed, ckpt_every=500,
                      unet=dict(LATENT_UNET))
    return train_unet(out_dir, cfg, device=device, max_minutes=max_minutes, progress=progress, data=data)


def export_latent_unet(ckpt_path: str | Path, folder: str | Path | None = None, *, hardware: str = "") -> Path:
    return export_unet(ckpt_path, folder, hardware=hardware, stem="unet_latent",
                       extra={"sample_shape": [4, 7, 7], "autoencoder": "autoencoder_mnist"},
                       note="trained on the shipped autoencoder's latents times its scale")
