"""Training of the reference models: the ε-prediction U-Net with label dropout, and the
evaluation classifier. Resumable: a checkpoint holds model, EMA, optimizer, step and RNG states.

Reproduce the shipped weights with the commands in docs/model_card.md.
"""
from __future__ import annotations

import copy
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..models.classifier import MNISTClassifier
from .data import load_mnist
from ..maths.forward import q_sample
from ..maths.schedule import NoiseSchedule
from ..models.unet import UNet, UNetConfig

__all__ = ["TrainConfig", "train_unet", "train_classifier"]


@dataclass
class TrainConfig:
    steps: int = 40_000
    batch_size: int = 256
    lr: float = 5e-4
    warmup: int = 500
    p_uncond: float = 0.1          # label dropout to the null class, for classifier-free guidance
    ema_decay: float = 0.999
    seed: int = 0
    ckpt_every: int = 1000
    init_from: str = ""            # a shipped model whose weights start the run (model and EMA), e.g. unet_mnist
    unet: dict = field(default_factory=lambda: UNetConfig().to_dict())


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up, then cosine decay to 1% of the peak."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.lr * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def diffusion_loss(model, schedule: NoiseSchedule, x0, y, p_uncond: float, g: torch.Generator) -> torch.Tensor:
    """Simple DDPM loss ||ε − ε_θ(√ᾱ_t x0 + √(1−ᾱ_t) ε, t, y')||², y' = null with prob. p_uncond."""
    B, dev = x0.shape[0], x0.device
    t = torch.randint(0, schedule.T, (B,), generator=g, device=dev)
    eps = torch.randn(x0.shape, generator=g, device=dev)
    drop = torch.rand(B, generator=g, device=dev) < p_uncond
    y = torch.where(drop, torch.full_like(y, model.null_class), y)
    return F.mse_loss(model(q_sample(schedule, x0, t, eps), t, y), eps)


def _initial_model(cfg: TrainConfig) -> UNet:
    """Fresh weights, or a shipped model's (its architecture replaces cfg.unet) to train it longer."""
    if not cfg.init_from:
        return UNet(UNetConfig.from_dict(cfg.unet))
    from ..models.pretrained import load_pretrained
    model, _ = load_pretrained(cfg.init_from, "cpu", fast=False)
    cfg.unet = model.config.to_dict()
    return model.train().requires_grad_(True)


def train_unet(out_dir: str | Path, cfg: TrainConfig, *, device: torch.device, max_minutes: float | None = None,
               progress: bool = True, data: tuple[torch.Tensor, torch.Tensor] | None = None) -> Path:
    """Train (or resume) the U-Net; returns the checkpoint path. Stops early after max_minutes.

    data: (x0, labels) to learn, by default the MNIST training digits; the latent model passes the
    autoencoder's scaled latents (`labsupport.tools.train_latent`).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.pt"
    x_all, y_all = (t.to(device) for t in (data if data is not None else load_mnist("train")))
    schedule = NoiseSchedule.linear().to(device)
    torch.manual_seed(cfg.seed)  # the initial weights
    model = _initial_model(cfg).to(device)
    ema = copy.deepcopy(model).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    g = torch.Generator(device).manual_seed(cfg.seed)
    state = {"step": 0, "wall_s": 0.0}
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"]); ema.load_state_dict(ck["ema"]); opt.load_state_dict(ck["opt"])
        g.set_state(ck["rng"].cpu() if device.type == "cpu" else ck["rng"])
        state = ck["state"]
    (out / "train_config.json").write_text(json.dumps(asdict(cfg), indent=2))
    log = open(out / "loss.csv", "a", newline="")
    writer = csv.writer(log)
    start, running = time.time(), None
    session_start = start  # max_minutes counts from this call, not from the last checkpoint
    bar = tqdm(range(state["step"], cfg.steps), initial=state["step"], total=cfg.steps, disable=not progress)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        idx = torch.randint(0, len(x_all), (cfg.batch_size,), generator=g, device=device)
        loss = diffusion_loss(model, schedule, x_all[idx], y_all[idx], cfg.p_uncond, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            for pe, pm in zip(ema.parameters(), model.parameters()):
                pe.lerp_(pm, 1 - cfg.ema_decay)
        state["step"] = step + 1
        if (step + 1) % 100 == 0:
            running = loss.item() if running is None else 0.9 * running + 0.1 * loss.item()
            writer.writerow([step + 1, f"{running:.5f}", f"{lr_at(step, cfg):.2e}"])
            bar.set_postfix(loss=f"{running:.4f}")
        out_of_time = max_minutes is not None and time.time() - session_start > 60 * max_minutes
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps or out_of_time:
            state["wall_s"] += time.time() - start
            start = time.time()
            state["final_loss"] = running
            save_atomic({"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict(),
                         "rng": g.get_state(), "state": state, "config": asdict(cfg)}, ckpt_path)
            log.flush()
        if out_of_time:
            break
    log.close()
    return ckpt_path


def shift_augment(x: torch.Tensor, g: torch.Generator, max_shift: int = 2) -> torch.Tensor:
    """Random translations by up to max_shift pixels (pad with background, crop)."""
    B, _, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, value=-1.0)
    dx, dy = (torch.randint(0, 2 * max_shift + 1, (2,), generator=g, device=x.device)).tolist()
    return padded[:, :, dy:dy + H, dx:dx + W]


def train_classifier(out_dir: str | Path, *, device: torch.device, epochs: int = 30, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0, label_smoothing: float = 0.0, progress: bool = True) -> Path:
    """Train the evaluation CNN on the training split; returns the checkpoint path.

    No label smoothing by default: the model card reports mean classifier confidence, and smoothing
    would cap it (at 0.955 for 0.05) whatever the samples look like.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    x, y = (t.to(device) for t in load_mnist("train"))
    xh, yh = (t.to(device) for t in load_mnist("heldout"))
    model = MNISTClassifier().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    steps = epochs * math.ceil(len(x) / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator(device).manual_seed(seed)
    start = time.time()
    for epoch in tqdm(range(epochs), disable=not progress):
        model.train()
        perm = torch.randperm(len(x), generator=g, device=device)
        for i in range(0, len(x), batch_size):
            idx = perm[i:i + batch_size]
            loss = F.cross_entropy(model(shift_augment(x[idx], g)), y[idx], label_smoothing=label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xh).argmax(1) == yh).float().mean().item()
    path = out / "classifier.pt"
    save_atomic({"model": model.state_dict(), "heldout_accuracy": acc, "epochs": epochs,
                 "label_smoothing": label_smoothing, "wall_s": time.time() - start}, path)
    print(f"classifier held-out accuracy {acc:.4f}")
    return path


def pinned_input(shape: tuple[int, ...] = (1, 28, 28)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A fixed (x_t, t, y) whose output is recorded at export and checked by the tests."""
    g = torch.Generator().manual_seed(1234)
    return torch.randn(2, *shape, generator=g), torch.tensor([10, 900]), torch.tensor([3, 10])


def export_unet(ckpt_path: str | Path, folder: str | Path | None = None, *, hardware: str = "", note: str = "",
                stem: str = "unet_mnist", extra: dict | None = None) -> Path:
    """Write the EMA weights of a training checkpoint as the shipped model (on CPU, float32)."""
    from ..models.pretrained import export_model
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    cfg = ck["config"]
    model = UNet(UNetConfig.from_dict(cfg["unet"]))
    model.load_state_dict(ck["ema"])
    x, t, y = pinned_input(tuple((extra or {}).get("sample_shape", (1, 28, 28))))
    with torch.no_grad():
        out = model.eval()(x, t, y)
    meta = {"unet": cfg["unet"], "schedule": "linear", "T": 1000, "p_uncond": cfg["p_uncond"],
            "train": {k: v for k, v in cfg.items() if k != "unet"}, "steps_done": ck["state"]["step"],
            "wall_s": round(ck["state"]["wall_s"], 1), "final_loss": ck["state"].get("final_loss"),
            "hardware": hardware, "note": note, "params": sum(p.numel() for p in model.parameters()),
            "pinned_output": {"sum": out.double().sum().item(), "abs_sum": out.double().abs().sum().item(),
                              "first": out.flatten()[:4].tolist()}, **(extra or {})}
    return export_model(stem, model.state_dict(), meta, folder)


def export_classifier(ckpt_path: str | Path, folder: str | Path | None = None) -> Path:
    """Write the classifier and the held-out feature statistics that FID compares against."""
    from .metrics import feature_stats, features, mean_confidence
    from ..models.pretrained import export_model
    ck = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    model = MNISTClassifier()
    model.load_state_dict(ck["model"])
    model.eval()
    xh = load_mnist("heldout")[0]
    real_conf = mean_confidence(model, xh)
    path = export_model("classifier_mnist", model.state_dict(),
                        {"heldout_accuracy": ck["heldout_accuracy"], "heldout_confidence": real_conf,
                         "epochs": ck["epochs"], "label_smoothing": ck.get("label_smoothing", 0.05),
                         "wall_s": round(ck["wall_s"], 1)}, folder)
    stats = feature_stats(features(model, xh))
    export_model("heldout_stats", stats, {"what": "classifier features of MNIST t10k[8000:10000]"}, folder)
    return path
