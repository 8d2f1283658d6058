"""Figures the notebooks share: image grids, trajectories, schedules, error curves, Pareto plots.

Every function draws one titled, labeled figure and returns nothing, so a notebook shows it once.
Images are (N, 1, H, W) tensors in [-1, 1].
"""
from __future__ import annotations

from typing import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from ..maths.schedule import NoiseSchedule

__all__ = ["grid_array", "show_images", "image_rows", "trajectory", "schedule_curves", "timestep_schedules", "noise_predictions",
           "curves", "pareto", "DDIM_PAPER_CIFAR10"]

# Song et al. (2021), Table 1: CIFAR-10 FID of 50k samples against the number of sampling steps
# (η = 0 is DDIM, η = 1 is DDPM's variance on the same shortened schedule).
DDIM_PAPER_CIFAR10 = {
    "steps": [10, 20, 50, 100, 1000],
    "DDIM (η = 0)": [13.36, 6.84, 4.67, 4.16, 4.04],
    "η = 1 (DDPM-like)": [41.07, 18.36, 8.01, 5.78, 4.73],
}


def _to_np(img: torch.Tensor) -> np.ndarray:
    """(1, H, W) or (H, W) in [-1, 1] -> (H, W) in [0, 1]."""
    img = img.detach().float().cpu()
    if img.ndim == 3:
        img = img[0]
    return ((img.clamp(-1, 1) + 1) / 2).numpy()


def grid_array(x: torch.Tensor, nrow: int) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] -> one gray image with `nrow` digits per row, 2-pixel gaps, values in [0, 1]."""
    x = x.detach().float().cpu()
    n, _, h, w = x.shape
    ncol = min(nrow, n)
    rows = -(-n // ncol)
    canvas = np.ones((rows * (h + 2) - 2, ncol * (w + 2) - 2))
    for k in range(n):
        r, c = divmod(k, ncol)
        canvas[r * (h + 2): r * (h + 2) + h, c * (w + 2): c * (w + 2) + w] = _to_np(x[k])
    return canvas


def show_images(x: torch.Tensor, title: str, *, nrow: int = 8, size: float = 1.1, ax=None):
    """One grid of digits."""
    n = len(x)
    ncol, nrows = min(nrow, n), -(-n // min(nrow, n))
    fig = None
    if ax is None:
        fig, ax = plt.subplots(figsize=(size * ncol + 0.4, size * nrows + 0.6))
    ax.imshow(grid_array(x, nrow), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.axis("off")
    if fig is not None:
        fig.tight_layout()
        plt.show()


def image_rows(rows: Mapping[str, torch.Tensor], title: str, *, col_titles: Sequence[str] | None = None,
               size: float = 1.0):
    """One labeled row of digits per entry of `rows` (each (N, 1, H, W); N may differ between rows)."""
    names = list(rows)
    ncol = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), ncol, figsize=(size * ncol + 1.6, size * len(names) + 0.8), squeeze=False)
    for r, name in enumerate(names):
        for c in range(ncol):
            ax = axes[r, c]
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if c < len(rows[name]):
                ax.imshow(_to_np(rows[name][c]), cmap="gray", vmin=0, vmax=1)
            if c == 0:
                ax.set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
            if r == 0 and col_titles is not None and c < len(col_titles):
                ax.set_title(col_titles[c], fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def trajectory(traj, title: str, *, sample: int = 0, final: torch.Tensor | None = None):
    """Two rows for one sample: x_t as the sampler sees it, and x̂0, its guess of the final digit."""
    xs = [x[sample] for x in traj.x_t]
    x0s = [x[sample] for x in traj.x0_hat]
    cols = [f"t={t}" for t in traj.steps]
    if final is not None:
        xs.append(final[sample])
        x0s.append(final[sample])
        cols.append("result")
    image_rows({"x_t": torch.stack(xs), "x̂0": torch.stack(x0s)}, title, col_titles=cols)


def schedule_curves(schedules: Mapping[str, NoiseSchedule], title: str = "Noise schedules"):
    """β_t, ᾱ_t and log SNR_t = log(ᾱ_t / (1 − ᾱ_t)) against t, one line per schedule."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, s in schedules.items():
        t = np.arange(s.T)
        axes[0].plot(t, s.betas.cpu().numpy(), label=name)
        axes[1].plot(t, s.alphas_cumprod.cpu().numpy(), label=name)
        axes[2].plot(t, s.snr().double().log().cpu().numpy(), label=name)
    for ax, (what, ylabel) in zip(axes, [("β_t: noise added by step t", "β_t"),
                                         ("ᾱ_t: signal variance left at t", "ᾱ_t"),
                                         ("log SNR_t = log(ᾱ_t / (1 − ᾱ_t))", "log SNR")]):
        ax.set_title(what)
        ax.set_xlabel("timestep t")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend()
    axes[0].set_yscale("log")
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def timestep_schedules(schedule: NoiseSchedule, timesteps: Mapping[str, Sequence[int]],
                       title: str = "Where each timestep schedule calls the network"):
    """Each schedule's timesteps as dots on the t axis, the ᾱ axis and the log-SNR axis."""
    abar = schedule.alphas_cumprod.double().cpu()
    logsnr = schedule.snr().double().cpu().log()
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.55 * len(timesteps) + 1.6), sharey=True)
    for row, (name, ts) in enumerate(timesteps.items()):
        ts = torch.as_tensor(ts).long().cpu()
        for ax, values in zip(axes, (ts.double(), abar[ts], logsnr[ts])):
            ax.plot(values.numpy(), np.full(len(ts), row), "|", markersize=14, markeredgewidth=1.5)
    axes[0].set_yticks(range(len(timesteps)), list(timesteps))
    for ax, label in zip(axes, ("timestep t", "ᾱ_t (1 = clean, 0 = pure noise)", "log SNR")):
        ax.set_xlabel(label)
        ax.grid(alpha=0.3, axis="x")
    axes[0].set_title("on the t axis")
    axes[1].set_title("on the ᾱ axis")
    axes[2].set_title("on the log-SNR axis")
    axes[0].invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()


def noise_predictions(result: Mapping[str, torch.Tensor], timesteps: Sequence[int], *, sample: int = 0,
                      title: str = "What the network sees and predicts"):
    """Rows x_t, ε_θ(x_t, t) and x̂0 for one digit at every timestep (TrainedModelAnalyzer's result)."""
    ts = [int(t) for t in timesteps]
    rows = {"x_t": result["x_t"][:, sample], "ε_θ": result["eps_pred"][:, sample].clamp(-3, 3) / 3,
            "x̂0": result["x0_hat"][:, sample]}
    image_rows(rows, title, col_titles=[f"t={t}" for t in ts])


def curves(x: Sequence[float] | Mapping[str, Sequence[float]], ys: Mapping[str, Sequence[float]], title: str, *,
           xlabel: str, ylabel: str, logy: bool = False, hlines: Mapping[str, float] | None = None,
           markers: bool = True):
    """One line per entry of `ys` against `x` (or against x[name]), optional labeled horizontal lines."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for name, values in ys.items():
        xs = x[name] if isinstance(x, Mapping) else x
        ax.plot([float(v) for v in xs], [float(v) for v in values], "o-" if markers else "-", label=name, markersize=4)
    for k, (name, level) in enumerate((hlines or {}).items()):
        ax.axhline(level, color=f"C{len(ys) + k}", linestyle="--", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    plt.show()


def pareto(steps: Sequence[int], fid: Sequence[float], notes: Sequence[str], *, label: str = "DDIM, this lab",
           floor: float | None = None, extra: Mapping[str, tuple[int, float]] | None = None,
           published: Mapping[str, Sequence[float]] | None = DDIM_PAPER_CIFAR10, title: str = "Steps, quality and time"):
    """Left: our FID against steps, each point annotated (e.g. with its time); `extra` adds single labeled
    points (name -> (steps, fid)) and `floor` the FID of real digits. Right: the published trend."""
    ncols = 2 if published else 1
    fig, axes = plt.subplots(1, ncols, figsize=(6.4 * ncols, 4.2), squeeze=False)
    ax = axes[0, 0]
    ax.plot(steps, fid, "o-", label=label)
    for n, f, note in zip(steps, fid, notes):
        ax.annotate(note, (n, f), textcoords="offset points", xytext=(4, 6), fontsize=8)
    for k, (name, (n, f)) in enumerate((extra or {}).items()):
        ax.plot([n], [f], "D", color=f"C{k + 1}", label=name)
    if floor is not None:
        ax.axhline(floor, color="gray", linestyle="--", label="real held-out digits (same count)")
    ax.set_xscale("log")
    ax.set_xlabel("network calls per sample (steps)")
    ax.set_ylabel("classifier-feature FID (lower is better)")
    ax.set_title("this lab (MNIST)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    if published:
        ax = axes[0, 1]
        for name, values in published.items():
            if name != "steps":
                ax.plot(published["steps"], values, "s--", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("sampling steps")
        ax.set_ylabel("FID (Inception features, CIFAR-10)")
        ax.set_title("published: Song et al. 2021, Table 1")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    plt.show()
