"""The models that ship inside the package, loaded offline and verified by SHA-256.

    weights/unet_mnist.safetensors        EMA weights of the class-conditional U-Net
    weights/unet_mnist.json               its config, schedule, p_uncond, hash and a pinned output
    weights/classifier_mnist.safetensors  the evaluation CNN
    weights/classifier_mnist.json         its hash and held-out accuracy
    weights/heldout_stats.safetensors     mean and covariance of its features on the held-out digits
    weights/noisy_classifier_mnist.*      p(y | x_t, t) for classifier guidance, its accuracy against t
    weights/autoencoder_mnist.*           28x28 <-> 4x7x7 autoencoder of latent diffusion, its latent scale
    weights/unet_latent.*                 the class-conditional ε-model on the scaled latents
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .autoencoder import Autoencoder
from .classifier import MNISTClassifier
from .fast_path import FAST_PATH_ENV, fast_path_enabled, use_fast_path, use_plain_path
from .noisy_classifier import NoisyClassifier
from ..device import get_device
from ..maths.schedule import NoiseSchedule
from .unet import UNet, UNetConfig

__all__ = ["load_pretrained", "load_classifier", "load_noisy_classifier", "load_autoencoder", "load_reference_stats",
           "export_model", "sha256", "WEIGHTS_DIR", "WeightsError", "MODELS", "FAST_PATH_ENV", "fast_path_enabled",
           "use_fast_path", "use_plain_path"]

WEIGHTS_DIR = Path(__file__).parent / "weights"
MODELS = ("unet_mnist", "unet_latent")  # ε-models: pixels, and the autoencoder's latents


class WeightsError(RuntimeError):
    pass


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_verified(stem: str, folder: Path | None = None) -> tuple[dict, dict[str, torch.Tensor]]:
    """Metadata and tensors of weights/<stem>, after checking the file against its recorded hash."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    meta_path, weights_path = folder / f"{stem}.json", folder / f"{stem}.safetensors"
    if not meta_path.exists() or not weights_path.exists():
        raise WeightsError(f"{weights_path} or its metadata is missing; reinstall the package "
                           "(pip install -e .) or retrain with the command in docs/model_card.md")
    meta = json.loads(meta_path.read_text())
    actual = sha256(weights_path)
    if actual != meta["sha256"]:
        raise WeightsError(f"{weights_path.name} is corrupt or was changed: SHA-256 {actual[:12]}... differs from "
                           f"the recorded {meta['sha256'][:12]}...; restore it with `git checkout -- {weights_path}`")
    try:
        tensors = load_file(str(weights_path))
    except Exception as err:
        raise WeightsError(f"{weights_path.name} could not be read as safetensors ({err})") from err
    return meta, tensors


def load_pretrained(name: str = "unet_mnist", device: str | torch.device | None = None, *,
                    folder: str | Path | None = None, fast: bool | None = None) -> tuple[UNet, NoiseSchedule]:
    """(reference U-Net in eval mode on `device`, the noise schedule it was trained with).

    The model comes in the fastest exact setting of its device (`use_fast_path`); `fast=False`, or
    LABSUPPORT_FAST_PATH=0 in the environment, gives the plain model (notebook 06 starts from it).
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; available: {MODELS}")
    meta, tensors = _read_verified(name, folder)
    model = UNet(UNetConfig.from_dict(meta["unet"]))
    model.load_state_dict(tensors)
    schedule = NoiseSchedule.from_name(meta["schedule"], meta["T"])
    model.p_uncond = meta["p_uncond"]
    model.sample_shape = tuple(meta.get("sample_shape", (1, 28, 28)))  # the input of the layout probe
    return _placed(model, device, fast), schedule


def _placed(model: torch.nn.Module, device, fast: bool | None = None) -> torch.nn.Module:
    model = model.to(get_device(device) if not isinstance(device, torch.device) else device).eval()
    return use_fast_path(model, fast)


def load_classifier(device: str | torch.device | None = None, *, folder: str | Path | None = None) -> MNISTClassifier:
    """The evaluation CNN in eval mode."""
    _, tensors = _read_verified("classifier_mnist", folder)
    model = MNISTClassifier()
    model.load_state_dict(tensors)
    model.sample_shape, model.probe_with_t = (1, 28, 28), False
    return _placed(model, device)


def load_noisy_classifier(device: str | torch.device | None = None, *,
                          folder: str | Path | None = None) -> NoisyClassifier:
    """The noise-aware classifier p(y | x_t, t) of classifier guidance, in eval mode (linear schedule, T = 1000)."""
    _, tensors = _read_verified("noisy_classifier_mnist", folder)
    model = NoisyClassifier()
    model.load_state_dict(tensors)
    model.sample_shape = (1, 28, 28)
    return _placed(model, device)


def load_autoencoder(device: str | torch.device | None = None, *,
                     folder: str | Path | None = None) -> tuple[Autoencoder, float]:
    """(latent diffusion's autoencoder in eval mode, the scale that gives its latents unit variance)."""
    meta, tensors = _read_verified("autoencoder_mnist", folder)
    model = Autoencoder(latent_channels=meta["latent_shape"][0])
    model.load_state_dict(tensors)
    # plain layout: encode/decode are not `forward`, so a channels_last model would hand out channels_last latents
    return _placed(model, device, fast=False), float(meta["scale"])


def load_reference_stats(*, folder: str | Path | None = None) -> dict[str, torch.Tensor]:
    """Feature mean `mu` (128,) and covariance `sigma` (128, 128) of the held-out digits, float64."""
    return _read_verified("heldout_stats", folder)[1]


def export_model(stem: str, state_dict: dict[str, torch.Tensor], meta: dict, folder: str | Path | None = None) -> Path:
    """Write weights/<stem>.safetensors and its metadata (with the file's SHA-256)."""
    folder = Path(folder) if folder is not None else WEIGHTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in state_dict.items()}, str(path))
    (folder / f"{stem}.json").write_text(json.dumps({**meta, "sha256": sha256(path)}, indent=2) + "\n")
    return path
