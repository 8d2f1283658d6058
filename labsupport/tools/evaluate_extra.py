"""`labsupport evaluate-extra`: the model card's rows for the networks and samplers beyond Lab 5.

Rows: the noise-aware classifier's held-out accuracy against t; classifier-guided DDIM-50 accuracy
against s; FID of DPM-Solver++(2M) and Heun at about 10 and 20 network evaluations beside DDIM-20
and DDIM-50 on the same starting noises; the autoencoder's round trip, and the latent model's
guided accuracy, unconditional confidence and FID. Seeds are fixed; writes Markdown and JSON.
"""
from __future__ import annotations

import functools
import json
import platform
from pathlib import Path

import torch

from . import metrics
from .data import load_mnist
from .generation import generate
from .train_noisy_classifier import ACCURACY_TIMESTEPS, noisy_accuracy
from ..device import get_device
from ..models.pretrained import (load_autoencoder, load_classifier, load_noisy_classifier, load_pretrained,
                                 load_reference_stats)
from ..samplers import ClassifierGuided, DDIMSampler, DPMSolverSampler, HeunSampler, heun_nfe

__all__ = ["evaluate_extra", "add_parser", "EXTRA_BARS"]

EXTRA_BARS = {"noisy_clean": 0.99, "noisy_t300": 0.90, "classifier_guided_best": 0.95, "latent_guided_w3": 0.95,
              "latent_uncond_confidence": 0.85, "autoencoder_same_digit": 0.98}
CLASSIFIER_SCALES = (3.0, 10.0, 30.0)
HEUN_STEPS = (5, 10)   # NFE 9 and 19, the odd budgets nearest 10 and 20


def evaluate_extra(n: int = 1000, fid_n: int = 1000, batch: int | None = None, seed: int = 0, device=None,
                   log=None) -> dict:
    device = get_device(device)
    batch = batch or (250 if device.type == "cuda" else 50)
    log = log or functools.partial(print, flush=True)
    model, schedule = load_pretrained(device=device)
    clf, ref = load_classifier(device), load_reference_stats()
    xh, yh = load_mnist("heldout")
    res: dict = {"n": n, "fid_n": fid_n, "seed": seed, "device": str(device), "torch": torch.__version__,
                 "machine": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()}

    noisy = load_noisy_classifier(device)
    res["noisy_accuracy"] = {str(t): noisy_accuracy(noisy.cpu(), xh, yh, t) for t in ACCURACY_TIMESTEPS}
    noisy.to(device)
    log(f"  noise-aware classifier: {res['noisy_accuracy']}")

    labels = (torch.arange(n) % 10).to(device)
    res["classifier_guided_accuracy"] = {}
    for s in CLASSIFIER_SCALES:
        sampler = DDIMSampler(ClassifierGuided(model, noisy, schedule, s), schedule)
        x = generate(sampler, n, chunk_size=batch, seed=seed, y=labels)
        res["classifier_guided_accuracy"][str(s)] = metrics.label_accuracy(clf, x, labels.cpu())
        log(f"  classifier-guided DDIM-50, s = {s:g}: {res['classifier_guided_accuracy'][str(s)]:.4f}")

    fid, nfe = {}, {}
    runs = {"DDIM-20": (DDIMSampler(model, schedule), dict(num_steps=20), 20),
            "DDIM-50": (DDIMSampler(model, schedule), dict(num_steps=50), 50),
            "DPM-Solver++(2M), NFE 10": (DPMSolverSampler(model, schedule), dict(num_steps=10), 10),
            "DPM-Solver++(2M), NFE 20": (DPMSolverSampler(model, schedule), dict(num_steps=20), 20)}
    for steps in HEUN_STEPS:
        runs[f"Heun, NFE {heun_nfe(steps)}"] = (HeunSampler(model, schedule), dict(num_steps=steps), heun_nfe(steps))
    for name, (sampler, kw, cost) in runs.items():
        fid[name] = metrics.fid(clf, generate(sampler, fid_n, chunk_size=batch, seed=seed + 10_000, **kw), ref)
        nfe[name] = cost
        log(f"  {name}: FID {fid[name]:.1f}")
    res["solver_fid"], res["solver_nfe"] = fid, nfe
    res["fid_real_heldout"] = metrics.fid(clf, xh[:fid_n], ref)

    autoencoder, scale = load_autoencoder(device)
    with torch.inference_mode():
        recon = torch.cat([autoencoder(b.to(device)).cpu() for b in xh.split(500)])
    res["autoencoder_same_digit"] = metrics.label_accuracy(clf, recon, yh)
    res["autoencoder_mse"] = (recon - xh).pow(2).mean().item()
    latent_model, latent_schedule = load_pretrained("unet_latent", device=device)
    latent = DDIMSampler(latent_model, latent_schedule)

    def decoded(**kw):
        z = generate(latent, n, chunk_size=batch, image_shape=(autoencoder.latent_channels, 7, 7), **kw)
        with torch.inference_mode():
            return torch.cat([autoencoder.decode(b.to(device) / scale).cpu() for b in z.split(500)])

    res["latent_guided_w3"] = metrics.label_accuracy(clf, decoded(seed=seed, y=labels, guidance_scale=3.0), labels.cpu())
    uncond = decoded(seed=seed + 10_000)
    res["latent_uncond_confidence"] = metrics.mean_confidence(clf, uncond)
    res["latent_fid_ddim50"] = metrics.fid(clf, uncond[:fid_n], ref)
    log(f"  latent: guided {res['latent_guided_w3']:.4f}, confidence {res['latent_uncond_confidence']:.4f}, "
        f"FID {res['latent_fid_ddim50']:.1f}; autoencoder round trip {res['autoencoder_same_digit']:.4f}")
    res["bars"] = check_extra_bars(res)
    return res


def check_extra_bars(res: dict) -> dict:
    f = res["solver_fid"]
    return {
        "noise-aware classifier ≥ 99% clean": res["noisy_accuracy"]["0"] >= EXTRA_BARS["noisy_clean"],
        "noise-aware classifier ≥ 90% at t = 300": res["noisy_accuracy"]["300"] >= EXTRA_BARS["noisy_t300"],
        "classifier-guided DDIM-50 ≥ 95% at its best scale":
            max(res["classifier_guided_accuracy"].values()) >= EXTRA_BARS["classifier_guided_best"],
        "DPM-Solver++ NFE 10 FID ≤ DDIM-20's": f["DPM-Solver++(2M), NFE 10"] <= f["DDIM-20"],
        "DPM-Solver++ NFE 20 FID ≤ DDIM-50's": f["DPM-Solver++(2M), NFE 20"] <= f["DDIM-50"],
        "latent guided w = 3 ≥ 95%": res["latent_guided_w3"] >= EXTRA_BARS["latent_guided_w3"],
        "latent unconditional confidence ≥ 0.85": res["latent_uncond_confidence"] >= EXTRA_BARS["latent_uncond_confidence"],
        "autoencoder round trip ≥ 98% same digit": res["autoencoder_same_digit"] >= EXTRA_BARS["autoencoder_same_digit"],
    }


def to_markdown(res: dict) -> str:
    lines = [f"# Beyond Lab 5: evaluation ({res['n']} samples, FID on {res['fid_n']}, seed {res['seed']}, "
             f"{res['device']} {res['machine']}, torch {res['torch']})", "",
             "| t | " + " | ".join(res["noisy_accuracy"]) + " |", "|---" * (len(res["noisy_accuracy"]) + 1) + "|",
             "| noise-aware classifier, held-out accuracy | "
             + " | ".join(f"{v:.2%}" for v in res["noisy_accuracy"].values()) + " |", "",
             "| classifier guidance scale s | " + " | ".join(res["classifier_guided_accuracy"]) + " |",
             "|---" * (len(res["classifier_guided_accuracy"]) + 1) + "|",
             "| classifier-guided DDIM-50, read as requested | "
             + " | ".join(f"{v:.2%}" for v in res["classifier_guided_accuracy"].values()) + " |", "",
             "| sampler (same x_T) | NFE | FID |", "|---|---|---|"]
    lines += [f"| {k} | {res['solver_nfe'][k]} | {v:.1f} |" for k, v in res["solver_fid"].items()]
    lines += [f"| real held-out digits (floor) | - | {res['fid_real_heldout']:.1f} |", "",
              "| latent diffusion | value |", "|---|---|",
              f"| autoencoder round trip read as the same digit | {res['autoencoder_same_digit']:.2%} |",
              f"| autoencoder reconstruction MSE | {res['autoencoder_mse']:.4f} |",
              f"| latent DDIM-50, w = 3, read as requested | {res['latent_guided_w3']:.2%} |",
              f"| latent DDIM-50 unconditional, mean confidence | {res['latent_uncond_confidence']:.3f} |",
              f"| latent DDIM-50 unconditional, FID | {res['latent_fid_ddim50']:.1f} |", "",
              "| bar | met |", "|---|---|"]
    lines += [f"| {k} | {'yes' if v else 'NO'} |" for k, v in res["bars"].items()]
    return "\n".join(lines) + "\n"


def add_parser(sub) -> None:
    p = sub.add_parser("evaluate-extra", help="the model card's rows for classifier guidance, few-step solvers "
                                              "and latent diffusion")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--fid-n", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device")
    p.add_argument("--out", default="docs/evaluation/extra", help="writes <out>.md and <out>.json")
    p.set_defaults(func=_run)


def _run(a) -> None:
    res = evaluate_extra(a.n, a.fid_n, seed=a.seed, device=a.device)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(res, indent=2) + "\n")
    out.with_suffix(".md").write_text(to_markdown(res))
    print(to_markdown(res))


def model_card_section(card_dir: Path) -> str:
    """The model card's section on the networks beyond Lab 5: what they are, how they were trained and,
    when `labsupport evaluate-extra` has written evaluation/extra.{md,json} beside the card, its table."""
    from ..models.pretrained import WEIGHTS_DIR
    noisy, ae, latent = (json.loads((WEIGHTS_DIR / f"{stem}.json").read_text())
                         for stem in ("noisy_classifier_mnist", "autoencoder_mnist", "unet_latent"))
    u, tr, (c, h, w) = latent["unet"], latent["train"], ae["latent_shape"]
    table, data = Path(card_dir) / "evaluation" / "extra.md", Path(card_dir) / "evaluation" / "extra.json"
    if table.exists() and data.exists():
        res = json.loads(data.read_text())
        measured = (f"Measured by `labsupport evaluate-extra` ({res['n']} samples, FID on {res['fid_n']}, seed "
                    f"{res['seed']}, {res['device']}):\n" + "\n".join(table.read_text().splitlines()[1:]))
    else:
        measured = "Not measured yet: `labsupport evaluate-extra` writes evaluation/extra.md."
    minutes = (noisy["wall_s"] + ae["wall_s"] + latent["wall_s"]) / 60
    return f"""## Beyond Lab 5: classifier guidance and latent diffusion (notebooks 05 and 07)
- **`noisy_classifier_mnist`** (`lab.load_noisy_classifier`): p(y | x_t, t) on noised digits of the course's
  linear schedule, for classifier guidance; {noisy['epochs']} epochs, {noisy['wall_s'] / 60:.0f} min. Reproduce:
  `labsupport train-noisy-classifier`, then `labsupport export --noisy-classifier runs/noisy-classifier/checkpoint.pt`.
- **`autoencoder_mnist`** (`lab.load_autoencoder`): 28×28 → {c}×{h}×{w} latents ({784 / (c * h * w):.0f}× fewer numbers),
  held-out reconstruction MSE {ae['heldout_mse']:.4f}, latent scale {ae['scale']:.4f} (unit-variance latents);
  {ae['epochs']} epochs, {ae['wall_s'] / 60:.0f} min. Reproduce: `labsupport train-autoencoder`, then
  `labsupport export --autoencoder runs/autoencoder/checkpoint.pt`.
- **`unet_latent`** (`lab.load_pretrained("unet_latent")`): the lab's U-Net on the scaled latents, {u['base_channels']}
  channels, no downsampling, {u['num_res_blocks']} residual blocks, {'attention' if u['mid_attention'] else 'no attention'}, null class,
  p_uncond {latent['p_uncond']}; {latent['steps_done']:,} steps at batch {tr['batch_size']}, lr {tr['lr']}, {latent['wall_s'] / 60:.0f} min,
  final loss {latent['final_loss']:.4f}; {latent['params']:,} parameters. Reproduce: `labsupport train-latent`, then
  `labsupport export --latent-unet runs/latent/checkpoint.pt`.
- **Training time**: {minutes:.0f} min for the three, on {noisy['hardware']}.

{measured}
"""
