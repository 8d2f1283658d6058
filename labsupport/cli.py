"""`labsupport <command>`: training, export, evaluation, benchmarks, release, the workspace, doctor and grading."""
from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

__all__ = ["main"]

# modules that each register their own subcommand with add_parser(subparsers)
_SUBCOMMAND_MODULES = ("labsupport.tools.evaluate", "labsupport.tools.bench", "labsupport.teaching.release", "labsupport.teaching.doctor",
                       "labsupport.grading.cli")


def _set_threads(n: int | None) -> None:
    if n:
        import torch
        torch.set_num_threads(n)


def _cmd_train(a) -> None:
    from .device import get_device
    from .tools.train import TrainConfig, train_unet
    _set_threads(a.threads)
    cfg = TrainConfig(steps=a.steps, batch_size=a.batch_size, lr=a.lr, p_uncond=a.p_uncond, seed=a.seed,
                      ckpt_every=a.ckpt_every)
    if a.unet:
        cfg.unet.update(json.loads(a.unet))
    train_unet(a.out, cfg, device=get_device(a.device), max_minutes=a.max_minutes)


def _cmd_train_classifier(a) -> None:
    from .device import get_device
    from .tools.train import train_classifier
    _set_threads(a.threads)
    train_classifier(a.out, device=get_device(a.device), epochs=a.epochs, label_smoothing=a.label_smoothing)


def _cmd_export(a) -> None:
    from .tools.train import export_classifier, export_unet
    if a.unet:
        print("wrote", export_unet(a.unet, a.folder, hardware=a.hardware, note=a.note))
    if a.classifier:
        print("wrote", export_classifier(a.classifier, a.folder))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="labsupport", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or resume) the reference U-Net")
    t.add_argument("--out", default="runs/unet")
    t.add_argument("--steps", type=int, default=40_000)
    t.add_argument("--batch-size", type=int, default=256)
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--p-uncond", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--unet", help='JSON overrides of UNetConfig, e.g. \'{"base_channels": 16}\'')
    t.add_argument("--max-minutes", type=float, help="checkpoint and stop after this long (resume later)")
    t.add_argument("--ckpt-every", type=int, default=1000, help="steps between checkpoints")
    t.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    t.add_argument("--device")
    t.set_defaults(func=_cmd_train)

    c = sub.add_parser("train-classifier", help="train the evaluation classifier")
    c.add_argument("--out", default="runs/classifier")
    c.add_argument("--epochs", type=int, default=30)
    c.add_argument("--label-smoothing", type=float, default=0.0)
    c.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    c.add_argument("--device")
    c.set_defaults(func=_cmd_train_classifier)

    e = sub.add_parser("export", help="write checkpoints as the shipped safetensors weights")
    e.add_argument("--unet", help="U-Net checkpoint.pt")
    e.add_argument("--classifier", help="classifier.pt")
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
