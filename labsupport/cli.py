"""`labsupport <command>`: training, export, evaluation, benchmarks, release, the workspace, doctor and grading."""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import sys

__all__ = ["main"]

# modules that each register their own subcommand with add_parser(subparsers)
_SUBCOMMAND_MODULES = ("labsupport.tools.evaluate", "labsupport.tools.evaluate_extra", "labsupport.tools.bench", "labsupport.teaching.release",
                       "labsupport.teaching.doctor", "labsupport.grading.cli",
                       "labsupport.tools.slip_survey", "labsupport.teaching.flashcards")
# the TrainConfig fields that `labsupport train` sets (--steps, --batch-size, ...), with their help;
# the defaults are TrainConfig's own
TRAIN_OPTIONS = {"steps": None, "batch_size": None, "lr": "peak learning rate",
                 "p_uncond": "label dropout to the null class", "seed": None, "ckpt_every": "steps between checkpoints",
                 "warmup": "steps of linear learning-rate warm-up",
                 "init_from": "start from this shipped model's weights (e.g. unet_mnist) instead of fresh ones"}
# the keywords of train_classifier that `labsupport train-classifier` sets; the defaults are its own
CLASSIFIER_OPTIONS = {"epochs": None, "label_smoothing": None}


def _set_threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def _cmd_train(a) -> None:
    from .device import get_device
    from .tools.train import TrainConfig, train_unet
    _set_threads(a.threads)
    cfg = TrainConfig(**{name: getattr(a, name) for name in TRAIN_OPTIONS})
    if a.unet:
        cfg.unet.update(json.loads(a.unet))
    train_unet(a.out, cfg, device=get_device(a.device), max_minutes=a.max_minutes)


def _cmd_train_classifier(a) -> None:
    from .device import get_device
    from .tools.train import train_classifier
    _set_threads(a.threads)
    train_classifier(a.out, device=get_device(a.device), **{name: getattr(a, name) for name in CLASSIFIER_OPTIONS})


def _cmd_train_helper(a) -> None:
    """train-noisy-classifier, train-autoencoder, train-latent: the networks of notebooks 05 and 07."""
    from .device import get_device
    from .tools import train_latent, train_noisy_classifier
    _set_threads(a.threads)
    fn = {"train-noisy-classifier": train_noisy_classifier.train_noisy_classifier,
          "train-autoencoder": train_latent.train_autoencoder,
          "train-latent": train_latent.train_latent_unet}[a.command]
    length = {"steps": a.steps} if a.command == "train-latent" else {"epochs": a.epochs}
    print("wrote", fn(a.out, device=get_device(a.device), max_minutes=a.max_minutes, **length))


def _cmd_export(a) -> None:
    from .tools.train import export_classifier, export_unet
    from .tools.train_latent import export_autoencoder, export_latent_unet
    from .tools.train_noisy_classifier import export_noisy_classifier
    if a.unet:
        print("wrote", export_unet(a.unet, a.folder, hardware=a.hardware, note=a.note))
    if a.classifier:
        print("wrote", export_classifier(a.classifier, a.folder))
    if a.noisy_classifier:
        print("wrote", export_noisy_classifier(a.noisy_classifier, a.folder, hardware=a.hardware))
    if a.autoencoder:
        print("wrote", export_autoencoder(a.autoencoder, a.folder, hardware=a.hardware))
    if a.latent_unet:
        print("wrote", export_latent_unet(a.latent_unet, a.folder, hardware=a.hardware))


def _add_options(parser: argparse.ArgumentParser, options: dict[str, str | None], defaults: dict) -> None:
    """--name-with-dashes for each option, typed and defaulted by `defaults[name]` (its source's own default)."""
    for name, help_text in options.items():
        default = defaults[name]
        parser.add_argument("--" + name.replace("_", "-"), type=type(default), default=default,
                            help=f"{help_text + ' ' if help_text else ''}(default: {default})")


def train_defaults() -> dict:
    """TrainConfig's field defaults (those with a plain default), name -> value."""
    from .tools.train import TrainConfig
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def classifier_defaults() -> dict:
    """train_classifier's keyword defaults, name -> value."""
    from .tools.train import train_classifier
    return {name: p.default for name, p in inspect.signature(train_classifier).parameters.items()
            if p.default is not inspect.Parameter.empty}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labsupport", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) the reference U-Net")
    t.add_argument("--out", default="runs/unet")
    _add_options(t, TRAIN_OPTIONS, train_defaults())
    t.add_argument("--unet", help='JSON overrides of UNetConfig, e.g. \'{"base_channels": 16}\'')
    t.add_argument("--max-minutes", type=float, help="checkpoint and stop after this long (resume later)")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--device")
    t.set_defaults(func=_cmd_train)

    c = sub.add_parser("train-classifier", help="train the evaluation classifier")
    c.add_argument("--out", default="runs/classifier")
    _add_options(c, CLASSIFIER_OPTIONS, classifier_defaults())
    c.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    c.add_argument("--device")
    c.set_defaults(func=_cmd_train_classifier)

    helpers = {"train-noisy-classifier": ("the noise-aware classifier of classifier guidance", "epochs", 20),
               "train-autoencoder": ("latent diffusion's autoencoder", "epochs", 12),
               "train-latent": ("the latent ε-model on the shipped autoencoder's latents", "steps", 8000)}
    for name, (what, length, default) in helpers.items():
        h = sub.add_parser(name, help=f"train (or resume) {what}")
        h.add_argument("--out", default="runs/" + name.removeprefix("train-"))
        h.add_argument("--" + length, type=int, default=default, help=f"(default: {default})")
        h.add_argument("--max-minutes", type=float, help="checkpoint and stop after this long (resume later)")
        h.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
        h.add_argument("--device")
        h.set_defaults(func=_cmd_train_helper)

    e = sub.add_parser("export", help="write checkpoints as the shipped safetensors weights")
    e.add_argument("--unet", help="U-Net checkpoint.pt")
    e.add_argument("--classifier", help="classifier.pt")
    e.add_argument("--noisy-classifier", help="noise-aware classifier checkpoint.pt")
    e.add_argument("--autoencoder", help="autoencoder checkpoint.pt")
    e.add_argument("--latent-unet", help="latent U-Net checkpoint.pt (needs the exported autoencoder)")
    e.add_argument("--folder", help="output folder (default: the package's weights/)")
    e.add_argument("--hardware", default="", help="where it was trained, for the model card")
    e.add_argument("--note", default="", help="anything else the model card should say about this training run")
    e.set_defaults(func=_cmd_export)

    for module in _SUBCOMMAND_MODULES:
        importlib.import_module(module).add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)  # a command that has an exit status of its own (doctor) returns it
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as err:
        print(f"labsupport {args.command}: error: {err}", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
